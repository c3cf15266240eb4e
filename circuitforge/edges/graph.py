"""The computational graph whose edges get interpolation coefficients.

Nodes are the input (the embeddings, `blocks.0.hook_resid_pre`), every attention head, every
MLP and the output (the logits, reading `blocks.{n-1}.hook_resid_post`). A source writes into
the residual stream; a destination reads it. Every source is connected to every later
destination:

    head L.H (Q, K and V)  <-  input, heads of layers < L, MLPs of layers < L
    MLP L                  <-  input, heads of layers <= L, MLPs of layers < L
    logits                 <-  every source

Nodes are model components (`ComponentNode`; the feature circuits' nodes are SAE features,
`feature_circuits.attribution_graph.GraphNode`), edges run between them (`ComponentEdge`).

Internally the masked forward works on a dense grid of `sources x slots`. A slot is one input
a destination reads: `L.H[q]`, `L.H[k]`, `L.H[v]`, `mL`, `logits`. Sources are ordered so that
what a slot may read is always a prefix of the source list (`slot_prefix`). A `ComponentEdge`
owns one or more grid cells (all three Q/K/V cells when `split_qkv` is off; with `per_position`, one
cell at one position). Cells no edge owns (an MLP that is not a node) keep coefficient 1: they
always carry the clean-run value.

Grouped-query attention (Gemma-2): the keys and values of a head group are computed from one
input in the model; here every head gets its own K and V input (TransformerLens'
`ungroup_grouped_query_attention`), so an edge into `L.H[k]` is an edge into that head only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import torch

from circuitforge.model.internals import has_post_attention_norm

ComponentKind = Literal["input", "head", "mlp", "logits"]
CHANNELS = ("q", "k", "v")


@dataclass(frozen=True)
class ComponentNode:
    """A model component of the edge graph: the input, a head, an MLP or the logits."""

    kind: ComponentKind
    layer: int = -1
    head: int = -1

    @property
    def name(self) -> str:
        if self.kind == "head":
            return f"{self.layer}.{self.head}"
        if self.kind == "mlp":
            return f"m{self.layer}"
        return self.kind

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Slot:
    """One input a destination reads: a head's Q, K or V input, an MLP's input, the logits'."""

    node: ComponentNode
    channel: str | None = None

    @property
    def name(self) -> str:
        return f"{self.node.name}[{self.channel}]" if self.channel else self.node.name


@dataclass(frozen=True)
class ComponentEdge:
    src: ComponentNode
    dest: ComponentNode
    channel: str | None = None  # q/k/v when Q/K/V are separate edges
    position: int | None = None  # the token position, for per-position graphs

    @property
    def name(self) -> str:
        dest = f"{self.dest.name}[{self.channel}]" if self.channel else self.dest.name
        where = f"@{self.position}" if self.position is not None else ""
        return f"{self.src.name}->{dest}{where}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class GraphShape:
    """What the graph needs to know about the model."""

    n_layers: int
    n_heads: int
    attn_only: bool = False
    # Post-norm (Gemma-2): the attention output is normalised after the heads are summed; a
    # head's share is then `(z_h W_O[h] + b_O / H) * w / scale`, with the norm's scale taken
    # from the run that produced it. Recorded so exports say how heads were split.
    post_attention_norm: bool = False

    @classmethod
    def of(cls, model) -> GraphShape:
        cfg = model.cfg
        return cls(
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            attn_only=bool(cfg.attn_only),
            post_attention_norm=has_post_attention_norm(model),
        )


