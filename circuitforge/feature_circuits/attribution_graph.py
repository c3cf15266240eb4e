"""Feature circuits as attribution-graph JSON (circuit-tracer's files, Neuronpedia's frontend).

`attribution_graph` builds the graph dict that circuit-tracer's `create_graph_files` writes and
that Neuronpedia's graph page reads; it is checked against the vendored
`schema/graph-schema.json` (see `schema/README.md`). Ids and fields copy circuit-tracer
(github.com/decoderesearch/circuit-tracer at 4bb8c0e, `circuit_tracer/frontend/graph_models.py`
`Node.*_node` and `circuit_tracer/utils/create_graph_files.py`):

    kind       node_id                      jsNodeId           feature           layer
    feature    {layer}_{feature}_{pos}      {layer}_{feature}-0  cantor(layer, f)  "{layer}"
    error      {layer}_-1_{pos}             {layer}_{pos}-0    -1                "{layer}"
    embedding  E_{token_id}_{pos}           E_{token_id}-{pos} pos               "E"
    logit      {n_layers+1}_{vocab_id}_{pos}  L_{vocab_id}-{pos} vocab_id        "{n_layers+1}"

Our inputs: a feature/error `GraphNode.layer` is its layer; an embedding's is ignored (None);
a logit's is the model's number of layers, n_layers (circuit-tracer writes n_layers + 1).
`GraphNode.feature` is the SAE feature index, the token id of an embedding (None: 0) or the
vocabulary id of a logit. circuit-tracer's snapshot at 4bb8c0e writes error ids
`0_{layer}_{pos}`, which collide with layer-0 features (its issue #78; PRs #100/#102 moved it
to `{layer}_-1_{pos}`): we write the latter, and `check_links` refuses duplicate ids.

`feature_file` writes the per-feature JSON that the feature panel fetches from
`{feature_json_base_url}/{node.feature}.json`: circuit-tracer's `frontend/feature_models.py`
`Model` fields, checked against Neuronpedia's `schema/feature-details-schema.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SCHEMA_DIR = Path(__file__).parent / "schema"
GRAPH_SCHEMA = SCHEMA_DIR / "graph-schema.json"
FEATURE_SCHEMA = SCHEMA_DIR / "feature-details-schema.json"

# circuit-tracer's feature_type strings, which Neuronpedia's frontend switches on
FEATURE_TYPES = {
    "feature": "cross layer transcoder",
    "error": "mlp reconstruction error",
    "embedding": "embedding",
    "logit": "logit",
}
SCHEMA_VERSION = 1  # circuit-tracer's Metadata.schema_version: features indexed by cantor pairing

Kind = Literal["feature", "error", "embedding", "logit"]


@dataclass(frozen=True)
class GraphNode:
    """One node of a circuit, before it is written as circuit-tracer JSON (see module doc)."""

    kind: Kind
    layer: int | None
    position: int
    feature: int | None
    activation: float | None
    influence: float | None
    label: str
    token_prob: float | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_TYPES:
            raise ValueError(f"unknown node kind {self.kind!r}")
        if self.layer is None and self.kind != "embedding":
            raise ValueError(f"a {self.kind} node needs a layer (a logit's: n_layers): {self}")
        if self.feature is None and self.kind in ("feature", "logit"):
            raise ValueError(f"a {self.kind} node needs a feature (a logit's: vocab id): {self}")


@dataclass(frozen=True)
class GraphLink:
    """An edge between two `node_id` strings; `weight` is the attribution source -> target."""

    source: str
    target: str
    weight: float


def cantor_pairing(layer: int, feature: int) -> int:
    """circuit-tracer's global feature index (`Node.feature_node`), unpaired by its frontend."""
    return (layer + feature) * (layer + feature + 1) // 2 + feature


def node_id(node: GraphNode) -> str:
    """The node's `node_id`, as circuit-tracer writes it (the ids links refer to)."""
    layer, feature, pos = node.layer, node.feature, node.position
    return {
        "feature": f"{layer}_{feature}_{pos}",
        "error": f"{layer}_-1_{pos}",
        "embedding": f"E_{feature or 0}_{pos}",
        "logit": f"{(layer or 0) + 1}_{feature}_{pos}",
    }[node.kind]


def js_node_id(node: GraphNode) -> str:
    """The node's `jsNodeId` (circuit-tracer: reverse_ctx_idx is always 0)."""
    layer, feature, pos = node.layer, node.feature, node.position
    return {
        "feature": f"{layer}_{feature}-0",
        "error": f"{layer}_{pos}-0",
        "embedding": f"E_{feature or 0}-{pos}",
        "logit": f"L_{feature}-{pos}",
    }[node.kind]


