"""The demo model's architecture: a small Gemma-2-style HookedTransformer."""

from __future__ import annotations

from dataclasses import dataclass

from transformer_lens import HookedTransformerConfig


@dataclass(frozen=True)
class DemoArchitecture:
    """Sizes of the demo model; everything else is Gemma-2's design (`config`)."""

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    n_key_value_heads: int = 2
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 128

    def config(self, d_vocab: int, seed: int = 0) -> HookedTransformerConfig:
        """RMSNorm before and after each sublayer, gated GELU MLP, rotary, grouped-query
        attention, soft-capped attention scores and logits, alternating global and local
        (sliding window) attention layers."""
        n = self.n_layers
        return HookedTransformerConfig(
            n_layers=n, d_model=self.d_model, n_ctx=self.n_ctx, d_head=self.d_head,
            n_heads=self.n_heads, n_key_value_heads=self.n_key_value_heads, d_mlp=self.d_mlp,
            d_vocab=d_vocab, act_fn="gelu_pytorch_tanh", normalization_type="RMS",
            use_normalization_before_and_after=True, gated_mlp=True,
            positional_embedding_type="rotary", rotary_dim=self.d_head, rotary_base=10000,
            attn_scores_soft_cap=50.0, output_logits_soft_cap=30.0, use_attn_scale=True,
            window_size=self.n_ctx // 2, attn_types=(["global", "local"] * n)[:n],
            original_architecture="Gemma2ForCausalLM", init_weights=True, seed=seed,
        )  # fmt: skip
