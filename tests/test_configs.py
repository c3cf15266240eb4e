"""Every shipped config parses (classes, arguments and types), without loading any model."""

import re
from pathlib import Path

import pytest

from train import main

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit.value.code in (0, None)
    printed = capsys.readouterr().out
    found = re.search(r"class_path: (lightning_modules\.\w+)", config.read_text())
    assert found is not None, f"{config} names no lightning_modules class"
    module = found.group(1)
    assert f"class_path: {module}" in printed


def test_gemma_configs_are_the_seed_study():
    for layer in (8, 11):
        text = (CONFIG_DIR / "patchscope" / f"gemma2_l{layer}_n8526.yaml").read_text()
        for line in ("pretrained: gemma-2-2b", "dtype: bfloat16", f"source_layer: {layer}",
                     "target_layer: 12", "neurons: [8526]", "lr: 0.05", "alpha: 1.5"):  # fmt: skip
            assert line in text
