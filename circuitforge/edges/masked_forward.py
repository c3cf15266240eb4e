"""The one-pass masked forward: every edge coefficient applied in a single forward pass.

THIS is where an edge coefficient mixes clean and corrupted activations. Each destination
slot (a head's Q, K or V input, an MLP's input, the logits' input) reads

    input_slot = ablated_residual_slot + sum_s  alpha[s, slot] * (out_s - ablated_out_s)

where `out_s` is what source s wrote in THIS (patched, clean-token) pass, `ablated_out_s` what
it wrote in the ablation run (the corrupted prompt, zeros, or the batch mean) and
`ablated_residual_slot` the residual the slot reads in that run (biases included, which no
edge covers). alpha = 1 everywhere gives the clean model, alpha = 0 the ablated one; the
equivalent per-edge form, `sum_s alpha out_s + (1 - alpha) ablated_out_s + biases`, is what the
slow reference (`reference.py`) computes pass by pass.

The ablation run is one forward without gradients per batch (`record`); the patched pass is
one forward whose hooks rewrite every slot input from the source outputs recorded so far.
Head outputs are `z_h @ W_O[h]`, an einsum from `hook_z`, not TransformerLens'
`use_attn_result` (which costs a batch x pos x head x d_head x d_model tensor per layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.ablation import Ablation, check_ablation
from circuitforge.edges.graph import ComponentNode, EdgeGraph, Slot
from circuitforge.model import hooks
from circuitforge.model.internals import edge_hook_points, head_outputs


@dataclass
class RunRecord:
    """Source outputs (one [b, p, group, d] tensor per source group, in source order) and the
    residual each slot group reads (`attn{L}`, `mlp{L}`, `logits`) in one run."""

    sources: list[Tensor]
    residuals: dict[str, Tensor]


class MaskedForward:
    """`record` the ablation run, then call with the dense coefficient grid."""

    def __init__(self, model: HookedTransformer, graph: EdgeGraph) -> None:
        self.model, self.graph = model, graph
        self.n_layers, self.n_heads = graph.shape.n_layers, graph.shape.n_heads
        self.has_mlp = not graph.shape.attn_only
        self.post_norm = graph.shape.post_attention_norm
        # source groups: input, then per layer the heads and the MLP; (start, end) rows
        self.groups: list[tuple[int, int]] = [(0, 1)]
        for _ in range(self.n_layers):
            start = self.groups[-1][1]
            self.groups.append((start, start + self.n_heads))
            if self.has_mlp:
                self.groups.append((start + self.n_heads, start + self.n_heads + 1))
        per_layer = 3 * self.n_heads + (1 if self.has_mlp else 0)
        starts = [layer * per_layer for layer in range(self.n_layers)]
        self.attn_slots = [(start, start + 3 * self.n_heads) for start in starts]
        self.mlp_slot = [start + 3 * self.n_heads for start in starts]
        self.logits_slot = len(graph.slots) - 1

    # --- the hooks shared by the recording and the patched pass -----------------------------
    def _source_hooks(self, on_source) -> list:
        """Hooks that call `on_source(group_index, output[b, p, g, d])` as sources are computed."""
        state: dict = {}
        fwd_hooks = [(hooks.resid_pre(0), lambda x, hook: on_source(0, x.unsqueeze(2)) or x)]
        per_layer = 2 if self.has_mlp else 1
        for layer in range(self.n_layers):
            group = 1 + layer * per_layer

            def keep_z(z, hook, layer=layer):
                state[("z", layer)] = z

            def keep_scale(scale, hook, layer=layer):
                state[("scale", layer)] = scale

            def heads(x, hook, layer=layer, group=group):
                scale = state.pop(("scale", layer), None)
                on_source(group, head_outputs(self.model, layer, state.pop(("z", layer)), scale))
                return x

            fwd_hooks += [(hooks.attn_z(layer), keep_z)]
            if self.post_norm:
                fwd_hooks += [(hooks.ln1_post_scale(layer), keep_scale)]
            fwd_hooks += [(hooks.attn_out(layer), heads)]
            if self.has_mlp:
                fwd_hooks += [
                    (
                        hooks.mlp_out(layer),
                        lambda x, hook, g=group + 1: on_source(g, x.unsqueeze(2)) or x,
                    )
                ]
        return fwd_hooks

    def _residual_hook_names(self) -> dict[str, str]:
        names = {}
        for layer in range(self.n_layers):
            names[f"attn{layer}"] = hooks.resid_pre(layer)
            if self.has_mlp:
                names[f"mlp{layer}"] = hooks.resid_mid(layer)
        names["logits"] = hooks.resid_post(self.n_layers - 1)
        return names

    @torch.no_grad()
    def record(self, tokens: Int[Tensor, "batch pos"]) -> tuple[RunRecord, Tensor]:
        """One plain forward: every source output and slot residual, and the logits."""
        sources: list[Tensor | None] = [None] * len(self.groups)
        residuals: dict[str, Tensor] = {}

        def put(group, out):
            sources[group] = out

        fwd_hooks = self._source_hooks(put)
        for key, name in self._residual_hook_names().items():
            fwd_hooks.append((name, lambda x, hook, key=key: residuals.__setitem__(key, x)))
        with edge_hook_points(self.model):
            logits = self.model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
        return RunRecord([s for s in sources if s is not None], residuals), logits

    def ablation(self, kind: Ablation, clean: RunRecord, corrupt: RunRecord | None) -> RunRecord:
        """What a removed edge carries instead of its clean value."""
        if kind == "interchange":
            if corrupt is None:
                raise ValueError("interchange ablation needs the corrupted run")
            return corrupt
        check_ablation(kind)
        # residual = biases + sum of the sources it reads, in any run
        if kind == "zero":
            sources = [torch.zeros_like(s) for s in clean.sources]
        else:
            sources = [s.mean(0, keepdim=True).expand_as(s) for s in clean.sources]
        residuals = {}
        for key, residual in clean.residuals.items():
            prefix = self._prefix_of(key)
            read = [g for g, (start, end) in enumerate(self.groups) if end <= prefix]
            biases = residual - sum(clean.sources[g].sum(2) for g in read)
            if kind == "mean":
                biases = biases.mean(0, keepdim=True).expand_as(residual)
            residuals[key] = biases + sum(sources[g].sum(2) for g in read)
        return RunRecord(sources, residuals)

    def _prefix_of(self, key: str) -> int:
        if key == "logits":
            return len(self.graph.sources)
        layer = int(key[4:] if key.startswith("attn") else key[3:])
        if key.startswith("attn"):
            return self.graph.slot_prefix(Slot(ComponentNode("head", layer, 0), "q"))
        return self.graph.slot_prefix(Slot(ComponentNode("mlp", layer)))

    # --- the patched pass --------------------------------------------------------------------
    def __call__(
        self,
        tokens: Int[Tensor, "batch pos"],
        ablated: RunRecord,
        alpha: Float[Tensor, "position source slot"],
        after: hooks.FwdHooks | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits with every edge mixed by its coefficient (`alpha` from `dense_coefficients`).
        `after`: hooks run after this pass's own (they see the mixed slot inputs)."""
        per_position = alpha.shape[0] > 1
        if per_position and alpha.shape[0] != tokens.shape[1]:
            raise ValueError(
                f"per-position edges were built for {alpha.shape[0]} positions; "
                f"this batch has {tokens.shape[1]}"
            )
        diffs: list[Tensor] = []
        stash: dict[str, Tensor] = {}

        def on_source(group, out):
            diffs.append(out - ablated.sources[group])

        def mixed(key: str, first: int, last: int) -> Tensor:
            """[b, p, last - first, d]: the inputs of slots first..last-1."""
            total = ablated.residuals[key].unsqueeze(2)
            for diff, (start, end) in zip(diffs, self.groups):
                a = alpha[:, start:end, first:last].to(total.device)
                diff = diff.to(total.device)  # a model split across devices
                if per_position:
                    total = total + torch.einsum("bpsd,pst->bptd", diff, a)
                else:
                    total = total + torch.einsum("bpsd,st->bptd", diff, a[0])
            return total

        def q_input(x, hook, layer):
            first, last = self.attn_slots[layer]
            q, k, v = mixed(f"attn{layer}", first, last).chunk(3, dim=2)
            stash["k"], stash["v"] = k, v
            return q

        fwd_hooks = self._source_hooks(on_source)
        for layer in range(self.n_layers):
            fwd_hooks += [
                (hooks.q_input(layer), lambda x, hook, i=layer: q_input(x, hook, i)),
                (hooks.k_input(layer), lambda x, hook: stash.pop("k")),
                (hooks.v_input(layer), lambda x, hook: stash.pop("v")),
            ]
            if self.has_mlp:
                slot = self.mlp_slot[layer]
                fwd_hooks.append(
                    (
                        hooks.mlp_in(layer),
                        lambda x, hook, i=layer, s=slot: mixed(f"mlp{i}", s, s + 1)[:, :, 0],
                    )
                )
        last = self.n_layers - 1
        fwd_hooks.append(
            (
                hooks.resid_post(last),
                lambda x, hook: mixed("logits", self.logits_slot, self.logits_slot + 1)[:, :, 0],
            )
        )
        fwd_hooks += after or []
        with edge_hook_points(self.model):
            return self.model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)


def dense_coefficients(
    graph: EdgeGraph, coefficients: Float[Tensor, " edge"]
) -> Float[Tensor, "position source slot"]:
    """Scatter one coefficient per edge onto the grid; cells no edge owns stay 1."""
    device = coefficients.device
    edge, position, source, slot = (t.to(device) for t in graph.cells)
    shape = (graph.n_positions or 1, len(graph.sources), len(graph.slots))
    grid = torch.ones(shape, dtype=coefficients.dtype, device=device)
    return grid.index_put((position, source, slot), coefficients[edge])
