"""Load a transcoder set written by `TranscoderExport` with circuit-tracer's own loaders.

Run it in a side environment that has circuit-tracer (0.5.0 was checked, Dec 2026), e.g.:

    python3.11 -m venv /tmp/ct_venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > \
        /tmp/ct_venv/lib/python3.11/site-packages/zz_main_venv.pth   # torch etc. from ours
    /tmp/ct_venv/bin/pip install --no-deps circuit-tracer==0.5.0 "huggingface_hub<1.0" \
        "transformers==4.57.3" "tokenizers>=0.22,<=0.23.0"         # its pins, in front of ours
    /tmp/ct_venv/bin/python scripts/check_transcoders_with_circuit_tracer.py \
        runs/transcoders_demo/version_0/transcoders

It loads the folder both ways circuit-tracer does (a local folder by its absolute path, as
`ReplacementModel.from_pretrained(model, "/abs/folder")` does, and `load_transcoders(config)`
from its config.yaml), and compares each layer's output with the format's formula computed
from the files; it prints the largest difference (0.0 expected).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file


def main() -> None:
    # circuit-tracer lives in the side environment only
    import circuit_tracer  # pyright: ignore[reportMissingImports]
    from circuit_tracer.utils.caching import (  # pyright: ignore[reportMissingImports]
        load_transcoders_from_cache,
    )
    from circuit_tracer.utils.hf_utils import (  # pyright: ignore[reportMissingImports]
        load_transcoders,
    )

    folder = Path(sys.argv[1]).absolute()
    cpu = torch.device("cpu")
    print("circuit-tracer", circuit_tracer.__version__)
    by_folder, _ = load_transcoders_from_cache(
        str(folder), device=cpu, lazy_encoder=False, lazy_decoder=False
    )
    config = yaml.safe_load((folder / "config.yaml").read_text())
    by_config = load_transcoders(config, cpu, lazy_encoder=False, lazy_decoder=False)
    print(type(by_folder).__name__, len(by_folder), by_folder.feature_input_hook, "->",
          by_folder.feature_output_hook, "skip:", by_folder.skip_connection)  # fmt: skip
    torch.manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for layer, (a, b) in enumerate(zip(by_folder, by_config)):
            t = load_file(str(folder / f"layer_{layer}.safetensors"))
            x = torch.randn(64, t["W_enc"].shape[1]) * 3
            pre = x @ t["W_enc"].T + t["b_enc"]
            acts = pre * (pre > t["activation_function.threshold"])
            formula = acts @ t["W_dec"] + t["b_dec"] + x @ t["W_skip"].T
            for transcoder in (a, b):
                worst = max(worst, float((transcoder(x) - formula).abs().max()))
            print(f"layer {layer}: {type(a.activation_function).__name__}, W_enc "
                  f"{tuple(a.W_enc.shape)}")  # fmt: skip
    print("largest |circuit-tracer - formula|:", worst)


if __name__ == "__main__":
    main()