def _node_json(node: GraphNode, n_positions: int, target_logit: bool) -> dict:
    if not 0 <= node.position < n_positions:
        raise ValueError(f"position {node.position} outside the {n_positions} prompt tokens")
    kind, layer = node.kind, int(node.layer or 0)
    feature = {
        "feature": cantor_pairing(layer, int(node.feature or 0)),
        "error": -1,
        "embedding": node.position,
        "logit": node.feature,
    }[kind]
    token_prob = float(node.token_prob or 0.0)
    clerp = node.label
    if kind == "logit":  # Neuronpedia parses the probability back out of "(p=...)"
        clerp = f'Output "{node.label if node.token is None else node.token}" (p={token_prob:.3f})'
    return {
        "node_id": node_id(node),
        "feature": feature,
        "layer": {"embedding": "E", "logit": str(layer + 1)}.get(kind, str(layer)),
        "ctx_idx": node.position,
        "feature_type": FEATURE_TYPES[kind],
        "token_prob": token_prob,
        "is_target_logit": target_logit,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "jsNodeId": js_node_id(node),
        "clerp": clerp,
        "influence": None if node.influence is None else float(node.influence),
        "activation": None if node.activation is None else float(node.activation),
    }


def check_links(graph: dict) -> None:
    """Refuse duplicate node ids and links whose source or target is not a node id."""
    ids = Counter(n["node_id"] for n in graph["nodes"])
    if duplicates := [i for i, count in ids.items() if count > 1]:
        raise ValueError(f"duplicate node ids {duplicates}")
    for link in graph["links"]:
        if link["source"] not in ids or link["target"] not in ids:
            raise ValueError(f"a link to or from an unknown node id: {link}")


def attribution_graph(
    slug: str,
    prompt: str,
    prompt_tokens: list[str],
    nodes: list[GraphNode],
    links: list[GraphLink],
    generator: dict,
    scan: str,
    *,
    node_threshold: float | None = None,
    feature_json_base_url: str | None = None,
) -> dict:
    """The attribution-graph dict (write it with `json.dump`), as circuit-tracer builds it.

    `scan` is the model id Neuronpedia looks the graph up under (e.g. "gpt2-small"); `generator`
    goes to `metadata.info.generator` ({name, version, url, email}). qParams are circuit-tracer's
    defaults. The first logit node is the target logit (circuit-tracer: most probable first).
    Nodes are kept as given (circuit-tracer drops nodes without links, except embeddings/logits).
    """
    first_logit = next((i for i, n in enumerate(nodes) if n.kind == "logit"), None)
    metadata: dict = {
        "slug": slug,
        "scan": scan,
        "transcoder_list": [],
        "prompt_tokens": list(prompt_tokens),
        "prompt": prompt,
        "schema_version": SCHEMA_VERSION,
        "info": {"generator": dict(generator)},
    }
    if node_threshold is not None:
        metadata["node_threshold"] = float(node_threshold)
    if feature_json_base_url is not None:
        metadata["feature_details"] = {"feature_json_base_url": feature_json_base_url}
    graph = {
        "metadata": metadata,
        "qParams": dict(pinnedIds=[], supernodes=[], linkType="both", clickedId="", sg_pos=""),
        "nodes": [_node_json(n, len(prompt_tokens), i == first_logit) for i, n in enumerate(nodes)],
        "links": [
            {"source": e.source, "target": e.target, "weight": float(e.weight)} for e in links
        ],
    }
    check_links(graph)
    return graph


def feature_file(
    directory: str | Path | None,
    layer: int,
    feature: int,
    examples: list[tuple[list[str], list[float]]],
    top_logits: list[tuple[str, float]],
    bottom_logits: list[tuple[str, float]],
    *,
    transcoder_id: str = "",
    quantile_name: str = "Top activations",
    quantile_values: list[float] | None = None,
    histogram: list[float] | None = None,
    activation_frequency: float | None = None,
) -> dict:
    """One feature's panel JSON (circuit-tracer's `feature_models.Model` fields), written to
    `{directory}/{index}.json` unless `directory` is None; serve `directory` as
    `metadata.feature_details.feature_json_base_url`.

    `examples` are (tokens, per-token activations), shown in one quantile group; each example's
    `train_token_ind` is its most active token. Logits are (token, value): both formats keep the
    tokens only, top sorted by value descending, bottom ascending. `index` is
    `cantor_pairing(layer, feature)`, the graph node's `feature`. The histogram fields are
    written only when given (the circuit-tracer frontend shows a bogus "0pct" for empty ones).
    """
    for tokens, acts in examples:
        if len(tokens) != len(acts) or not tokens:
            raise ValueError(f"{len(tokens)} tokens but {len(acts)} activations")
    rows = [
        {
            "tokens_acts_list": [float(a) for a in acts],
            "train_token_ind": acts.index(max(acts)),
            "is_repeated_datapoint": False,
            "tokens": list(tokens),
        }
        for tokens, acts in examples
    ]
    acts_all = [a for row in rows for a in row["tokens_acts_list"]]
    out: dict = {
        "transcoder_id": transcoder_id,
        "index": cantor_pairing(layer, feature),
        "examples_quantiles": [{"quantile_name": quantile_name, "examples": rows}],
        "top_logits": [t for t, _ in sorted(top_logits, key=lambda tv: -tv[1])],
        "bottom_logits": [t for t, _ in sorted(bottom_logits, key=lambda tv: tv[1])],
        "act_min": min(acts_all, default=0.0),
        "act_max": max(acts_all, default=0.0),
    }
    extras = [("quantile_values", quantile_values), ("histogram", histogram)]
    out |= {key: [float(v) for v in value] for key, value in extras if value is not None}
    if activation_frequency is not None:
        out["activation_frequency"] = float(activation_frequency)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / f"{out['index']}.json"
        path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    return out
