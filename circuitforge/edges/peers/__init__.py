"""The non-learned peers of the learned edge coefficients, each over our own masked forward on
the same graph, pairs and ablation: one small file per method, a pure function returning
`PeerScores` (per-edge scores, signed importances where the method gives them, and the cost).

    random               random_scores.py       a seeded random ranking (the floor)
    eap                  eap.py                 edge attribution patching (Syed et al.)
    eap_ig_inputs        eap_ig.py              EAP-IG, the input interpolated (MIB: 5 steps)
    eap_ig_activations   eap_ig_activations.py  EAP-IG, each layer's output interpolated
    exact                exact.py               one masked forward per edge, that edge ablated

Warm start of learned coefficients: `eap_ig_scores(forward, prepared, objective="logit_diff",
steps=5) -> Tensor` (here, from `eap_ig.py`), with `forward` a `MaskedForward` and `prepared` a
list of `PreparedBatch`: a float32 tensor, one signed score per edge of `forward.graph` in its
edge order (positive: the edge carries the logit difference up). `registry.score_edges(method,
...)` gives any peer's `PeerScores` by name.
"""

from circuitforge.edges.peers.eap_ig import eap_ig_scores

__all__ = ["eap_ig_scores"]
