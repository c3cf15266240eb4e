"""What a feature-circuit run found: what `FeatureCircuitModule` leaves for its export callback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from circuitforge.feature_circuits.edges import KeptNodes
from circuitforge.feature_circuits.positions import PositionNodes


@dataclass(frozen=True)
class FeatureCircuitResult:
    """Args:
    features, errors: each point's mean node effects (per position with `positions: each`).
    kept: each point's kept nodes.
    edges: (upstream point, downstream point) -> the kept nodes' edge effects.
    quality: faithfulness, completeness and the metrics behind them, on held-out pairs.
    examples, held_out_examples: pairs scored, pairs the quality was measured on.
    quality_curve: the quality at each `nodes_per_point` of the curve.
    activations: per point, each feature's mean clean activation per position (`each` only).
    embedding_edges: [pos, first point's nodes] edges from the embedding (`each` only).
    """

    features: list[Tensor]
    errors: list[Tensor] | list[float]
    kept: list[KeptNodes] | list[PositionNodes]
    edges: dict[tuple[int, int], Tensor]
    quality: dict[str, float]
    examples: int
    held_out_examples: int
    quality_curve: list[dict[str, Any]]
    activations: list[Tensor] | None
    embedding_edges: Tensor | None
