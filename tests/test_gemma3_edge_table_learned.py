"""The peers table's learned row (`scripts/gemma3_edge_table.py --learned`): on the demo model,
2 UGS-style steps through the table give the same scores, CPR and CMD as the same recipe run
through `train.py fit` (the CLI path of `EdgeCoefficientsModule`) and judged on the same test
pairs by MIB's curves."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from circuitforge.edges.faithfulness import faithfulness_of, mib_scores
from circuitforge.tasks.demo_tasks import demo_ioi_pairs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/edges/demo_ioi.yaml"


@pytest.fixture(autouse=True)
def keep_thread_count():
    """`measure` sets torch to 1 thread for the whole process (as a script should); put the
    suite's count back, or later tests compare runs made with different reduction orders."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"scripts/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_learned_row_is_the_recipe_run_through_the_cli(tmp_path, monkeypatch):
    table = load("gemma3_edge_table")
    recipes = load("edge_recipes")
    monkeypatch.setitem(table.TASKS, "demo_ioi", demo_ioi_pairs)
    out = tmp_path / "table.jsonl"
    args = argparse.Namespace(
        tasks=["demo_ioi"], seeds=[3], methods=None, learned=["ugs"], steps=2, bf16=False,
        pairs=16, test_pairs=8, batch_size=8, config=CONFIG, out=out, scores_dir=tmp_path,
    )  # fmt: skip
    table.measure(args)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["method"] == "learned interpolation coefficients (ugs, 2 steps)"
    assert (row["recipe"], row["steps"], row["batches"]) == ("ugs", 2, 2)
    # 2 steps x (ablation run + masked forward) + 2 clean forwards; 2 backwards
    assert (row["forwards"], row["backwards"]) == (6.0, 2.0)

    from train import main

    cli = main(
        ["fit", "--config", str(CONFIG), "--seed_everything=3", "--trainer.logger=false",
         "--trainer.callbacks=[]", f"--trainer.default_root_dir={tmp_path}",
         "--trainer.enable_progress_bar=false", "--trainer.max_epochs=-1",
         "--trainer.max_steps=2", "--data.init_args.n_train=16", "--data.init_args.seed=3",
         "--data.init_args.batch_size=8", *recipes.recipe_overrides("ugs", 2)]
    )  # fmt: skip
    module = cli.model  # type: ignore[attr-defined]
    assert cli.trainer.global_step == 2  # type: ignore[attr-defined]
    importance = module.importance().float()
    assert not torch.equal(importance, torch.sigmoid(torch.full_like(importance, 3.0)))
    saved = torch.load(
        tmp_path / "demo_ioi_seed3_learned_interpolation_coefficients_ugs_2_steps.pt"
    )
    torch.testing.assert_close(saved, importance, rtol=0, atol=1e-6)

    test = demo_ioi_pairs(8, table.TEST_SEED_OFFSET + 3)
    held_out = table.prepared_split(module.frozen_model, module.masked_forward, test, 8)
    curves = mib_scores(
        module.graph, importance, faithfulness_of(module.masked_forward, held_out, "kl")
    )
    assert row["cpr"] == pytest.approx(curves.cpr, abs=1e-6)
    assert row["cmd"] == pytest.approx(curves.cmd, abs=1e-6)


def test_an_unknown_recipe_or_no_steps_is_refused_in_one_line():
    recipes = load("edge_recipes")
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipes.recipe_settings("ugz", 10)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        recipes.recipe_settings("ugs", 0)
