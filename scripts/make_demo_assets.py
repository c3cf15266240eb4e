"""Build the embedded default in `assets/demo/`: corpus, tokenizer, model directory, SAEs.

    python scripts/make_demo_assets.py

Deterministic (seeded). This first version ships a RANDOMLY INITIALISED Gemma-2-style model and
random SAEs: enough to run every pipeline offline end to end. Its decodings are not meaningful.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "demo"
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]

SHAPES = ["circle", "square", "triangle", "sphere", "cube", "line", "angle", "polygon"]
DEFINITIONS = [
    "A {s} is the set of all points in a plane that are equidistant from a fixed point .",
    "A {s} is a shape with equal sides and equal angles .",
    "A {s} is defined as the boundary of a region in space .",
]
ANIMALS = ["cat", "dog", "horse", "eagle", "whale", "fox", "owl", "bear"]
PLACES = ["forest", "river", "city", "mountain", "village", "garden", "desert", "harbor"]
NARRATIVE = [
    "The {a} lived near the {p} and slept in the afternoon .",
    "In the {p} , a {a} found food and water .",
    "People in the {p} often saw a {a} at night .",
]
NAMES = ["Mary", "John", "Alice", "Bob", "Sarah", "Tom", "Emma", "David"]
IOI = ["When {a} and {b} went to the store , {b} gave a drink to {a} ."]
PROMPT_WORDS = "A detailed description of x is that".split()


def corpus(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            lines.append(rng.choice(DEFINITIONS).format(s=rng.choice(SHAPES)))
        elif kind == 1:
            lines.append(rng.choice(NARRATIVE).format(a=rng.choice(ANIMALS), p=rng.choice(PLACES)))
        else:
            a, b = rng.sample(NAMES, 2)
            lines.append(rng.choice(IOI).format(a=a, b=b))
    return lines


def build_tokenizer(lines: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = sorted({w for line in lines for w in line.split()} | set(PROMPT_WORDS))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return tokenizer


def model_config(d_vocab: int) -> dict:
    """Gemma-2 style: RMSNorm before and after, gated MLP, rotary, soft-capping, GQA."""
    return dict(
        n_layers=4, d_model=128, n_ctx=128, d_head=32, n_heads=4, n_key_value_heads=2,
        d_mlp=512, d_vocab=d_vocab, act_fn="gelu_pytorch_tanh", normalization_type="RMS",
        use_normalization_before_and_after=True, gated_mlp=True,
        positional_embedding_type="rotary", rotary_dim=32, rotary_base=10000,
        attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, use_attn_scale=True,
        window_size=64, attn_types=["global", "local", "global", "local"],
        original_architecture="Gemma2ForCausalLM", init_weights=True,
    )  # fmt: skip


def main() -> None:
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from circuitforge.model.local_dir import load_tokenizer, save_model_dir

    OUT.mkdir(parents=True, exist_ok=True)
    lines = corpus()
    (OUT / "corpus.txt").write_text("\n".join(lines) + "\n")
    tok_path = OUT / "tokenizer.json"
    build_tokenizer(lines).save(str(tok_path))
    tokenizer = load_tokenizer(tok_path)
    tok_path.unlink()

    cfg = HookedTransformerConfig(**model_config(len(tokenizer)), seed=0)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    save_model_dir(model, OUT / "model")

    for layer in range(cfg.n_layers):
        torch.manual_seed(100 + layer)
        sae_cfg = JumpReLUSAEConfig(
            d_in=cfg.d_model,
            d_sae=4 * cfg.d_model,
            metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post", model_name="demo"),
        )
        JumpReLUSAE(sae_cfg).save_model(str(OUT / "saes" / f"layer_{layer}"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
