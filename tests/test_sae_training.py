"""SAE training with sae-lens (round trip of the saved SAEs) and our SAE evaluation."""

import signal

import pytest
import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

from circuitforge.data.texts import load_texts
from circuitforge.demo_world.sae_training import (
    evaluate_sae,
    pack_documents,
    pad_documents,
    tokenize_documents,
    train_residual_saes,
)
from circuitforge.model import hooks
from tests.conftest import DEMO_CORPUS

HOOK = hooks.resid_post(1)


@pytest.fixture(scope="module")
def documents(demo_model) -> list[list[int]]:
    return tokenize_documents(demo_model, load_texts(str(DEMO_CORPUS), 600))


@pytest.fixture(scope="module")
def eval_rows(demo_model, documents) -> torch.Tensor:
    tok = demo_model.tokenizer
    # documents of different lengths, so rows are right-padded
    return pad_documents(documents[-13:], 64, tok.bos_token_id, tok.pad_token_id)


def test_packing_and_padding():
    rows = pack_documents([[5, 6, 7], [8, 9], [10, 11, 12, 13]], context=4, bos=1)
    assert rows.tolist() == [[1, 5, 6, 7], [1, 8, 9, 1], [1, 10, 11, 12]]
    padded = pad_documents([[5, 6, 7], [8]], context=3, bos=1, pad=0)
    assert padded.tolist() == [[1, 5, 6], [1, 8, 0]]


def test_trained_saes_round_trip(demo_model, documents, eval_rows, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    sigint = signal.getsignal(signal.SIGINT)
    rows = pack_documents(documents[:-13], 32, demo_model.tokenizer.bos_token_id)
    rng_state = torch.random.get_rng_state()
    paths = train_residual_saes(
        demo_model, rows, [0, 2], tmp_path / "saes", d_sae=128, k=8,
        training_tokens=24_576, seed=0, batch_size_tokens=512,
    )  # fmt: skip
    assert paths == {0: tmp_path / "saes" / "layer_0", 2: tmp_path / "saes" / "layer_2"}
    assert list(cwd.iterdir()) == []  # no sae-lens checkpoints or outputs left behind
    assert signal.getsignal(signal.SIGINT) is sigint
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for layer, path in paths.items():
        sae = SAE.load_from_disk(path)
        assert type(sae) is TopKSAE
        assert sae.cfg.metadata.hook_name == hooks.resid_post(layer)
        assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == (128, 128, 8)
        # the training-time normalisation is folded in: the SAE reads raw activations
        assert sae.cfg.normalize_activations == "none"
        metrics = evaluate_sae(demo_model, sae, eval_rows, hooks.resid_post(layer))
        assert metrics["explained_variance"] > 0.3, metrics
        assert metrics["l0"] <= 8


def test_folded_scaling_reads_raw_activations(tmp_path):
    """What training relies on: sae-lens folds the activation scale (and, on saving, the decoder
    norms) so that the saved SAE on raw x equals the trained SAE on scaled x, unscaled."""
    gen = torch.Generator().manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=16, d_sae=48, k=5))
    with torch.no_grad():
        for param in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            param.copy_(torch.randn(param.shape, generator=gen))
    x = torch.randn(64, 16, generator=gen) * 3 + 2
    scale = 0.37
    with torch.no_grad():
        expected = sae(scale * x) / scale
        sae.fold_activation_norm_scaling_factor(scale)
    sae.save_inference_model(tmp_path / "sae")
    loaded = SAE.load_from_disk(tmp_path / "sae")
    with torch.no_grad():
        assert torch.allclose(loaded(x), expected, atol=1e-4)
        assert not torch.allclose(loaded(scale * x) / scale, expected, atol=1e-2)


def test_training_is_deterministic(demo_model, documents, tmp_path):
    rows = pack_documents(documents[:100], 32, demo_model.tokenizer.bos_token_id)
    weights = []
    for run in ("a", "b"):
        train_residual_saes(
            demo_model, rows, [1], tmp_path / run, d_sae=64, k=4,
            training_tokens=2048, seed=3, batch_size_tokens=512,
        )  # fmt: skip
        weights.append(SAE.load_from_disk(tmp_path / run / "layer_1").W_enc)
    assert torch.equal(weights[0], weights[1])


