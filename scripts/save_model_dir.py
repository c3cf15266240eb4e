"""Write any TransformerLens model as a local model directory (DESIGN.md contract).

python scripts/save_model_dir.py gpt2 models/gpt2            # from the hub (needs network)
python scripts/save_model_dir.py gemma-2-2b models/gemma --dtype bfloat16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuitforge.model.local_dir import save_model_dir  # noqa: E402
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained", help="TransformerLens model name")
    parser.add_argument("out", type=Path, help="directory to write")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--process-weights", action="store_true")
    a = parser.parse_args()
    spec = FrozenModelSpec(
        pretrained=a.pretrained, dtype=a.dtype, process_weights=a.process_weights
    )
    print(save_model_dir(load_frozen_model(spec), a.out))


if __name__ == "__main__":
    main()
