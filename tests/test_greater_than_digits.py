"""The decade-digit greater-than pairs (Gemma splits numbers into digits)."""

import re

from circuitforge.tasks.greater_than_digits import decade_pairs


def test_the_answer_is_the_next_decade_and_the_wrong_answer_the_previous():
    pairs = decade_pairs(200, seed=3)
    for pair in pairs:
        match = re.search(r"from the year (\d\d)(\d\d) to the year (\d\d)$", pair.clean)
        assert match is not None, pair.clean
        century, year = match.group(1, 2)
        assert pair.clean.endswith(f"to the year {century}")
        assert int(pair.answer) == int(year[0]) + 1 and int(pair.wrong_answer) == int(year[0]) - 1
        assert len(pair.answer) == len(pair.wrong_answer) == 1
        assert pair.corrupt == pair.clean.replace(f"year {century}{year}", f"year {century}01")
        assert "01 to" in pair.corrupt
    assert {p.answer for p in pairs} == {str(d) for d in range(2, 10)}


def test_the_pairs_are_drawn_by_the_seed():
    assert decade_pairs(20, seed=1) == decade_pairs(20, seed=1)
    assert decade_pairs(20, seed=1) != decade_pairs(20, seed=2)


def test_a_run_can_name_the_task():
    """`task: greater_than_decade` in a config gives these pairs (train: the seed, validation:
    seed + 1, as for every generated task)."""
    from datamodules.prompt_pairs import PromptPairDataModule

    data = PromptPairDataModule(task="greater_than_decade", n_train=8, n_validation=4, seed=5)
    assert data._generate(8, 5) == decade_pairs(8, seed=5)
