"""Bad arguments to the analysis runs fail early, with the problem named."""

from __future__ import annotations

import pytest

from tests.test_analysis_runs import analysis_args
from train import main

# ---------------------------------------------------------------------------------------------
# bad input


def raised_text(excinfo, capsys) -> str:
    """jsonargparse reports a type error on stderr and exits, or wraps a ValueError raised in
    __init__ in its own ValueError; either way the message must name the problem."""
    return str(excinfo.value) + capsys.readouterr().err


@pytest.mark.parametrize(
    "config, extra, words",
    [
        ("demo_patching", ["--model.init_args.sweeps=[resid_post]"], ["sweeps", "resid_post"]),
        ("demo_patching", ["--model.init_args.directions=[sideways]"], ["directions", "sideways"]),
        (
            "demo_patching",
            ["--model.init_args.cells_per_forward=0"],
            ["cells_per_forward must be at least 1"],
        ),
        ("demo_patching", ["--data.init_args.template=99"], ["template 99 out of range"]),
        (
            "demo_patching",
            ["--data.init_args.task=demo_greater_than"],
            ["template is for the IOI tasks", "demo_greater_than"],
        ),
        ("demo_dla", ["--model.init_args.target=foo"], ["target", "foo"]),
    ],
)
def test_bad_arguments(tmp_path, capsys, config, extra, words):
    with pytest.raises((ValueError, SystemExit)) as excinfo:
        main(analysis_args(tmp_path, config, *extra))
    text = raised_text(excinfo, capsys)
    for word in words:
        assert word in text, text[-2000:]


def test_bad_module_arguments_directly(demo_spec):
    from lightning_modules.activation_patching import ActivationPatchingModule
    from lightning_modules.direct_logit_attribution import DirectLogitAttributionModule

    with pytest.raises(ValueError, match="sweep kind must be one of"):
        ActivationPatchingModule(demo_spec, sweeps=["resid_post"])  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(ValueError, match="direction must be one of"):
        ActivationPatchingModule(demo_spec, directions=["sideways"])  # pyright: ignore[reportArgumentType]  # the bad value under test
    with pytest.raises(ValueError, match="cells_per_forward must be at least 1"):
        ActivationPatchingModule(demo_spec, cells_per_forward=0)
    with pytest.raises(ValueError, match="need at least one sweep"):
        ActivationPatchingModule(demo_spec, sweeps=[])
    with pytest.raises(ValueError, match="add z"):
        ActivationPatchingModule(demo_spec, sweeps=["resid_pre"], circuit="circuit.json")
    with pytest.raises(ValueError, match="target must be"):
        DirectLogitAttributionModule(demo_spec, target="foo")  # pyright: ignore[reportArgumentType]  # the bad value under test


def test_missing_circuit_file_names_the_path(tmp_path):
    missing = tmp_path / "no_such_run" / "circuit.json"
    extra = [
        "--model.init_args.sweeps=[z]",
        "--model.init_args.directions=[denoising]",
        "--model.init_args.attribution=false",
        f"--model.init_args.circuit={missing}",
    ]
    with pytest.raises(FileNotFoundError) as excinfo:
        main(analysis_args(tmp_path / "runs", "demo_patching", *extra))
    assert str(missing) in str(excinfo.value)
