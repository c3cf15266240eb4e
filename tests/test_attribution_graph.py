"""Attribution-graph export, validated against Neuronpedia's vendored JSON schemas."""

import json
import math

import jsonschema
import pytest
from jsonschema.validators import validator_for

from circuitforge.feature_circuits.attribution_graph import (
    FEATURE_SCHEMA,
    GRAPH_SCHEMA,
    GraphLink,
    GraphNode,
    attribution_graph,
    cantor_pairing,
    check_links,
    feature_file,
    node_id,
)

N_LAYERS = 2
GENERATOR = {"name": "circuitforge", "version": "0.1.0", "url": "https://example.com/cf"}


def validator(path):
    schema = json.loads(path.read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def cantor_unpair(z):
    w = math.floor((math.sqrt(8 * z + 1) - 1) / 2)
    y = z - (w * w + w) // 2
    return w - y, y


def feature(layer, index, pos, act):
    return GraphNode("feature", layer, pos, index, act, 0.5, f"L{layer}/{index}")


NODES = [
    GraphNode("embedding", None, 0, 464, None, 0.9, "The"),
    GraphNode("embedding", None, 1, 3797, None, 0.8, " cat"),
    feature(0, 5, 0, 2.5),
    feature(0, 7, 1, 1.25),
    feature(1, 3, 1, 4.0),
    GraphNode("error", 1, 1, None, None, 0.1, "error L1"),
    GraphNode("logit", N_LAYERS, 1, 3332, None, None, "sat", token_prob=0.42, token=" sat"),
    GraphNode("logit", N_LAYERS, 1, 318, None, None, "is", token_prob=0.1),
]
IDS = ["E_464_0", "E_3797_1", "0_5_0", "0_7_1", "1_3_1", "1_-1_1", "3_3332_1", "3_318_1"]


def links():
    pairs = [(0, 2, 1.5), (1, 3, 0.75), (2, 4, -0.5), (3, 4, 2.0), (5, 6, 0.25), (4, 6, 3.0)]
    return [GraphLink(IDS[s], IDS[t], w) for s, t, w in pairs]


def graph(nodes=NODES, link_list=None, **kwargs):
    return attribution_graph(
        "cat-sat",
        "The cat",
        ["The", " cat"],
        nodes,
        links() if link_list is None else link_list,
        GENERATOR,
        "gpt2-small",
        **kwargs,
    )


def test_graph_matches_the_schema():
    g = json.loads(json.dumps(graph(node_threshold=0.8, feature_json_base_url="https://x/f")))
    validator(GRAPH_SCHEMA).validate(g)
    assert g["metadata"]["info"]["generator"] == GENERATOR
    assert g["metadata"]["feature_details"] == {"feature_json_base_url": "https://x/f"}
    assert g["metadata"]["node_threshold"] == 0.8
    assert g["qParams"] == {
        "pinnedIds": [],
        "supernodes": [],
        "linkType": "both",
        "clickedId": "",
        "sg_pos": "",
    }
    assert len(g["links"]) == 6


def test_ids_and_fields_follow_circuit_tracer():
    nodes = graph()["nodes"]
    assert [n["node_id"] for n in nodes] == IDS == [node_id(n) for n in NODES]
    assert [n["jsNodeId"] for n in nodes] == [
        "E_464-0",
        "E_3797-1",
        "0_5-0",
        "0_7-0",
        "1_3-0",
        "1_1-0",
        "L_3332-1",
        "L_318-1",
    ]
    assert [n["layer"] for n in nodes] == ["E", "E", "0", "0", "1", "1", "3", "3"]
    assert [n["feature_type"] for n in nodes] == ["embedding"] * 2 + [
        "cross layer transcoder"
    ] * 3 + ["mlp reconstruction error", "logit", "logit"]
    assert [n["feature"] for n in nodes] == [0, 1, 20, 35, 13, -1, 3332, 318]
    # circuit-tracer's frontend (assets/util.js cantorUnpair) recovers (layer, feature)
    assert [cantor_unpair(n["feature"]) for n in nodes[2:5]] == [(0, 5), (0, 7), (1, 3)]
    assert [n["is_target_logit"] for n in nodes] == [False] * 6 + [True, False]
    assert nodes[6]["clerp"] == 'Output " sat" (p=0.420)'
    assert nodes[7]["clerp"] == 'Output "is" (p=0.100)'
    assert nodes[2]["clerp"] == "L0/5" and nodes[2]["activation"] == 2.5
    assert nodes[0]["activation"] is None and nodes[0]["influence"] == 0.9


def test_a_node_missing_a_required_field_is_rejected_by_the_schema():
    check = validator(GRAPH_SCHEMA)
    for key, value in [("clerp", None), ("jsNodeId", None), ("ctx_idx", "1"), ("feature", 1.5)]:
        g = graph()
        if value is None:
            del g["nodes"][2][key]
        else:
            g["nodes"][2][key] = value
        with pytest.raises(jsonschema.ValidationError):
            check.validate(g)
    g = graph()
    del g["metadata"]["prompt_tokens"]
    with pytest.raises(jsonschema.ValidationError):
        check.validate(g)


def test_links_to_unknown_nodes_are_refused():
    g = graph()
    g["links"].append({"source": "0_99_0", "target": IDS[4], "weight": 1.0})
    validator(GRAPH_SCHEMA).validate(g)  # the schema does not tie links to nodes
    with pytest.raises(ValueError, match="unknown node id"):
        check_links(g)
    with pytest.raises(ValueError, match="unknown node id"):
        graph(link_list=[*links(), GraphLink(IDS[2], "L_3332_1", 1.0)])


def test_colliding_ids_and_bad_nodes_are_refused():
    with pytest.raises(ValueError, match="duplicate node ids"):
        graph(nodes=[*NODES, NODES[-2]])
    # circuit-tracer's old error id 0_{layer}_{pos} was a layer-0 feature's; ours is not
    graph(nodes=[*NODES, feature(0, 1, 1, 1.0)])
    with pytest.raises(ValueError, match="outside the 2 prompt tokens"):
        graph(nodes=[*NODES, feature(1, 8, 2, 1.0)])
    with pytest.raises(ValueError, match="needs a layer"):
        GraphNode("logit", None, 1, 318, None, None, "is")
    with pytest.raises(ValueError, match="needs a feature"):
        GraphNode("feature", 0, 1, None, 1.0, None, "")


def test_feature_file_matches_the_feature_schema(tmp_path):
    examples = [(["a", " cat", " sat"], [0.0, 3.0, 1.0]), (["the", " dog"], [2.0, 0.5])]
    data = feature_file(
        tmp_path,
        1,
        3,
        examples,
        [(" sat", 0.5), (" ran", 0.9)],
        [(" the", -0.1), (" of", -0.7)],
        transcoder_id="gpt2-small/blocks.1",
        activation_frequency=0.01,
    )
    written = json.loads((tmp_path / f"{cantor_pairing(1, 3)}.json").read_text())
    assert written == data
    validator(FEATURE_SCHEMA).validate(written)
    assert written["index"] == graph()["nodes"][4]["feature"]
    assert written["top_logits"] == [" ran", " sat"]
    assert written["bottom_logits"] == [" of", " the"]
    rows = written["examples_quantiles"][0]["examples"]
    assert [r["train_token_ind"] for r in rows] == [1, 0]
    assert (written["act_min"], written["act_max"]) == (0.0, 3.0)
    assert "histogram" not in written and written["activation_frequency"] == 0.01
    assert feature_file(None, 0, 5, [], [], [])["index"] == 20
    broken = dict(written)
    del broken["examples_quantiles"]
    with pytest.raises(jsonschema.ValidationError):
        validator(FEATURE_SCHEMA).validate(broken)
    with pytest.raises(ValueError, match="2 tokens but 1 activations"):
        feature_file(None, 0, 5, [(["a", "b"], [1.0])], [], [])
