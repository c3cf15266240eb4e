"""The long Gemma dictionary run resumes only while its experiment settings stay what they were.

`--ckpt_path last` compares `experiment_settings` of the parsed config (every init argument of the
module, the datamodule, each dictionary spec and our callbacks, defaults included) with the ones
stored in the run's checkpoint. `tests/fixtures/dictionaries/gemma3_resid_settings.json` is a copy
of what `runs/dictionaries_gemma3/version_1/checkpoints/last.ckpt` stores
(`checkpoint["circuitforge_config"]["settings"]`, Dec 2026): a new argument of
`DictionaryTraining` / `ActivationTokensDataModule` / `DictionarySpec` / `DictionaryExport`, or a
changed default, would make that run refuse to resume, and fails here first.
"""

from __future__ import annotations

import json

import yaml

from circuitforge.checkpoints import experiment_settings
from circuitforge.model.spec import FrozenModelSpec
from tests.conftest import ROOT
from train import CircuitForgeCLI, main

PINNED = ROOT / "tests" / "fixtures" / "dictionaries" / "gemma3_resid_settings.json"
CONFIG = ROOT / "configs" / "dictionaries" / "gemma3_resid.yaml"


def _settings_only(monkeypatch):
    """train.py's CLI (its parser, defaults and settings), without building the model or running."""

    def after_instantiate_classes(self) -> None:  # train.py's, from the parsed config
        dumped = self.parser.dump(self.config, skip_link_targets=False, skip_none=False)
        config = yaml.safe_load(dumped)[self.subcommand]
        spec = FrozenModelSpec(**config["model"]["init_args"]["model"])
        self.settings = experiment_settings(config, spec.identity())

    monkeypatch.setattr(CircuitForgeCLI, "instantiate_classes", lambda self: None)
    monkeypatch.setattr(CircuitForgeCLI, "after_instantiate_classes", after_instantiate_classes)
    monkeypatch.setattr(CircuitForgeCLI, "_run_subcommand", lambda self, subcommand: None)


def settings_of(monkeypatch, config, *extra: str) -> dict:
    _settings_only(monkeypatch)
    cli = main(["fit", "--config", str(config), *extra])
    return json.loads(json.dumps(cli.settings))  # as stored: tuples become lists


def test_the_gemma_run_keeps_its_experiment_settings(monkeypatch):
    pinned = json.loads(PINNED.read_text())
    mine = settings_of(monkeypatch, CONFIG)
    added = sorted(mine.keys() - pinned.keys())
    removed = sorted(pinned.keys() - mine.keys())
    changed = sorted(k for k in mine.keys() & pinned.keys() if mine[k] != pinned[k])
    assert not (added or removed or changed), (
        f"runs/dictionaries_gemma3 could no longer resume: added {added}, removed {removed}, "
        f"changed {[(k, pinned[k], mine[k]) for k in changed]}"
    )


def test_the_settings_check_sees_a_new_setting(monkeypatch):
    """It can fail: one more setting (here the trainer's, as a new init default would be) shows."""
    pinned = json.loads(PINNED.read_text())
    mine = settings_of(monkeypatch, CONFIG, "--trainer.accumulate_grad_batches=2")
    assert mine != pinned and mine["trainer.accumulate_grad_batches"] == 2
