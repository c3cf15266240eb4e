"""Small neuron-explanation sweeps of the demo model, for the tests."""

from __future__ import annotations

import json

from tests.conftest import ROOT

CONFIG = ROOT / "configs" / "explanations" / "demo.yaml"
SMALL = [  # 6 neurons in chunks of 4 (the last chunk holds 2), 2 seeds, short decodings
    "--data.init_args.stop=6",
    "--data.init_args.batch_size=4",
    "--model.init_args.steps=6",
    "--model.init_args.new_tokens=4",
    '--model.init_args.baseline={"words": 100}',
    "--trainer.enable_progress_bar=false",
]


def sweep_args(save_dir, atlas, *extra):
    return [
        "predict",
        "--config",
        str(CONFIG),
        f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--model.init_args.atlas={atlas}",
        *SMALL,
        *extra,
    ]


def results(save_dir) -> dict:
    (path,) = save_dir.glob("*/version_*/results/neuron_explanations.json")
    return json.loads(path.read_text())
