import pytest

from circuitforge.patchscope.prompt import PromptError, locate_placeholder


def test_placeholder_position(demo_model):
    prompt = locate_placeholder(demo_model, "<pad> <pad> <pad> x")
    assert prompt.position == 4  # <bos> <pad> <pad> <pad> x
    assert demo_model.to_str_tokens(prompt.tokens[0])[prompt.position] == "x"
    assert locate_placeholder(demo_model, "A detailed description of x is that").position == 5


def test_prompt_without_placeholder(demo_model):
    with pytest.raises(PromptError, match="does not contain"):
        locate_placeholder(demo_model, "A detailed description of it is that")


def test_placeholder_twice(demo_model):
    with pytest.raises(PromptError, match="2 times"):
        locate_placeholder(demo_model, "x is x")


def test_placeholder_of_several_tokens(demo_model):
    with pytest.raises(PromptError, match="more than one token"):
        locate_placeholder(demo_model, "A detailed description", placeholder="A detailed")
