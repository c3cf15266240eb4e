"""Reactivation (`validate` with `init: atlas`) against plain TransformerLens forwards and SAE."""

import copy
import json

import pytest
import torch

from circuitforge.data.texts import load_texts
from tests.conftest import DEMO_CORPUS, DEMO_SAES, ROOT, plain_tokens, results_of
from train import main

CONFIG = ROOT / "configs" / "atlas" / "reactivation_demo.yaml"
PROMPT = "A detailed description of x is that"


def reactivation_args(tmp_path, atlas, *extra, command="validate"):
    return [
        command,
        "--config",
        str(CONFIG),
        f"--model.init_args.atlas={atlas}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def atlas(demo_atlas_path):
    return json.loads(demo_atlas_path.read_text())


@torch.no_grad()
def by_hand(model, context, neuron, layer=3, prompt_text=PROMPT):
    """Vector X, the neuron at its trigger, and the neuron with X pasted over "x" of a prompt."""
    ids = plain_tokens(model, load_texts(str(DEMO_CORPUS), context["text_index"] + 1)[-1])
    _, cache = model.run_with_cache(torch.tensor([ids]))
    pos = context["token_position"]
    x = cache[f"blocks.{layer}.hook_resid_pre"][0, pos]
    original = cache[f"blocks.{layer}.mlp.hook_post"][0, pos, neuron]
    prompt = model.to_tokens(prompt_text)
    at = model.to_str_tokens(prompt_text).index("x")
    seen = {}

    def paste(resid, hook):
        resid[:, at] = x
        return resid

    def read(post, hook):
        seen["post"] = post[0, at, neuron]

    hooks = [(f"blocks.{layer}.hook_resid_pre", paste), (f"blocks.{layer}.mlp.hook_post", read)]
    model.run_with_hooks(prompt, fwd_hooks=hooks)
    return x, float(original), float(seen["post"])


def test_reactivation_report_matches_plain_forwards(atlas, demo_atlas_path, demo_model, tmp_path):
    cli = main(reactivation_args(tmp_path, demo_atlas_path))
    report = json.loads(results_of(tmp_path / "runs", "reactivation.json").read_text())
    top = atlas["neurons"]["170"]["top_k"][0]
    assert report["vectors"] == ["neuron170_seed0"]  # one vector: still lists, one per vector
    for key in ("text_index", "token_position", "trigger_token"):
        assert report[key] == [top[key]]
    assert (report["neuron"], report["layer"]) == ([170], [3])
    x, original, patched = by_hand(demo_model, top, 170)
    assert torch.allclose(cli.model.X[0], x, atol=1e-4)
    assert report["original_activation"] == pytest.approx([original], rel=1e-4)
    assert report["original_activation"] == pytest.approx([top["activation"]], rel=1e-4)
    assert report["patched_activation"] == pytest.approx([patched], rel=1e-4)
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(DEMO_SAES / "layer_2"))  # reads resid_post 2 = resid_pre 3
    feature_acts = sae.encode(x[None])[0]
    assert report["top_features"][0][0]["feature"] == int(feature_acts.argmax())
    assert report["plain_text"][0] and report["contrastive_text"][0]
    scope = json.loads(results_of(tmp_path / "runs", "patchscope_generation.json").read_text())
    assert scope["plain_text"] == report["plain_text"]


def test_no_neuron_takes_the_atlas_maximum(atlas, demo_atlas_path, tmp_path):
    main(reactivation_args(tmp_path, demo_atlas_path, "--model.init_args.neurons=null"))
    report = json.loads(results_of(tmp_path / "runs", "reactivation.json").read_text())
    best = max(atlas["neurons"], key=lambda u: atlas["neurons"][u]["activation"])
    assert report["neuron"] == [int(best)]
    assert report["original_activation"] == pytest.approx([atlas["neurons"][best]["activation"]])


def test_vector_x_seeds_the_optimisation(demo_atlas_path, tmp_path, demo_model, atlas):
    args = reactivation_args(
        tmp_path, demo_atlas_path, "--trainer.max_epochs=1", "--model.init_args.steps_per_epoch=4",
        "--trainer.callbacks=[]", "--trainer.limit_val_batches=0", command="fit",
    )  # fmt: skip
    model = main(args).model
    first = model.activation_history[0][0]  # the first step runs Vector X itself
    top = atlas["neurons"]["170"]["top_k"][0]
    _, _, at_dummy = by_hand(demo_model, top, 170, prompt_text="We say that a x")
    assert first == pytest.approx(at_dummy, rel=1e-4)
    assert model.activation_history[-1][0] > first + 1  # and the optimisation goes on from X


@pytest.mark.parametrize(
    "extra, error, message",
    [
        ("--model.init_args.target_layer=2", ValueError, "profiles layer 3"),
        ("--model.init_args.neurons=[512]", ValueError, "neuron 512 out of range"),
        # the constructor's own error, unwrapped from jsonargparse's (train.main)
        ("--model.init_args.atlas=nowhere/version_*/atlas.json", FileNotFoundError, "build it"),
    ],
)
def test_bad_reactivation_arguments(demo_atlas_path, tmp_path, extra, error, message):
    with pytest.raises(error, match=message):
        main(reactivation_args(tmp_path, demo_atlas_path, extra))


def test_an_atlas_of_another_corpus_is_refused(atlas, tmp_path):
    atlas = copy.deepcopy(atlas)
    atlas["neurons"]["170"]["top_k"][0]["trigger_token"] = "circle"
    path = tmp_path / "atlas.json"
    path.write_text(json.dumps(atlas))
    with pytest.raises(ValueError, match="not the atlas's trigger token 'circle'"):
        main(reactivation_args(tmp_path, path))


def test_an_atlas_of_another_model_is_refused(atlas, tmp_path):
    atlas = copy.deepcopy(atlas)
    atlas["neurons"]["170"]["top_k"][0]["activation"] *= 1.5
    path = tmp_path / "atlas.json"
    path.write_text(json.dumps(atlas))
    with pytest.raises(ValueError, match="the atlas was built with another model"):
        main(reactivation_args(tmp_path, path))
