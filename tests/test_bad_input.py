"""Bad input gets a clear error before any optimisation step."""

import pytest

from circuitforge.patchscope.prompt import PromptError
from circuitforge.sae.matching import SAEMismatchError
from tests.conftest import edited_config, fit_args
from train import main


@pytest.mark.parametrize(
    "arg,error,message",
    [
        ("--model.init_args.source_layer=9", ValueError, "source_layer 9 out of range"),
        ("--model.init_args.target_layer=4", ValueError, "target_layer 4 out of range"),
        (
            ("--model.init_args.source_layer=2", "--model.init_args.target_layer=1"),
            ValueError,
            "after target_layer",
        ),
        ("--model.init_args.neurons=[512]", ValueError, r"neuron\(s\) \[512\] out of range"),
        ("--model.init_args.prompt=A circle is", ValueError, "does not contain"),
        ("--model.init_args.prompt=x and x", ValueError, "2 times"),
        ("--model.init_args.placeholder=A circle", ValueError, "more than one token"),
    ],
)
def test_module_arguments(tmp_path, arg, error, message):
    # jsonargparse wraps errors raised in __init__ in its own ValueError; our message is kept
    with pytest.raises(error, match=message):
        main(fit_args(tmp_path, *([arg] if isinstance(arg, str) else arg)))


def test_sae_of_another_point_is_refused(tmp_path):
    def edit(config):
        config["trainer"]["callbacks"][1]["init_args"]["sae"]["path"] = "assets/demo/saes/layer_2"

    with pytest.raises(SAEMismatchError, match="no SAE reads the injection point"):
        main(fit_args(tmp_path, config=edited_config(tmp_path, edit)))


def test_target_prompt_without_placeholder_is_refused(tmp_path):
    def edit(config):
        config["trainer"]["callbacks"][2]["init_args"]["target_prompt"] = "A detailed description"

    with pytest.raises(PromptError, match="does not contain"):
        main(fit_args(tmp_path, config=edited_config(tmp_path, edit)))
