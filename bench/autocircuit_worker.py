"""auto-circuit's learned-mask training (Subnetwork Edge Probing) as a benchmark peer.

Runs in its OWN venv (auto-circuit needs transformer-lens 2.18), never imports circuitforge:

    python3 -m venv /work/venvs/autocircuit
    /work/venvs/autocircuit/bin/pip install torch==2.13.0
    /work/venvs/autocircuit/bin/pip install auto-circuit "transformer-lens==2.18.0" attrs \
        "pyarrow>=21,<22"

Run:

    OMP_NUM_THREADS=1 /work/venvs/autocircuit/bin/python bench/autocircuit_worker.py \
        --model-dir /tmp/gpt2_arch --batch /tmp/batch.safetensors --steps 3 --warmup 1 --threads 1 \
        [--reference /tmp/gpt2_ref.safetensors]

Inputs:
  --model-dir  a circuitforge local model directory: `config.json` (HookedTransformerConfig fields
               as transformer-lens 3.9 writes them; fields 2.18 does not know are dropped and listed
               in the result) and `model.safetensors` (the TransformerLens state dict).
  --batch      safetensors with int64 `clean` [b, pos], `corrupt` [b, pos], `answer` [b],
               `wrong_answer` [b]; answers are read at the last position.
  --reference  optional safetensors with `tokens` [n, pos] and `logits` [n, pos, d_vocab] computed
               by circuitforge's venv for the same model (what `save_model_dir(...,
               reference_texts=)` writes as `reference_logits.safetensors`; used by default when
               the model directory has one). The worker checks that its transformer-lens 2.18
               model, the same model with auto-circuit's flags, and auto-circuit's patchable
               wrapper (no patching) give these logits; max abs differences go to `logits_check`.
               To make one for a batch file, in circuitforge's venv:
                   m = circuitforge.model.local_dir.load_model_dir(DIR)
                   tokens = safetensors.torch.load_file(BATCH)["clean"]
                   save_file({"tokens": tokens, "logits": m(tokens).float().contiguous()}, REF)

What it runs: `auto_circuit.prune_algos.subnetwork_probing.subnetwork_probing_prune_scores` with the
options of auto-circuit's own `SUBNETWORK_EDGE_PROBING_PRUNE_ALGO` ("Subnetwork Edge Probing":
lr 0.1, regularize_lambda 0.5, hard-concrete masks, faithfulness target KL to the clean logits,
`tree_optimisation=False`), except `epochs` (= warmup + steps; the batch is the one batch, so an
epoch is one optimizer step) and `show_train_graph=False`. The patchable model is built the way
auto-circuit's `Task` builds it by default: `factorized=True` (edges between every pair of
upstream source / downstream destination nodes: Resid Start, each head's output, each MLP ->
each head's Q, K and V input separately (`separate_qkv=True`, the Task default), each MLP input,
Resid End), `slice_output="last_seq"`, `seq_len=None` (edges are not per token). The model flags
are those of auto-circuit's `load_tl_model` (use_attn_result, use_attn_in, use_split_qkv_input,
use_hook_mlp_in; weights frozen, eval mode).

Timing: `step_s` timestamps each Adam `step()` inside the library's whole-training call (one
full step between stamps; warmup excluded); `--timing both` also reports `step_s_diff`, the
difference of whole calls with `warmup` and `warmup + steps` epochs, divided by `steps`.

Memory: `rss_before_mb` (VmRSS before training), `peak_rss_mb` (ru_maxrss, lifetime) and
`peak_rss_train_mb` (VmHWM reset just before training); training memory = peak - rss_before.
Prints exactly one final line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference", default=None)
    p.add_argument("--timing", choices=["adam", "diff", "both"], default="both")
    p.add_argument(
        "--faithfulness",
        default="kl_div",
        choices=[
            "kl_div",
            "logit_diff_percent",
            "mse",
            "answer",
            "wrong_answer",
            "correct_percent",
        ],
        help="auto-circuit's faithfulness_target (SEP default: kl_div)",
    )
    p.add_argument("--regularize-lambda", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--baseline-reps",
        type=int,
        default=3,
        help="also time a plain forward+backward (no auto-circuit flags, grads to all weights) on "
        "the clean batch this many times (after one warmup), so step_s can be given as a ratio "
        "measured in the same process; 0 to skip",
    )
    return p.parse_args(argv)


ARGS = parse_args()
# Thread settings must be in place before torch is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import ctypes  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.optim.adam  # noqa: E402

# torch 2.13 no longer binds the submodule `torch.optim.adam` as an attribute; auto-circuit calls
# `t.optim.adam.Adam(...)`.
torch.optim.adam = sys.modules["torch.optim.adam"]

from auto_circuit.data import PromptDataLoader, PromptDataset  # noqa: E402
from auto_circuit.prune_algos import subnetwork_probing as sp  # noqa: E402
from auto_circuit.utils.graph_utils import patchable_model  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402


def proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def release_freed_memory() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- model
def load_model(model_dir: Path) -> tuple[HookedTransformer, dict]:
    fields = json.loads((model_dir / "config.json").read_text())
    known = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    kept = {k: v for k, v in fields.items() if k in known}
    dropped = {k: v for k, v in fields.items() if k not in known}

    # A dropped field that switches something on would change the architecture silently. Off
    # (None/False) is harmless, and so are the parameters of a feature that is off.
    def harmless(key, value):
        if value is None or value is False:
            return True
        if key.startswith("yarn_"):
            return not fields.get("use_yarn_rope", False)
        if key == "rotary_scaling_factor":
            return value == 1.0 or fields.get("positional_embedding_type") != "rotary"
        return False

    active = {k: v for k, v in dropped.items() if not harmless(k, v)}
    if active:
        raise SystemExit(f"config fields unknown to transformer-lens 2.18 are in use: {active}")
    kept.update(device="cpu", dtype=torch.float32, init_weights=False)
    cfg = HookedTransformerConfig(**kept)
    model = HookedTransformer(cfg, move_to_device=False)
    state = load_file(str(model_dir / "model.safetensors"))
    # Buffers (causal mask, IGNORE, rotary tables) are derived from the config, and transformer-lens
    # 3.9 saves the causal mask as an empty [0, 0] tensor: keep 2.18's own buffers.
    buffers = dict(model.named_buffers())
    state = {k: v for k, v in state.items() if k not in buffers}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in buffers]
    if missing or unexpected:
        raise SystemExit(
            f"weights do not fit config: missing {missing[:5]} unexpected {unexpected[:5]}"
        )
    del state
    model.eval()
    for param in model.parameters():
        param.requires_grad = False
    return model, dropped


def set_autocircuit_flags(model: HookedTransformer) -> None:
    # Exactly what auto_circuit.experiment_utils.load_tl_model sets.
    model.cfg.use_attn_result = True
    model.cfg.use_attn_in = True
    model.cfg.use_split_qkv_input = True
    model.cfg.use_hook_mlp_in = True


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# --------------------------------------------------------------------------- timing
def plain_forward_backward_s(model: HookedTransformer, tokens: torch.Tensor, reps: int):
    """Median seconds of a plain forward+backward (loss = sum of last-position logsumexp)."""
    if reps <= 0:
        return None
    params = list(model.parameters())
    for prm in params:
        prm.requires_grad_(True)
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        model(tokens)[:, -1].logsumexp(-1).sum().backward()
        if i > 0:
            times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    for prm in params:
        prm.requires_grad_(False)
    return sorted(times)[len(times) // 2]


class _Stamps:
    times: list[float] = []


def _timed_adam_class(base):
    class TimedAdam(base):
        def step(self, *a, **k):
            out = super().step(*a, **k)
            _Stamps.times.append(time.perf_counter())
            return out

    return TimedAdam


def run_training(model, loader, epochs: int, args, stamp: bool) -> tuple[float, list[float]]:
    """One whole call of auto-circuit's learned-mask training; (wall seconds, Adam step stamps)."""
    adam_mod = sys.modules["torch.optim.adam"]
    orig = adam_mod.Adam
    _Stamps.times = []
    if stamp:
        adam_mod.Adam = _timed_adam_class(orig)
    torch.manual_seed(args.seed)
    try:
        t0 = time.perf_counter()
        scores = sp.subnetwork_probing_prune_scores(
            model,
            loader,
            official_edges=None,
            learning_rate=args.lr,
            epochs=epochs,
            regularize_lambda=args.regularize_lambda,
            mask_fn="hard_concrete",
            show_train_graph=False,
            tree_optimisation=False,
            faithfulness_target=args.faithfulness,
        )
        total = time.perf_counter() - t0
    finally:
        adam_mod.Adam = orig
    assert len(scores) > 0
    return total, [t0] + list(_Stamps.times)