@dataclass(frozen=True)
class EdgeGraph:
    shape: GraphShape
    split_qkv: bool = True
    include_mlp: bool = True
    n_positions: int | None = None  # per-position edges over this many positions when set
    edges: tuple[ComponentEdge, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.shape.attn_only and self.include_mlp:
            object.__setattr__(self, "include_mlp", False)
        object.__setattr__(self, "edges", tuple(self._enumerate_edges()))

    # --- the dense grid ---------------------------------------------------------------------
    @cached_property
    def sources(self) -> tuple[ComponentNode, ...]:
        out = [ComponentNode("input")]
        for layer in range(self.shape.n_layers):
            out += [ComponentNode("head", layer, h) for h in range(self.shape.n_heads)]
            if not self.shape.attn_only:
                out.append(ComponentNode("mlp", layer))
        return tuple(out)

    @cached_property
    def slots(self) -> tuple[Slot, ...]:
        out = []
        for layer in range(self.shape.n_layers):
            for channel in CHANNELS:
                out += [
                    Slot(ComponentNode("head", layer, h), channel)
                    for h in range(self.shape.n_heads)
                ]
            if not self.shape.attn_only:
                out.append(Slot(ComponentNode("mlp", layer)))
        out.append(Slot(ComponentNode("logits")))
        return tuple(out)

    @cached_property
    def source_index(self) -> dict[ComponentNode, int]:
        return {node: i for i, node in enumerate(self.sources)}

    @cached_property
    def slot_index(self) -> dict[Slot, int]:
        return {slot: i for i, slot in enumerate(self.slots)}

    def slot_prefix(self, slot: Slot) -> int:
        """How many sources (a prefix of `sources`) `slot` reads."""
        per_layer = self.shape.n_heads + (0 if self.shape.attn_only else 1)
        node = slot.node
        if node.kind == "head":
            return 1 + node.layer * per_layer
        if node.kind == "mlp":
            return 1 + node.layer * per_layer + self.shape.n_heads
        return len(self.sources)

    # --- edges ------------------------------------------------------------------------------
    def _is_node(self, node: ComponentNode) -> bool:
        return node.kind != "mlp" or self.include_mlp

    def _enumerate_edges(self):
        dests: list[tuple[ComponentNode, str | None]] = []
        for slot in self.slots:
            if not self._is_node(slot.node):
                continue
            if slot.channel is None or self.split_qkv:
                dests.append((slot.node, slot.channel))
            elif slot.channel == "q":  # one edge for all three inputs
                dests.append((slot.node, None))
        positions = [None] if self.n_positions is None else list(range(self.n_positions))
        for dest, channel in dests:
            prefix = self.slot_prefix(Slot(dest, channel or ("q" if dest.kind == "head" else None)))
            for src in self.sources[:prefix]:
                if not self._is_node(src):
                    continue
                for position in positions:
                    yield ComponentEdge(src, dest, channel, position)

    @cached_property
    def edge_index(self) -> dict[ComponentEdge, int]:
        return {edge: i for i, edge in enumerate(self.edges)}

    @cached_property
    def cells(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(edge, position, source, slot) index vectors: every grid cell each edge owns."""
        rows: list[tuple[int, int, int, int]] = []
        for i, edge in enumerate(self.edges):
            unsplit_head = edge.dest.kind == "head" and edge.channel is None
            channels = CHANNELS if unsplit_head else (edge.channel,)
            for channel in channels:
                slot = self.slot_index[Slot(edge.dest, channel)]
                pos = 0 if edge.position is None else edge.position
                rows.append((i, pos, self.source_index[edge.src], slot))
        t = torch.tensor(rows, dtype=torch.long).reshape(-1, 4)
        return t[:, 0], t[:, 1], t[:, 2], t[:, 3]

    def describe(self) -> dict:
        return {
            "n_layers": self.shape.n_layers,
            "n_heads": self.shape.n_heads,
            "split_qkv": self.split_qkv,
            "include_mlp": self.include_mlp,
            "per_position": self.n_positions,
            "head_outputs": (
                "normalised share: (z_h W_O[h] + b_O/H) * w / scale of the post-attention norm"
                if self.shape.post_attention_norm
                else "z_h W_O[h] (b_O is not an edge: it is the same in every run)"
            ),
            "key_value_inputs": "one per head (grouped keys/values are ungrouped)",
            "n_edges": len(self.edges),
        }

    def __str__(self) -> str:
        return "\n".join(edge.name for edge in self.edges)