def identity_topk_sae(d: int) -> TopKSAE:
    """Features +e_i and -e_i with k = d: exactly one of each pair fires, x_hat = x."""
    sae = TopKSAE(
        TopKSAEConfig(
            d_in=d, d_sae=2 * d, k=d, apply_b_dec_to_input=False,
            metadata=SAEMetadata(hook_name=HOOK),
        )
    )  # fmt: skip
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def random_jumprelu_sae(d: int, d_sae: int = 96) -> JumpReLUSAE:
    """Random weights and thresholds, so the number of active features varies per token."""
    gen = torch.Generator().manual_seed(0)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=d_sae, metadata=SAEMetadata(hook_name=HOOK)))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d, d_sae, generator=gen) * 0.1)
        sae.W_dec.copy_(torch.randn(d_sae, d, generator=gen) * 0.1)
        sae.b_enc.copy_(torch.randn(d_sae, generator=gen) * 0.1)
        sae.b_dec.copy_(torch.randn(d, generator=gen) * 0.1)
        sae.threshold.copy_(torch.rand(d_sae, generator=gen) * 0.8)
    return sae


def test_exact_reconstruction_explains_everything(demo_model, eval_rows):
    metrics = evaluate_sae(demo_model, identity_topk_sae(128), eval_rows, HOOK, batch_size=5)
    assert metrics["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["loss_change"] == pytest.approx(0.0, abs=1e-4)
    assert metrics["loss_clean"] > 0.1  # a real loss was measured, not a zero


def test_metrics_against_a_loop_over_documents(demo_model, eval_rows):
    """Each document alone (no padding), each token alone, TransformerLens' own loss."""
    sae = random_jumprelu_sae(128)
    tok = demo_model.tokenizer
    xs, n_active, ever = [], [], torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    errors, nll_clean, nll_spliced, n_targets = [], 0.0, 0.0, 0
    for row in eval_rows:
        doc = row[row != tok.pad_token_id][None]
        assert doc[0, 0] == tok.bos_token_id and (doc[0, 1:] != tok.bos_token_id).all()
        _, cache = demo_model.run_with_cache(doc, names_filter=HOOK)
        recon = []
        for x in cache[HOOK][0, 1:]:  # every token but BOS
            acts = sae.encode(x[None])[0]
            n_active.append(int((acts > 0).sum()))
            ever |= acts > 0
            recon.append(sae.decode(acts[None])[0])
            xs.append(x)
            errors.append(float(((x - recon[-1]) ** 2).sum()))
        recon = torch.stack(recon)

        def splice(act, hook, recon=recon):
            return torch.cat([act[:, :1], recon[None]], dim=1)

        clean = demo_model(doc, return_type="loss", loss_per_token=True)
        spliced = demo_model.run_with_hooks(
            doc, return_type="loss", loss_per_token=True, fwd_hooks=[(HOOK, splice)]
        )
        nll_clean += float(clean.sum())
        nll_spliced += float(spliced.sum())
        n_targets += clean.numel()
    x = torch.stack(xs).double()
    total_variance = float(((x - x.mean(0)) ** 2).sum())

    metrics = evaluate_sae(demo_model, sae, eval_rows, HOOK, batch_size=4)
    assert metrics["n_tokens"] == len(xs)
    assert metrics["l0"] == pytest.approx(sum(n_active) / len(n_active), abs=1e-9)
    assert 1 < metrics["l0"] < sae.cfg.d_sae - 1  # thresholds make it vary
    assert metrics["dead_fraction"] == pytest.approx(1 - float(ever.double().mean()), abs=1e-9)
    assert metrics["explained_variance"] == pytest.approx(
        1 - sum(errors) / total_variance, abs=1e-5
    )
    assert metrics["loss_clean"] == pytest.approx(nll_clean / n_targets, abs=1e-4)
    assert metrics["loss_spliced"] == pytest.approx(nll_spliced / n_targets, abs=1e-4)
    assert abs(metrics["loss_change"]) > 1e-3  # a random SAE changes the loss
