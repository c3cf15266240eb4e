"""Our per-position feature circuit as circuit-tracer / Neuronpedia attribution-graph JSON.

Feature and error nodes keep their token position (`ctx_idx`); their `influence` is our node
score (the estimated effect on the logit difference of moving the node to its ablated value).
Every prompt token is an embedding node; the answer token at the last position is the logit
node. Links: our edges between nodes (with the residual correction), from every node to the
logit, weighted by its score, and from each embedding to the first point's nodes (the
embedding moved to its ablated value). When the first point is a residual one it cuts every
other path from the embeddings; when it is a sublayer (attn, mlp) the embeddings' direct links
to the points after it, up to the first residual one, are not computed. Node `activation` is
the feature's clean activation at its position, averaged over the prompts.
The graph's `layer` is the point's layer when every point sits at its
own layer; with several points per layer (attn, mlp, resid) it is the point's index in
residual-stream order, and the clerp names the hook.
"""

from __future__ import annotations

from circuitforge.feature_circuits.attribution_graph import (
    GraphLink,
    GraphNode,
    attribution_graph,
    node_id,
)
from circuitforge.feature_circuits.points import SAEPoint


def graph_layers(points: list[SAEPoint]) -> dict[str, int]:
    layers = [p.layer for p in points]
    if len(set(layers)) == len(layers):
        return {p.name: p.layer for p in points}
    return {p.name: i for i, p in enumerate(points)}


def circuit_attribution_graph(
    circuit: dict,
    points: list[SAEPoint],
    prompt: str,
    token_ids: list[int],
    tokens: list[str],
    answer: tuple[int, str, float],
    n_layers: int,
    slug: str,
    scan: str,
    feature_json_base_url: str | None = None,
) -> dict:
    """`circuit`: our `circuit_json` with per-position nodes; `answer`: (vocab id, token,
    probability) of the answer at the last position."""
    layer_of = graph_layers(points)
    ours: dict[str, GraphNode] = {}
    for n in circuit["nodes"]:
        if n.get("position") is None:
            raise ValueError("an attribution graph needs per-position nodes (positions: each)")
        point = n["id"].split("/")[0]
        error = n["feature"] == "error"
        label = f"{point} error" if error else f"{point} #{n['feature']}"
        if not error and n.get("promoted"):
            label += " +" + ",".join(t.strip() or repr(t) for t in n["promoted"][:3])
        ours[n["id"]] = GraphNode(
            kind="error" if error else "feature",
            layer=layer_of[point],
            position=n["position"],
            feature=None if error else int(n["feature"]),
            activation=n.get("activation"),
            influence=n["score"],
            label=label,
        )
    embeddings = [
        GraphNode("embedding", None, i, token_ids[i], None, None, tokens[i])
        for i in range(len(tokens))
    ]
    vocab_id, answer_token, probability = answer
    logit = GraphNode(
        "logit", n_layers, len(tokens) - 1, vocab_id, None, None, answer_token, probability,
        answer_token,
    )  # fmt: skip
    links = [
        GraphLink(node_id(ours[e["source"]]), node_id(ours[e["target"]]), e["weight"])
        for e in circuit["edges"]
        if e["source"] in ours and e["target"] in ours
    ]
    links += [GraphLink(node_id(g), node_id(logit), g.influence or 0.0) for g in ours.values()]
    links += [
        GraphLink(
            node_id(embeddings[int(e["source"].split("@")[1])]),
            node_id(ours[e["target"]]),
            e["weight"],
        )
        for e in circuit.get("embedding_edges", [])
        if e["target"] in ours
    ]
    return attribution_graph(
        slug,
        prompt,
        tokens,
        [*embeddings, *ours.values(), logit],
        links,
        {"name": "circuitforge", "version": "0", "url": ""},
        scan,
        feature_json_base_url=feature_json_base_url,
    )
