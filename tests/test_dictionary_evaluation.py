"""The chunked held-out evaluation (`splice_totals`) against one unchunked brute-force pass."""

import json

import pytest
import torch
import torch.nn.functional as F
from sae_lens import SAE

from circuitforge.data.texts import load_texts
from circuitforge.demo_world.sae_training import pad_documents, tokenize_documents
from circuitforge.dictionaries.evaluation import SpliceTotals, splice_totals
from circuitforge.model import hooks
from tests.conftest import DEMO_CORPUS, DEMO_SAES

LAYERS = (1, 2)


@pytest.fixture(scope="module")
def rows(demo_model) -> torch.Tensor:
    tok = demo_model.tokenizer
    docs = tokenize_documents(demo_model, load_texts(str(DEMO_CORPUS), 600)[-7:])
    return pad_documents(docs, 40, tok.bos_token_id, tok.pad_token_id)  # right-padded rows


@pytest.fixture(scope="module")
def dictionaries() -> dict:
    saes = {f"L{i}": SAE.load_from_disk(str(DEMO_SAES / f"layer_{i}")).eval() for i in LAYERS}
    return {name: (sae, sae.cfg.metadata.hook_name) for name, sae in saes.items()}


@torch.no_grad()
def brute_force(model, sae, hook, rows, excluded, pad) -> dict:
    """All rows in one forward; full logits held; KL by torch's kl_div."""
    scored = torch.isin(rows, torch.tensor(excluded), invert=True)
    _, cache = model.run_with_cache(rows, names_filter=hook)
    x = cache[hook][scored]
    acts = sae.encode(x)
    x_hat = sae.decode(acts)

    def splice(act, hook):
        out = act.clone()
        out[scored] = x_hat
        return out

    clean = model(rows).log_softmax(-1)[:, :-1]
    spliced = model.run_with_hooks(rows, fwd_hooks=[(hook, splice)]).log_softmax(-1)[:, :-1]
    targets = rows[:, 1:]
    keep = (targets != pad) & (rows[:, :-1] != pad)
    nll_clean = F.nll_loss(clean[keep], targets[keep])
    nll_spliced = F.nll_loss(spliced[keep], targets[keep])
    kl = F.kl_div(spliced[keep], clean[keep], log_target=True, reduction="batchmean")
    x64 = x.double()
    return {
        "explained_variance": float(
            1 - (x64 - x_hat.double()).pow(2).sum() / (x64 - x64.mean(0)).pow(2).sum()
        ),
        "l0": float((acts > 0).sum(-1).double().mean()),
        "dead_fraction": float((acts > 0).any(0).logical_not().double().mean()),
        "loss_change": float(nll_spliced - nll_clean),
        "loss_clean": float(nll_clean),
        "kl": float(kl),
        "n_tokens": int(scored.sum()),
        "n_targets": int(keep.sum()),
    }


def test_chunked_equals_brute_force(demo_model, rows, dictionaries):
    tok = demo_model.tokenizer
    excluded, pad = [tok.bos_token_id, tok.pad_token_id], tok.pad_token_id
    assert (rows == pad).any() and rows.shape[0] == 7  # padding present; chunks of 3, 3, 1
    totals = splice_totals(demo_model, dictionaries, rows, excluded, pad, chunk_rows=3)
    for name, (sae, hook) in dictionaries.items():
        got = totals[name].metrics()
        want = brute_force(demo_model, sae, hook, rows, excluded, pad)
        assert got["n_tokens"] == want["n_tokens"] and got["n_targets"] == want["n_targets"]
        assert got["n_rows"] == rows.shape[0]
        for key in ("explained_variance", "l0", "dead_fraction"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
        for key in ("loss_clean", "loss_change", "kl"):
            assert got[key] == pytest.approx(want[key], abs=2e-5), key
        assert want["kl"] > 1e-3 and abs(want["loss_change"]) > 1e-3  # real effects compared


def test_totals_add_across_calls_and_survive_json(demo_model, rows, dictionaries):
    """What a resumed evaluation relies on: two calls over halves add up to one call, and the
    running sums round-trip through JSON exactly."""
    tok = demo_model.tokenizer
    args = ([tok.bos_token_id, tok.pad_token_id], tok.pad_token_id)
    whole = splice_totals(demo_model, dictionaries, rows, *args, chunk_rows=2)
    first = splice_totals(demo_model, dictionaries, rows[:4], *args, chunk_rows=2)
    second = splice_totals(demo_model, dictionaries, rows[4:], *args, chunk_rows=2)
    for name in dictionaries:
        restored = SpliceTotals.from_json(json.loads(json.dumps(first[name].to_json())))
        assert restored.metrics() == first[name].metrics()
        assert (restored + second[name]).metrics() == pytest.approx(whole[name].metrics())


def test_bad_inputs_refused(demo_model, rows, dictionaries):
    sae, _ = dictionaries["L1"]
    with pytest.raises(ValueError, match="no hook"):
        splice_totals(demo_model, {"x": (sae, "blocks.99.hook_resid_post")}, rows, [], None)
    with pytest.raises(ValueError, match="chunk_rows"):
        splice_totals(demo_model, {"x": (sae, hooks.resid_post(1))}, rows, [], None, chunk_rows=0)


def test_heldout_metrics_keeps_evaluate_sae_numbers(demo_model, rows):
    """`DictionaryTraining.heldout_metrics` (one shared clean forward, 2 rows a forward) gives
    what it gave before: `evaluate_sae` of each dictionary alone, 8 rows a forward."""
    from types import SimpleNamespace

    from circuitforge.demo_world.sae_training import evaluate_sae
    from circuitforge.dictionaries.export import inference_copy
    from circuitforge.dictionaries.specs import DictionarySpec, training_sae
    from lightning_modules.dictionary_training import DictionaryTraining

    torch.manual_seed(0)
    specs = [DictionarySpec(hooks.resid_post(i), width=64, k=8) for i in LAYERS]
    saes = {s.key(): training_sae(s, 128, "demo") for s in specs}
    with torch.no_grad():  # biases, so that the input scale matters
        for sae in saes.values():
            sae.b_dec.normal_()
            sae.b_enc.normal_(std=0.1)
    scales = {s.key(): 0.5 + i for i, s in enumerate(specs)}
    module = SimpleNamespace(
        specs=specs,
        saes=saes,
        scale=lambda spec: scales[spec.key()],
        frozen_model=demo_model,
        device=torch.device("cpu"),
        tokens_data=lambda: SimpleNamespace(heldout=rows),
    )
    got = DictionaryTraining.heldout_metrics(module)  # type: ignore[arg-type]
    for spec in specs:
        folded = inference_copy(saes[spec.key()], scales[spec.key()]).eval()
        want = evaluate_sae(demo_model, folded, rows, spec.hook, batch_size=8)
        assert got[spec] == pytest.approx(want, abs=1e-5)
        assert got[spec]["loss_change"] > 1e-3  # an untrained dictionary changes the loss
