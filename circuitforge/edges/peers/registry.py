"""The peers by `method` name: `score_edges(method, forward, prepared, settings)`.

Names are MIB's methods in snake case; an unknown name is refused in one line naming the
choices (`check_methods`), before any forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from circuitforge.ablation import check_ablation
from circuitforge.edges.masked_forward import MaskedForward
from circuitforge.edges.peers.eap import eap_scores
from circuitforge.edges.peers.eap_ig import MIB_IG_STEPS, check_steps, eap_ig_inputs
from circuitforge.edges.peers.eap_ig_activations import eap_ig_activations_scores
from circuitforge.edges.peers.exact import check_edges_per_pass, exact_scores
from circuitforge.edges.peers.metric import check_objective
from circuitforge.edges.peers.random_scores import random_scores
from circuitforge.edges.peers.result import PeerScores
from circuitforge.edges.prepared import PreparedBatch

LEARNED = "learned interpolation coefficients"  # our own method's name in the comparison


@dataclass(frozen=True)
class PeerSettings:
    """What the peers share with the run: its objective and ablation, and their own knobs.

    Args:
        objective: the run's objective (`logit_diff`, `kl`, `mse`): the metric attributed.
        ablation: the run's ablation (`interchange`, `zero`, `mean`).
        seed: the random ranking's seed.
        ig_steps: integrated-gradient steps of both EAP-IG variants (MIB: 5).
        edges_per_pass: exact patching's edges per masked forward (the batch stacked as often).
    """

    objective: str = "logit_diff"
    ablation: str = "interchange"
    seed: int = 0
    ig_steps: int = MIB_IG_STEPS
    edges_per_pass: int = 32

    def __post_init__(self) -> None:
        check_objective(self.objective)
        check_ablation(self.ablation)
        check_steps(self.ig_steps)
        check_edges_per_pass(self.edges_per_pass)


Scorer = Callable[[MaskedForward, list[PreparedBatch], PeerSettings], PeerScores]

PEERS: dict[str, Scorer] = {
    "random": lambda forward, prepared, s: random_scores(len(forward.graph.edges), s.seed),
    "eap": lambda forward, prepared, s: eap_scores(forward, prepared, s.objective),
    "eap_ig_inputs": lambda forward, prepared, s: eap_ig_inputs(
        forward, prepared, s.objective, s.ig_steps
    ),
    "eap_ig_activations": lambda forward, prepared, s: eap_ig_activations_scores(
        forward, prepared, s.objective, s.ablation, s.ig_steps
    ),
    "exact": lambda forward, prepared, s: exact_scores(
        forward, prepared, s.objective, s.edges_per_pass
    ),
}


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """The names, each known and given once; a ValueError naming the choices otherwise."""
    for method in methods:
        if method not in PEERS:
            raise ValueError(f"unknown peer method {method!r}; choose from {sorted(PEERS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"a peer method is named twice in {list(methods)}")
    return tuple(methods)


def score_edges(
    method: str,
    forward: MaskedForward,
    prepared: list[PreparedBatch],
    settings: PeerSettings | None = None,
) -> PeerScores:
    """The scores of `method` for every edge of `forward.graph` on `prepared`."""
    (method,) = check_methods([method])
    return PEERS[method](forward, prepared, settings or PeerSettings())
