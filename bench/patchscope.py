"""Benchmark of the Patchscope optimisation step: truncated objective vs the notebooks' full run.

    python bench/patchscope.py [--quick] [--gemma-layers N]

On the demo model and on a randomly initialised model with the Gemma-2-2B architecture (fp32,
CPU, one thread), it times (1) one optimisation step of `NeuronObjective` (cached prefix, blocks
S..T only) against the full `run_with_hooks` forward of the original notebooks, and (2) one step
with B vectors in a batch against B separate steps. The two paths of each ratio are timed
interleaved in one process, so the ratios are what count on a noisy machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

from circuitforge.model import hooks  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402
from circuitforge.patchscope.objective import NeuronObjective  # noqa: E402
from circuitforge.patchscope.prompt import PlaceholderPrompt, locate_placeholder  # noqa: E402

# transformer_lens.loading_from_pretrained.convert_hf_model_config, "google/gemma-2-2b" branch.
GEMMA_2_2B: dict = dict(
    d_model=2304, d_head=256, n_heads=8, d_mlp=9216, n_layers=26, n_ctx=8192, eps=1e-06,
    d_vocab=256000, act_fn="gelu_pytorch_tanh", initializer_range=0.02, normalization_type="RMS",
    rotary_base=10000.0, positional_embedding_type="rotary", rotary_dim=256, use_attn_scale=True,
    attn_scale=16.0, n_key_value_heads=4, window_size=4096, use_local_attn=True,
    attn_types=["local", "global"] * 13, attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0,
    gated_mlp=True, final_rms=True, use_normalization_before_and_after=True,
    original_architecture="Gemma2ForCausalLM", init_weights=True,
)  # fmt: skip

Step = Callable[[], float]


def make_step(
    model: HookedTransformer,
    prompt: PlaceholderPrompt,
    layers: tuple[int, int],
    neuron: int,
    x0: Tensor,
    full: bool,
) -> Step:
    """One Adam step on its own copy of `x0` ([B, d_model]); returns the first activation."""
    source, target = layers
    x = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([x], lr=1e-2)
    neurons = torch.full((x.shape[0],), neuron)
    objective = None if full else NeuronObjective(model, prompt, source, target)
    p = prompt.position

    def full_activation() -> Tensor:
        got: dict[str, Tensor] = {}

        def inject(resid: Tensor, hook) -> Tensor:
            resid = resid.clone()
            resid[:, p] = x.to(resid.dtype)
            return resid

        def capture(post: Tensor, hook) -> None:
            got["act"] = post[:, p, neuron]

        model.run_with_hooks(
            prompt.tokens.expand(x.shape[0], -1),
            fwd_hooks=[
                (hooks.resid_pre(source), inject),
                (hooks.mlp_post(target), capture),
            ],
        )
        return got["act"].float()

    def step() -> float:
        opt.zero_grad()
        act = full_activation() if objective is None else objective(x, neurons)
        (-act.sum()).backward()
        opt.step()
        return float(act[0].detach())

    return step


def timed(step: Step) -> float:
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1e3


def bench_model(
    name: str,
    model: HookedTransformer,
    prompt: PlaceholderPrompt,
    layers: tuple[int, int],
    neuron: int,
    batch: int,
    warmup: int,
    repeats: int,
) -> list[str]:
    torch.manual_seed(0)
    prefix = NeuronObjective(model, prompt, *layers).prefix
    x0 = prefix[0, prompt.position].float()[None] + 0.1 * torch.randn(1, model.cfg.d_model)
    truncated = make_step(model, prompt, layers, neuron, x0, full=False)
    full = make_step(model, prompt, layers, neuron, x0, full=True)
    a_trunc, a_full = truncated(), full()  # step 0, same X: must agree
    diff = abs(a_trunc - a_full)
    print(f"[{name}] step-0 activation: truncated {a_trunc:.6g} full {a_full:.6g} diff {diff:.3g}")

    xb = x0.repeat(batch, 1) + 0.1 * torch.randn(batch, model.cfg.d_model)
    batched = make_step(model, prompt, layers, neuron, xb, full=False)
    singles = [make_step(model, prompt, layers, neuron, xb[i, None], False) for i in range(batch)]

    for _ in range(warmup):
        truncated(), full(), batched(), [s() for s in singles]
    t_trunc, t_full, t_batch, t_sep = [], [], [], []
    for _ in range(repeats):
        t_trunc.append(timed(truncated))
        t_full.append(timed(full))
        t_batch.append(timed(batched))
        t_sep.append(sum(timed(s) for s in singles))
    tr, fu = statistics.median(t_trunc), statistics.median(t_full)
    ba, se = statistics.median(t_batch), statistics.median(t_sep)
    return [
        f"{name:<10} truncated {tr:9.1f} ms  full {fu:9.1f} ms  ratio {fu / tr:5.2f}x"
        f"   (step-0 |diff| {diff:.2g}, S={layers[0]} T={layers[1]} neuron {neuron})",
        f"{name:<10} batch B={batch}: 1 batched step {ba:9.1f} ms vs {batch} separate {se:9.1f} ms"
        f"  ratio {se / ba:5.2f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the demo model")
    parser.add_argument("--gemma-layers", type=int, default=26, help="truncate Gemma-arch n_layers")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps (demo)")
    parser.add_argument("--gemma-repeats", type=int, default=3, help="timed steps (Gemma-arch)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[str] = []

    demo = load_frozen_model(FrozenModelSpec(path=str(ROOT / "assets/demo/model")))
    prompt = locate_placeholder(demo, "A detailed description of x is that")
    rows += bench_model("demo", demo, prompt, (1, 3), 7, 8, 3, args.repeats)

    if not args.quick:
        if args.gemma_layers < 13:
            parser.error("--gemma-layers must be >= 13 (target layer 12)")
        config = {**GEMMA_2_2B, "n_layers": args.gemma_layers}
        config["attn_types"] = config["attn_types"][: args.gemma_layers]
        start = time.perf_counter()
        gemma = load_frozen_model(FrozenModelSpec(config=config))
        n_params = sum(p.numel() for p in gemma.parameters())
        print(
            f"Gemma-2-2B architecture, n_layers={args.gemma_layers} (of 26), {n_params / 1e9:.2f}B "
            f"params fp32, built in {time.perf_counter() - start:.0f} s"
        )
        tokens = torch.tensor([[2, 0, 0, 0, 1234]])  # "<bos> <pad> <pad> <pad> x"
        gprompt = PlaceholderPrompt("<bos> <pad> <pad> <pad> x", "x", tokens, 4)
        rows += bench_model(
            f"gemma{args.gemma_layers}", gemma, gprompt, (8, 12), 8526, 4, 1, args.gemma_repeats
        )

    print("\n" + "\n".join(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.2f} GiB   (torch threads: {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
