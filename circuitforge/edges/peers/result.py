"""What a peer method returns: its per-edge scores and what computing them cost."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor


@dataclass(frozen=True)
class PeerScores:
    """Per-edge scores of one method, with its cost.

    Args:
        method: the registry name (`eap`, `eap_ig_inputs`, ...).
        scores: per edge; signed importances where the method gives them (positive = the edge
            carries the metric up), MIB ranks them signed for CPR and by |score| for CMD.
        forwards: forward passes over one batch of the scored pairs (a batch of K stacked
            copies counts K).
        backwards: backward passes over one batch.
        seconds: wall time of the scoring.
    """

    method: str
    scores: Float[Tensor, " edge"]
    forwards: float
    backwards: float
    seconds: float

    @property
    def fb_equivalents(self) -> float:
        """Forward+backward passes over one batch, a forward counted 1/3 and a backward 2/3."""
        return (self.forwards + 2 * self.backwards) / 3

    def cost_json(self) -> dict:
        return {
            "seconds": self.seconds,
            "forwards": self.forwards,
            "backwards": self.backwards,
            "fb_equivalents": self.fb_equivalents,
        }