def main(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model_dir = Path(args.model_dir)
    if args.warmup < 1 and args.timing != "diff":
        raise SystemExit(
            "--warmup must be >= 1: the first step also runs the clean/ablation passes"
        )

    model, dropped = load_model(model_dir)
    batch = load_file(args.batch)
    clean, corrupt = batch["clean"].long(), batch["corrupt"].long()
    answer, wrong = batch["answer"].long(), batch["wrong_answer"].long()
    b, pos = clean.shape
    assert corrupt.shape == clean.shape and answer.shape == (b,) and wrong.shape == (b,)

    # ---- logits check against circuitforge's venv
    check: dict = {}
    ref_path = (
        Path(args.reference) if args.reference else model_dir / "reference_logits.safetensors"
    )
    ref = load_file(str(ref_path)) if ref_path.is_file() else None
    with torch.no_grad():
        if ref is not None:
            check["reference"] = str(ref_path)
            check["plain_vs_ref"] = max_diff(model(ref["tokens"].long()), ref["logits"])
            check["ref_abs_max"] = ref["logits"].abs().max().item()
        plain_batch_logits = model(clean)
    plain_fb_s = plain_forward_backward_s(model, clean, args.baseline_reps)
    set_autocircuit_flags(model)
    with torch.no_grad():
        if ref is not None:
            check["flags_vs_ref"] = max_diff(model(ref["tokens"].long()), ref["logits"])
        check["flags_vs_plain_batch"] = max_diff(model(clean), plain_batch_logits)

    # ---- auto-circuit's patchable model and data
    t0 = time.perf_counter()
    pmodel = patchable_model(
        model,
        factorized=True,
        slice_output="last_seq",
        seq_len=None,
        separate_qkv=True,
        device=torch.device("cpu"),
    )
    wrap_s = time.perf_counter() - t0
    with torch.no_grad():
        check["patchable_vs_plain_batch"] = max_diff(pmodel(clean), plain_batch_logits)
        if ref is not None:
            check["patchable_vs_ref"] = max_diff(pmodel(ref["tokens"].long()), ref["logits"])
    dataset = PromptDataset(
        list(clean), list(corrupt), [a.view(1) for a in answer], [w.view(1) for w in wrong]
    )
    loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=b, shuffle=False)
    assert len(loader) == 1

    # ---- training
    gc.collect()
    release_freed_memory()  # the baseline's gradients, loading copies: not part of training
    rss_before = proc_status_mb("VmRSS")
    hwm_reset = reset_peak_rss()
    timing: dict = {}
    step_s = None
    if args.timing in ("diff", "both"):
        short_s, _ = run_training(pmodel, loader, args.warmup, args, stamp=False)
        long_s, _ = run_training(pmodel, loader, args.warmup + args.steps, args, stamp=False)
        timing.update(short_call_s=short_s, long_call_s=long_s)
        timing["step_s_diff"] = (long_s - short_s) / args.steps
        step_s = timing["step_s_diff"]
    if args.timing in ("adam", "both"):
        total_s, stamps = run_training(pmodel, loader, args.warmup + args.steps, args, stamp=True)
        intervals = [b_ - a_ for a_, b_ in zip(stamps, stamps[1:])]
        assert len(intervals) == args.warmup + args.steps, (len(intervals), args.warmup, args.steps)
        timed = intervals[args.warmup :]
        timing.update(
            call_s=total_s,
            first_step_incl_setup_s=intervals[0],
            step_intervals_s=timed,
            step_s_median=sorted(timed)[len(timed) // 2],
        )
        step_s = sum(timed) / len(timed)
        timing["step_s_mean"] = step_s
    peak_train = proc_status_mb("VmHWM") if hwm_reset else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    result = {
        "step_s": step_s,
        "step_s_source": "adam-step timestamps (mean)"
        if args.timing != "diff"
        else "call difference",
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "peak_rss_train_mb": peak_train,
        "n_edges": pmodel.n_edges,
        "n_src_nodes": len(pmodel.srcs),
        "n_dest_nodes": len(pmodel.dests),
        "n_mask_params": sum(w.patch_mask.numel() for w in pmodel.dest_wrappers),
        "method": {
            "algorithm": "auto_circuit.prune_algos.subnetwork_probing"
            ".subnetwork_probing_prune_scores (Subnetwork Edge Probing options)",
            "mask_fn": "hard_concrete",
            "learning_rate": args.lr,
            "regularize_lambda": args.regularize_lambda,
            "faithfulness_target": args.faithfulness,
            "tree_optimisation": False,
            "ablation": "TOKENWISE_MEAN_CORRUPT (fixed inside subnetwork_probing_prune_scores)",
            "factorized": True,
            "separate_qkv": True,
            "per_token": False,
            "slice_output": "last_seq",
            "model_flags": "use_attn_result, use_attn_in, use_split_qkv_input, use_hook_mlp_in",
            "warmup": args.warmup,
            "steps": args.steps,
            "timing": args.timing,
        },
        "timing": timing,
        "plain_forward_backward_s": plain_fb_s,
        "step_over_plain_fb": (step_s / plain_fb_s) if (plain_fb_s and step_s) else None,
        "wrap_s": wrap_s,
        "batch": [b, pos],
        "threads": torch.get_num_threads(),
        "logits_check": check,
        "config_fields_dropped": dropped,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformer_lens": version("transformer-lens"),
            "auto_circuit": version("auto-circuit"),
        },
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(ARGS)
