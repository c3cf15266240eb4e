"""Models and prompt pairs shared by the analysis correctness tests."""

from __future__ import annotations

from functools import cache

import torch

from circuitforge.batches import PairBatch
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from datamodules.prompt_pairs import PromptPairDataModule
from tests.conftest import DEMO_MODEL

LN_CONFIG = dict(
    n_layers=2,
    d_model=64,
    n_heads=4,
    d_head=16,
    d_mlp=128,
    n_ctx=64,
    d_vocab=643,
    act_fn="gelu",
    normalization_type="LN",
    positional_embedding_type="standard",
)

# ---------------------------------------------------------------------------------------------
# models and pairs


def demo():
    return load_frozen_model(FrozenModelSpec(path=str(DEMO_MODEL)))


@cache
def ln_model():
    """A random GPT-2-style model (LayerNorm, biases, learned positions). A seed of its own, so
    the cached object is this file's; its biases (zero at init) are made random here so that
    every bias path (attention bias, norm bias, unembedding bias) carries something."""
    model = load_frozen_model(FrozenModelSpec(config=dict(LN_CONFIG), seed=4242))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("b"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        model.unembed.b_U.copy_(0.5 * torch.randn(model.unembed.b_U.shape, generator=g))
    return model


@cache
def pairs(n: int, template: int | None) -> PairBatch:
    """n demo IOI pairs as one batch, tokenised by the demo model (its tokenizer; the random
    model shares the vocabulary size and reuses these tensors)."""
    dm = PromptPairDataModule(task="demo_ioi", n_train=n, batch_size=n, template=template)
    dm.bind_model(demo())
    return next(iter(dm.test_dataloader()))


MODELS = {"demo": demo, "ln": ln_model}
# the demo model on one template (a position is one slot), the random model on mixed templates
# (read positions differ per pair, right padding)
BATCHES = {"demo": lambda: pairs(8, 3), "ln": lambda: pairs(8, None)}
