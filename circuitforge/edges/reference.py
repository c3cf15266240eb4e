"""The slow, obviously-correct reference: the original algorithm, one forward pass per layer.

Taggart's interpolated edge patches: for each layer L in turn, run the model up to L with the
inputs of L's heads (and then of L's MLP) set to, per destination slot,

    sum_s alpha[s, slot] * patched_out_s + (1 - alpha[s, slot]) * ablated_out_s + biases

where `patched_out_s` are the outputs earlier passes produced and kept (with gradients), and
`biases` is what the ablated residual holds beyond its sources. A last pass feeds the logits.
That is n_layers + 1 passes, the k-th running k layers. Head outputs come from
TransformerLens' own `hook_result` (`use_attn_result`), not from our einsum, so the two
implementations share only the definition. Used by the tests (same logits as the one-pass
forward for random coefficients) and by `bench/edges.py` (the O(n_layers) baseline).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.edges.graph import ComponentNode, EdgeGraph, Slot
from circuitforge.model import hooks
from circuitforge.model.internals import edge_hook_points, normalised_head_outputs


class PassByPassForward:
    def __init__(self, model: HookedTransformer, graph: EdgeGraph) -> None:
        self.model, self.graph = model, graph
        self.n_layers, self.n_heads = graph.shape.n_layers, graph.shape.n_heads
        self.has_mlp = not graph.shape.attn_only

    def _share(self, layer: int, result: Tensor, scale: Tensor | None) -> list[Tensor]:
        """Per-head residual contributions from hook_result ([b, p, head, d_model])."""
        if scale is not None:
            result = normalised_head_outputs(self.model, layer, result, scale)
        return [result[:, :, h] for h in range(self.n_heads)]

    @torch.no_grad()
    def record(self, tokens: Int[Tensor, "batch pos"], kind: str = "interchange"):
        """Source outputs by node, and the residual each slot reads, of a plain run."""
        outs, resid, state = {}, {}, {}
        fwd_hooks: hooks.FwdHooks = [
            (hooks.resid_pre(0), lambda x, hook: outs.__setitem__(ComponentNode("input"), x))
        ]
        for layer in range(self.n_layers):
            fwd_hooks += [
                (hooks.resid_pre(layer), self._keep(resid, ("attn", layer))),
                (hooks.attn_result(layer), self._keep(state, ("result", layer))),
            ]
            if self.graph.shape.post_attention_norm:
                fwd_hooks.append((hooks.ln1_post_scale(layer), self._keep(state, ("scale", layer))))
            if self.has_mlp:
                fwd_hooks += [
                    (hooks.resid_mid(layer), self._keep(resid, ("mlp", layer))),
                    (hooks.mlp_out(layer), self._keep(outs, ComponentNode("mlp", layer))),
                ]
        fwd_hooks.append((hooks.resid_post(self.n_layers - 1), self._keep(resid, ("logits", 0))))
        with edge_hook_points(self.model, attn_result=True):
            self.model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
        for layer in range(self.n_layers):
            shares = self._share(layer, state[("result", layer)], state.get(("scale", layer)))
            outs.update({ComponentNode("head", layer, h): s for h, s in enumerate(shares)})
        # biases: what each slot's residual holds beyond the sources it reads
        biases = {}
        for key, value in resid.items():
            read = self.graph.sources[: self._prefix(key)]
            biases[key] = value - sum(outs[node] for node in read)
        if kind == "zero":
            outs = {node: torch.zeros_like(v) for node, v in outs.items()}
        elif kind != "interchange":
            raise ValueError("the reference implements interchange and zero ablation")
        return outs, biases

    @staticmethod
    def _keep(store: dict, key):
        def hook(x, hook):
            store[key] = x

        return hook

    def _prefix(self, key: tuple[str, int]) -> int:
        kind, layer = key
        if kind == "logits":
            return len(self.graph.sources)
        if kind == "attn":
            return self.graph.slot_prefix(Slot(ComponentNode("head", layer, 0), "q"))
        return self.graph.slot_prefix(Slot(ComponentNode("mlp", layer)))

    def _mix(self, slot: Slot, bias, patched, ablated, alpha) -> Tensor:
        """The slot's input, one source at a time (alpha: [position, source, slot])."""
        column = self.graph.slot_index[slot]
        total = bias
        for s, node in enumerate(self.graph.sources[: self.graph.slot_prefix(slot)]):
            a = alpha[:, s, column]
            a = a[0] if alpha.shape[0] == 1 else a[None, :, None]
            total = total + a * patched[node] + (1 - a) * ablated[node]
        return total

    def __call__(
        self,
        tokens: Int[Tensor, "batch pos"],
        ablated: tuple[dict, dict],
        alpha: Float[Tensor, "position source slot"],
    ) -> Float[Tensor, "batch pos d_vocab"]:
        ablated_outs, biases = ablated
        patched: dict[ComponentNode, Tensor] = {}
        state: dict = {}
        for layer in range(self.n_layers):
            fwd_hooks: hooks.FwdHooks = []
            if layer == 0:
                fwd_hooks.append((hooks.resid_pre(0), self._keep(patched, ComponentNode("input"))))
            for channel in ("q", "k", "v"):
                fwd_hooks.append(
                    (
                        hooks.qkv_input(layer, channel),
                        self._input_hook(layer, channel, biases, patched, ablated_outs, alpha),
                    )
                )
            fwd_hooks.append((hooks.attn_result(layer), self._keep(state, "result")))
            if self.graph.shape.post_attention_norm:
                fwd_hooks.append((hooks.ln1_post_scale(layer), self._keep(state, "scale")))
            if self.has_mlp:

                def mlp_in(x, hook, layer=layer):
                    shares = self._share(layer, state.pop("result"), state.pop("scale", None))
                    patched.update(
                        {ComponentNode("head", layer, h): s for h, s in enumerate(shares)}
                    )
                    slot = Slot(ComponentNode("mlp", layer))
                    return self._mix(slot, biases[("mlp", layer)], patched, ablated_outs, alpha)

                fwd_hooks += [
                    (hooks.mlp_in(layer), mlp_in),
                    (hooks.mlp_out(layer), self._keep(patched, ComponentNode("mlp", layer))),
                ]
            with edge_hook_points(self.model, attn_result=True):
                self.model.run_with_hooks(tokens, fwd_hooks=fwd_hooks, stop_at_layer=layer + 1)
            if not self.has_mlp:
                shares = self._share(layer, state.pop("result"), state.pop("scale", None))
                patched.update({ComponentNode("head", layer, h): s for h, s in enumerate(shares)})

        def logits_in(x, hook):
            slot = Slot(ComponentNode("logits"))
            return self._mix(slot, biases[("logits", 0)], patched, ablated_outs, alpha)

        last = hooks.resid_post(self.n_layers - 1)
        with edge_hook_points(self.model, attn_result=True):
            return self.model.run_with_hooks(tokens, fwd_hooks=[(last, logits_in)])

    def _input_hook(self, layer, channel, biases, patched, ablated_outs, alpha):
        def hook(x, hook):
            heads = [
                self._mix(
                    Slot(ComponentNode("head", layer, h), channel),
                    biases[("attn", layer)],
                    patched,
                    ablated_outs,
                    alpha,
                )
                for h in range(self.n_heads)
            ]
            return torch.stack(heads, dim=2)

        return hook
