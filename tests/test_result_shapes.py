"""Every results JSON has one shape whatever the number of vectors: per-vector fields are lists
in the order of `vectors`, for one vector as for many (no single-vector unwrap)."""

import json
from typing import Any

import pytest

from circuitforge.results import per_vector
from tests.conftest import fit_args
from train import main

FILES = ("optimization.json", "sae_decomposition.json", "patchscope_generation.json")


def shape(value: Any) -> Any:
    """The JSON value's structure: dict keys with their shapes, a list's element shape, a type."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in value.items()}
    if isinstance(value, list):
        return ["list", shape(value[0]) if value else None]
    return type(value).__name__


def results(tmp_path, neurons: str) -> dict[str, dict]:
    """The demo run's results files, for the given neurons (one epoch of 2 steps)."""
    args = fit_args(tmp_path, f"--model.init_args.neurons={neurons}", steps=2)
    folder = f"{main(args).trainer.log_dir}/results/"
    return {name: json.load(open(folder + name)) for name in FILES}


def test_one_vector_and_two_write_the_same_shape(tmp_path):
    one = results(tmp_path / "one", "[170]")
    two = results(tmp_path / "two", "[170,7]")
    for name in FILES:
        assert shape(one[name]) == shape(two[name]), name
        assert one[name]["vectors"] == ["neuron170_seed0"]
        assert two[name]["vectors"] == ["neuron170_seed0", "neuron7_seed0"]
        listed = [k for k, v in two[name].items() if isinstance(v, list) and len(v) == 2]
        for key in listed:  # a per-vector field holds one value per vector in both runs
            if key != "history":
                assert len(one[name][key]) == 1, (name, key)
    assert one["optimization.json"]["neuron"] == [170]
    assert two["optimization.json"]["neuron"] == [170, 7]


def test_per_vector_refuses_a_field_of_another_length():
    assert per_vector(["a", "b"], x=[1, 2]) == {"vectors": ["a", "b"], "x": [1, 2]}
    with pytest.raises(ValueError, match="'x' has 1 values for 2 vectors"):
        per_vector(["a", "b"], x=[1])
    with pytest.raises(ValueError, match="distinct"):
        per_vector(["a", "a"], x=[1, 2])
