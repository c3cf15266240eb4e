from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")


def chosen_threads() -> int:
    """The thread count of the test process and of every process it starts: OMP_NUM_THREADS
    where the environment sets it (OMP_NUM_THREADS=1 to share the cores), else 2 (CI's cores).
    Results are bit-identical only at one thread count (tests/test_determinism.py)."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given is None:
        return min(2, os.cpu_count() or 1)
    if not given.isdigit() or int(given) < 1:
        raise ValueError(f"OMP_NUM_THREADS={given!r}: the tests need one positive whole number")
    return int(given)


THREADS = chosen_threads()
os.environ["OMP_NUM_THREADS"] = str(THREADS)  # every child process inherits the same count
# OpenMP's spin-wait made 2-thread runs 5-10x slower on 2 shared cores (the Makefile's note);
# set before torch starts its threads. It changes no number, only how idle threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402

torch.set_num_threads(THREADS)

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "assets" / "demo" / "model"
DEMO_SAES = ROOT / "assets" / "demo" / "saes"
DEMO_CORPUS = ROOT / "assets" / "demo" / "corpus.jsonl"


@pytest.fixture(scope="session")
def demo_spec() -> FrozenModelSpec:
    return FrozenModelSpec(path=str(DEMO_MODEL))


@pytest.fixture(scope="session")
def demo_model(demo_spec):
    return load_frozen_model(demo_spec)


DEMO_CONFIG = ROOT / "configs" / "patchscope" / "demo.yaml"


def edited_config(tmp_path: Path, edit) -> Path:
    """A copy of the demo config after `edit(config_dict)` (for callback arguments)."""
    import yaml

    config = yaml.safe_load(DEMO_CONFIG.read_text())
    edit(config)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit_args(
    tmp_path: Path, *extra: str, epochs: int = 1, steps: int = 5, config: Path = DEMO_CONFIG
) -> list[str]:
    """`train.py fit` arguments for the demo config, writing into tmp_path."""
    return [
        "fit",
        "--config",
        str(config),
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        f"--model.init_args.steps_per_epoch={steps}",
        f"--trainer.max_epochs={epochs}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


ATLAS_CONFIG = ROOT / "configs" / "atlas" / "demo.yaml"
N_DOCUMENTS, BATCH, MAX_TOKENS, LAYER = 300, 64, 64, 3


def atlas_args(save_dir, *extra):
    return [
        "predict",
        "--config",
        str(ATLAS_CONFIG),
        f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--data.init_args.n_documents={N_DOCUMENTS}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def plain_tokens(model, text):
    """A document as TransformerLens tokenises it (BOS prepended), cut to MAX_TOKENS."""
    return model.to_tokens(text, prepend_bos=True)[0, :MAX_TOKENS].tolist()


def results_of(save_dir, name="atlas.json"):
    (path,) = save_dir.glob(f"*/version_*/results/{name}")
    return path


@pytest.fixture(scope="session")
def demo_atlas_path(tmp_path_factory):
    """atlas.json of the first N_DOCUMENTS demo documents, one process (built once)."""
    from train import main

    save_dir = tmp_path_factory.mktemp("atlas")
    main(atlas_args(save_dir))
    return results_of(save_dir)


@pytest.fixture(scope="session")
def sweep(demo_atlas_path, tmp_path_factory):
    """A neuron-explanation sweep of 6 demo neurons (tests/explanation_runs.py), built once."""
    from tests.explanation_runs import results, sweep_args
    from train import main

    save_dir = tmp_path_factory.mktemp("sweep")
    cli = main(sweep_args(save_dir, demo_atlas_path))
    return cli, results(save_dir)
