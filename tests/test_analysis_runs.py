"""The three analysis runs through `train.py test` (activation patching, direct logit
attribution, logit lens): their result files, pictures and TensorBoard entries, checked against
plain TransformerLens runs on the same pairs; and clear errors for bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from circuitforge.analysis.cells import SWEEP_KINDS, sweep_cells
from circuitforge.analysis.compare import head_effects
from circuitforge.analysis.patching import patched_metric
from circuitforge.batches import PairBatch, all_pairs
from circuitforge.edges.objectives import last_read_position, logit_difference
from circuitforge.model import hooks
from tests.conftest import ROOT, results_of
from train import main

N_PAIRS, BATCH = 16, 8
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def analysis_args(save_dir, config: str, *extra: str) -> list[str]:
    return [
        "test",
        "--config",
        str(ROOT / "configs" / "analysis" / f"{config}.yaml"),
        f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--data.init_args.n_train={N_PAIRS}",
        f"--data.init_args.batch_size={BATCH}",
        *QUIET,
        *extra,
    ]


def run(tmp_path_factory, config: str, name: str, *extra: str):
    save_dir = tmp_path_factory.mktemp(config)
    cli = main(analysis_args(save_dir, config, *extra))
    path = results_of(save_dir, f"{name}.json")
    return cli, json.loads(path.read_text()), path.parent


@pytest.fixture(scope="module")
def patching(tmp_path_factory):
    return run(
        tmp_path_factory,
        "demo_patching",
        "activation_patching",
        "--model.init_args.cells_per_forward=16",
        "--model.init_args.circuit=null",
    )


FAKE_CIRCUIT = {"nodes": ["input", "0.2", "3.0", "m1", "logits"], "edges": []}


@pytest.fixture(scope="module")
def patching_with_circuit(tmp_path_factory):
    circuit = tmp_path_factory.mktemp("circuit") / "circuit.json"
    circuit.write_text(json.dumps(FAKE_CIRCUIT))
    cli, found, folder = run(
        tmp_path_factory,
        "demo_patching",
        "activation_patching",
        "--model.init_args.sweeps=[z]",
        f"--model.init_args.circuit={circuit}",
    )
    return cli, found, folder, circuit


@pytest.fixture(scope="module")
def patching_mixed_lengths(tmp_path_factory):
    """Every template (prompts of different lengths, right-padded; batches cut to their own
    width and padded back by the module) and a short last batch (12 pairs, batches of 8)."""
    return run(
        tmp_path_factory,
        "demo_patching",
        "activation_patching",
        "--data.init_args.template=null",
        "--data.init_args.n_train=12",
        "--model.init_args.sweeps=[resid_pre,z]",
        "--model.init_args.directions=[noising]",
        "--model.init_args.attribution=false",
    )


@pytest.fixture(scope="module")
def dla(tmp_path_factory):
    return run(tmp_path_factory, "demo_dla", "direct_logit_attribution")


@pytest.fixture(scope="module")
def lens(tmp_path_factory):
    return run(tmp_path_factory, "demo_logit_lens", "logit_lens")


def pair_batch(cli) -> PairBatch:
    return all_pairs(cli.datamodule.train_pairs)


@torch.no_grad()
def plain_logits(cli, tokens):
    return cli.model.frozen_model(tokens)


def plain_difference(cli, which: str) -> torch.Tensor:
    batch = pair_batch(cli)
    logits = plain_logits(cli, batch.clean if which == "clean" else batch.corrupt)
    return logit_difference(logits, batch.read, batch.answer, batch.wrong_answer)


def tensorboard(cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        cli.trainer.log_dir, size_guidance={"images": 0, "tensors": 0, "scalars": 0}
    )
    events.Reload()
    return events.Tags()


def check_pictures(cli, found, folder, experiment):
    assert found["pictures"]
    tags = tensorboard(cli)
    for name in found["pictures"]:
        with Image.open(folder / name) as image:
            image.load()
            assert image.size[0] > 200 and image.size[1] > 100
        assert f"{experiment}/{Path(name).stem}" in tags["images"]
    return tags


# ---------------------------------------------------------------------------------------------
# activation patching


def test_patching_result_file(patching, demo_model):
    cli, found, folder = patching
    n_layers, n_heads = demo_model.cfg.n_layers, demo_model.cfg.n_heads
    n_positions = cli.datamodule.train_pairs.clean.shape[1]
    assert found["pairs"] == N_PAIRS
    assert {"metric", "positions", "positions_aligned", "sweeps", "pictures"} <= set(found)
    assert "attribution_correlation" in found and "circuit_comparison" not in found
    assert set(found["sweeps"]) == {"denoising", "noising"}
    for direction, sweeps in found["sweeps"].items():
        assert list(sweeps) == list(SWEEP_KINDS)
        for kind, sweep in sweeps.items():
            columns = len(sweep_cells(demo_model, kind, n_positions)) // n_layers
            expected = {"z": n_heads, "q": n_heads, "k": n_heads, "v": n_heads}.get(kind)
            if kind in ("resid_pre", "attn_out", "mlp_out"):
                expected = n_positions
            elif kind in ("attn_layer", "mlp_layer"):
                expected = 1
            assert columns == expected
            for grid in ("exact", "attribution"):
                values = np.array(sweep[grid])
                assert values.shape == (n_layers, expected), (direction, kind, grid)
                assert np.isfinite(values).all()
            assert sweep["axes"][0] == "layer"
    print("\nattribution vs exact correlation in the run's file (16 pairs):")
    for name, r in found["attribution_correlation"].items():
        print(f"  {name:22s} r = {r:.4f}")
    assert found["attribution_correlation"]["denoising/all"] > 0.9
    # the embedding of a slot where every clean and corrupt prompt has the same token: patching
    # it changes nothing (denoising stays at the corrupted run, 0; noising at the clean run, 1)
    pairs = cli.datamodule.train_pairs
    same = (pairs.clean == pairs.corrupt).all(0).nonzero().flatten().tolist()
    assert 0 < len(same) < n_positions
    for p in same:
        assert found["sweeps"]["denoising"]["resid_pre"]["exact"][0][p] == pytest.approx(
            0, abs=1e-4
        )
        assert found["sweeps"]["noising"]["resid_pre"]["exact"][0][p] == pytest.approx(1, abs=1e-4)
    # the metric block: the plain clean and corrupted runs
    clean, corrupt = plain_difference(cli, "clean"), plain_difference(cli, "corrupt")
    metric = found["metric"]
    assert metric["clean_logit_difference"] == pytest.approx(clean.mean().item(), abs=1e-4)
    assert metric["corrupt_logit_difference"] == pytest.approx(corrupt.mean().item(), abs=1e-4)


def test_patching_positions_mark_where_prompts_differ(patching, demo_model):
    cli, found, _ = patching
    tokens = cli.datamodule.train_pairs.clean
    assert found["positions_aligned"] is True
    assert len(found["positions"]) == tokens.shape[1]
    differs = (tokens != tokens[:1]).any(0)
    assert differs.any() and not differs.all()
    for p, label in enumerate(found["positions"]):
        assert label.startswith(f"{p} ")
        assert label.endswith("*") == bool(differs[p]), label
    first = demo_model.to_str_tokens(tokens[0])
    assert found["positions"][-1] == f"{len(first) - 1} {first[-1].strip()}"


@pytest.mark.parametrize("kind", ["z", "attn_layer"])
def test_patching_grid_is_the_recomputed_sweep(patching, demo_model, kind):
    cli, found, _ = patching
    batch = pair_batch(cli)
    clean = plain_difference(cli, "clean").mean()
    corrupt = plain_difference(cli, "corrupt").mean()
    cells = sweep_cells(demo_model, kind, batch.clean.shape[1])
    for direction in ("denoising", "noising"):
        mean = patched_metric(demo_model, batch, cells, direction, cells_per_forward=64).mean(1)
        expected = ((mean - corrupt) / (clean - corrupt)).view(demo_model.cfg.n_layers, -1)
        grid = torch.tensor(found["sweeps"][direction][kind]["exact"])
        torch.testing.assert_close(grid, expected, atol=1e-4, rtol=1e-4)


def test_patching_prompts_of_different_lengths(patching_mixed_lengths, demo_model):
    cli, found, _ = patching_mixed_lengths
    batch = pair_batch(cli)
    n, width = batch.clean.shape
    assert found["pairs"] == n == 12
    reads = last_read_position(batch.read)
    assert len(set(reads.tolist())) > 1  # the prompts do differ in length
    assert found["positions_aligned"] is False and len(found["positions"]) == width
    assert (
        set(found["sweeps"]) == {"noising"} and "attribution" not in found["sweeps"]["noising"]["z"]
    )
    clean = plain_difference(cli, "clean").mean()
    corrupt = plain_difference(cli, "corrupt").mean()
    for kind in ("resid_pre", "z"):
        cells = sweep_cells(demo_model, kind, width)
        mean = patched_metric(demo_model, batch, cells, "noising", cells_per_forward=32).mean(1)
        expected = ((mean - corrupt) / (clean - corrupt)).view(demo_model.cfg.n_layers, -1)
        grid = torch.tensor(found["sweeps"]["noising"][kind]["exact"])
        torch.testing.assert_close(grid, expected, atol=1e-4, rtol=1e-4)
    # the embedding of a slot where every clean and corrupt prompt has the same token (or
    # padding): patching it does nothing (noising: the clean run, 1)
    same = (batch.clean == batch.corrupt).all(0)
    grid = np.array(found["sweeps"]["noising"]["resid_pre"]["exact"])
    np.testing.assert_allclose(grid[0, same.numpy()], 1.0, atol=1e-4)


def test_patching_one_cell_against_a_plain_hooked_run(patching, demo_model):
    """One cell of the file's grid by hand: head 1.2's z, clean into corrupted."""
    cli, found, _ = patching
    batch = pair_batch(cli)
    name = hooks.attn_z(1)
    with torch.no_grad():
        _, cache = demo_model.run_with_cache(batch.clean, names_filter=name)

        def patch(act, hook):
            act = act.clone()
            act[:, :, 2] = cache[name][:, :, 2]
            return act

        logits = demo_model.run_with_hooks(batch.corrupt, fwd_hooks=[(name, patch)])
    patched = logit_difference(logits, batch.read, batch.answer, batch.wrong_answer)
    clean = plain_difference(cli, "clean").mean()
    corrupt = plain_difference(cli, "corrupt").mean()
    expected = ((patched.mean() - corrupt) / (clean - corrupt)).item()
    grid = found["sweeps"]["denoising"]["z"]["exact"]
    assert grid[1][2] == pytest.approx(expected, abs=1e-4)


def test_patching_pictures_and_tensorboard(patching):
    cli, found, folder = patching
    expected = {
        f"{kind}_{d}.png"
        for d in ("denoising", "noising")
        for kind in ("activation_patching", "attribution_patching", "attribution_vs_exact")
    }
    assert set(found["pictures"]) == expected
    tags = check_pictures(cli, found, folder, "activation_patching")
    assert "activation_patching/attribution_correlation/text_summary" in tags["tensors"]
    assert "test/attribution_correlation/denoising/all" in tags["scalars"]


def test_patching_circuit_comparison(patching_with_circuit):
    cli, found, folder, circuit = patching_with_circuit
    assert list(found["sweeps"]["denoising"]) == ["z"]
    block = found["circuit_comparison"]
    assert block["circuit"] == str(circuit)
    assert block["heads_in_circuit"] == ["0.2", "3.0"]
    threshold = block["threshold"]
    assert threshold == 0.05
    den = np.array(found["sweeps"]["denoising"]["z"]["exact"])
    noi = np.array(found["sweeps"]["noising"]["z"]["exact"])
    effects = np.maximum(np.abs(den), np.abs(1 - noi))
    np.testing.assert_allclose(head_effects(den, noi), effects)
    names = [f"{L}.{H}" for L in range(effects.shape[0]) for H in range(effects.shape[1])]
    matter = {n for n, e in zip(names, effects.ravel()) if e >= threshold}
    assert set(block["heads_that_matter"]) == matter
    assert block["in_both"] == sorted(matter & {"0.2", "3.0"})
    assert block["matter_but_not_in_circuit"] == sorted(matter - {"0.2", "3.0"})
    assert block["in_circuit_but_small_effect"] == sorted({"0.2", "3.0"} - matter)
    assert block["recall"] == pytest.approx(len(matter & {"0.2", "3.0"}) / len(matter))
    assert block["precision"] == pytest.approx(len(matter & {"0.2", "3.0"}) / 2)
    top = block["top_heads"]
    assert len(top) == 10
    assert [t["effect"] for t in top] == sorted((t["effect"] for t in top), reverse=True)
    assert top[0]["effect"] == pytest.approx(effects.max(), abs=1e-5)
    assert all(t["in_circuit"] == (t["head"] in {"0.2", "3.0"}) for t in top)
    check_pictures(cli, found, folder, "activation_patching")


# ---------------------------------------------------------------------------------------------
# direct logit attribution


def test_dla_result_file(dla, demo_model):
    cli, found, folder = dla
    cfg = demo_model.cfg
    assert found["target"] == "logit_difference" and found["pairs"] == N_PAIRS
    heads = np.array(found["heads"])
    assert heads.shape == (cfg.n_layers, cfg.n_heads)
    shares = found["shares"]
    for layer in range(cfg.n_layers):
        assert f"m{layer}" in shares
        for head in range(cfg.n_heads):
            assert heads[layer, head] == pytest.approx(shares[f"{layer}.{head}"], abs=1e-5)
    assert "embed" in shares and "pos_embed" not in shares  # rotary: no positional embedding
    assert set(found["per_pair_spread"]) == set(shares)
    # the shares and the constant sum to the uncapped logit difference
    total = sum(shares.values()) + found["constant"]
    assert total == pytest.approx(found["before_softcap"], abs=1e-3)
    # model_value: the plain model's (capped) logit difference; before_softcap: uncapped
    assert found["model_value"] == pytest.approx(
        plain_difference(cli, "clean").mean().item(), abs=1e-4
    )
    batch = pair_batch(cli)
    name = hooks.resid_post(cfg.n_layers - 1)
    with torch.no_grad():
        _, cache = demo_model.run_with_cache(batch.clean, names_filter=name)
        rows = torch.arange(N_PAIRS)
        final = cache[name][rows, last_read_position(batch.read)]
        uncapped = demo_model.unembed(demo_model.ln_final(final[:, None]))[:, 0]  # no soft-cap
    before = uncapped[rows, batch.answer] - uncapped[rows, batch.wrong_answer]
    assert found["before_softcap"] == pytest.approx(before.mean().item(), abs=1e-4)
    assert "soft-cap" in found["softcap"]
    tags = check_pictures(cli, found, folder, "direct_logit_attribution")
    assert "direct_logit_attribution/direct_logit_attribution/text_summary" in tags["tensors"]


# ---------------------------------------------------------------------------------------------
# logit lens


def test_logit_lens_result_file(lens, demo_model):
    cli, found, folder = lens
    n_stages = demo_model.cfg.n_layers + 1
    assert found["stages"] == ["embed"] + [f"after {L}" for L in range(n_stages - 1)]
    assert found["pairs"] == N_PAIRS
    for key in (
        "answer_mean_probability",
        "answer_median_rank",
        "answer_top1_fraction",
        "wrong_answer_mean_probability",
    ):
        assert len(found[key]) == n_stages, key
    # the last stage is the model's own prediction
    batch = pair_batch(cli)
    rows = torch.arange(N_PAIRS)
    logits = plain_logits(cli, batch.clean)[rows, last_read_position(batch.read)]
    probs = logits.softmax(-1)
    answer, wrong = batch.answer, batch.wrong_answer
    assert found["answer_mean_probability"][-1] == pytest.approx(
        probs[rows, answer].mean().item(), abs=1e-5
    )
    assert found["wrong_answer_mean_probability"][-1] == pytest.approx(
        probs[rows, wrong].mean().item(), abs=1e-5
    )
    ranks = (probs > probs[rows, answer][:, None]).sum(-1).float()
    assert found["answer_median_rank"][-1] == ranks.quantile(0.5).item()
    assert found["answer_top1_fraction"][-1] == pytest.approx((ranks == 0).float().mean().item())
    prompts = found["prompts"]
    assert len(prompts) == 4
    for i, prompt in enumerate(prompts):
        assert len(prompt["top_k"]) == n_stages and all(len(t) == 5 for t in prompt["top_k"])
        assert prompt["answer"] == demo_model.to_single_str_token(int(answer[i]))
        top = probs[i].topk(5)
        last = prompt["top_k"][-1]
        assert [t["token"] for t in last] == [
            demo_model.to_single_str_token(int(t)) for t in top.indices
        ]
        np.testing.assert_allclose([t["probability"] for t in last], top.values, atol=1e-5)
        assert prompt["answer_rank"][-1] == ranks[i].item()
        assert prompt["answer_probability"][-1] == pytest.approx(
            probs[i, answer[i]].item(), abs=1e-5
        )
        assert prompt["prompt"] in demo_model.to_string(batch.clean[i])
    tags = check_pictures(cli, found, folder, "logit_lens")
    assert "logit_lens/logit_lens/prompt_0/text_summary" in tags["tensors"]
