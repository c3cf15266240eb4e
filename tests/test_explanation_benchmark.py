"""The explanation benchmark (issue 26) against independent computations on the demo model: each
score recomputed the slow way (one text, one carrier, one prompt, one context at a time, plain
TransformerLens forwards), the "explained" rule by hand, the run end to end, resumed, and its bad
inputs refused before any forward."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer
from transformer_lens.components.transformer_block import TransformerBlock

from circuitforge.explanations.benchmark.carriers import carry
from circuitforge.explanations.benchmark.explained import explained, method_table
from circuitforge.explanations.benchmark.fluency import text_cross_entropy
from circuitforge.explanations.benchmark.held_out import make_contexts, neuron_quantiles
from circuitforge.explanations.benchmark.output_effect import content_ids, neuron_effects
from circuitforge.explanations.benchmark.prediction import pick_contexts, prediction_score
from circuitforge.explanations.benchmark.ranking import rank_of
from circuitforge.explanations.benchmark.split import neuron_split
from circuitforge.explanations.benchmark.sufficiency import carrier_maxima, normalised
from circuitforge.explanations.methods.clamp import make_probe
from circuitforge.model.tokenizer import decode, maybe_token_id, token_id, tokenizer_of
from lightning_modules.explanation_benchmark import ExplanationBenchmarkModule
from tests.conftest import DEMO_CORPUS, N_DOCUMENTS, ROOT
from train import main

POST = "blocks.3.mlp.hook_post"
TEXTS = ["the lion lives in a pride", "A square has four sides", "water", ""]
CARRIERS = [
    "We saw {E} in the book.",
    "Tom said {E} to Clara.",
    "It is {E} and it is near the river.",
]


def plain_post(model, ids: list[int]) -> torch.Tensor:
    _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=POST)
    return cache[POST][0]


def documents(model, n: int) -> list[list[int]]:
    texts = [json.loads(line)["text"] for line in DEMO_CORPUS.read_text().splitlines()[:n]]
    return [model.to_tokens(t, prepend_bos=True)[0, :64].tolist() for t in texts]


def test_the_unit_is_numpys_quantile_of_every_token_but_bos(demo_model):
    docs = documents(demo_model, 12)
    ours = neuron_quantiles(demo_model, 3, docs, 0.999, batch_size=5)
    every = np.concatenate([plain_post(demo_model, d)[1:].numpy() for d in docs])
    np.testing.assert_allclose(
        ours.numpy(), np.quantile(every, 0.999, axis=0), rtol=1e-4, atol=1e-5
    )


def test_s1_is_the_max_over_e_in_each_carrier_alone_averaged(demo_model):
    tokenizer = tokenizer_of(demo_model)
    ours = carrier_maxima(demo_model, 3, TEXTS, CARRIERS, batch_size=5)
    for i, text in enumerate(TEXTS):
        per_carrier = []
        for c in CARRIERS:
            carried = carry(tokenizer, c, text, maybe_token_id(tokenizer, "bos"))
            span = decode(tokenizer, carried.ids[carried.start : carried.stop])
            assert span.strip() == text  # E's tokens, and only E's
            assert decode(tokenizer, carried.ids[1:]) == c.replace("{E}", text).replace(
                "  ", " "
            ).replace(" .", ".")
            if text:
                post = plain_post(demo_model, carried.ids)
                per_carrier.append(post[carried.start : carried.stop].max(0).values)
        if text:
            torch.testing.assert_close(
                ours[i], torch.stack(per_carrier).mean(0), rtol=1e-4, atol=1e-5
            )
        else:
            assert ours[i].isnan().all()
    unit = torch.linspace(-1, 2, ours.shape[1])
    scaled = normalised(ours, unit)
    assert scaled[:, unit <= 0].isnan().all()
    torch.testing.assert_close(scaled[0, -1], ours[0, -1] / 2)


def test_s2_rank_and_auroc_equal_sorting_and_counting_pairs():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 6, (50,), generator=g).float()
    scores[7] = float("nan")
    clean = [-math.inf if math.isnan(v) else float(v) for v in scores]
    for index in (0, 5, 20):
        got = rank_of(scores, index)
        assert got is not None
        order = sorted(range(50), key=lambda j: (-clean[j], j != index))  # ties: ours first
        assert got["rank"] == order.index(index) + 1
        others = [clean[j] for j in range(50) if j != index]
        pairs = [1.0 if clean[index] > v else 0.5 if clean[index] == v else 0.0 for v in others]
        assert got["auroc"] == pytest.approx(sum(pairs) / len(pairs))
        assert got["top10"] == (got["rank"] <= 10) and got["reciprocal_rank"] == 1 / got["rank"]
    assert rank_of(scores, 7) is None


def clamped_log_probs(model, ids: list[int], neuron: int, value: float) -> torch.Tensor:
    def hook(act, hook):
        act[0, 1:, neuron] = value
        return act

    return model.run_with_hooks(torch.tensor([ids]), fwd_hooks=[(POST, hook)])[0].log_softmax(-1)


def test_s3_clamp_reaches_the_kl_and_its_log_prob_change_equals_one_prompt_at_a_time(demo_model):
    prompts = ["the river runs to the sea and the", "Clara used the hammer to drive", "a cat"]
    probe = make_probe(demo_model, 3, prompts, 24)
    (effects,) = neuron_effects(demo_model, probe, [40], [0.05])
    effect = effects[0]
    assert abs(effect.kl - 0.05) <= 0.1 * 0.05
    kls, changes, count = 0.0, torch.zeros(demo_model.cfg.d_vocab), 0
    for text in prompts:
        ids = demo_model.to_tokens(text, prepend_bos=True)[0].tolist()
        clean = demo_model(torch.tensor([ids]))[0].log_softmax(-1)
        clamped = clamped_log_probs(demo_model, ids, 40, effect.strength)
        for pos in range(1, len(ids)):  # the clamp acts after <bos>
            kls += float((clean[pos].exp() * (clean[pos] - clamped[pos])).sum())
            changes += clamped[pos] - clean[pos]
            count += 1
    assert effect.kl == pytest.approx(kls / count, rel=1e-3, abs=1e-6)
    torch.testing.assert_close(effect.change, changes / count, rtol=1e-3, atol=1e-4)
    ids = content_ids(demo_model, "the lion and a pride of cats")
    words = [decode(tokenizer_of(demo_model), [i]).strip() for i in ids]
    assert "the" not in words and "a" not in words and "lion" in words


def test_s4_is_the_auroc_of_the_surprisal_gains_of_each_context_alone(demo_model):
    contexts = make_contexts(demo_model, 3, documents(demo_model, 20), window=8)
    neuron, text = 40, "the lion lives in a pride"
    top, rest = pick_contexts(contexts.activation[:, neuron], 4, neuron)  # seed 0's draw
    column = contexts.activation[:, neuron].numpy()
    assert (column[top.numpy()] >= np.quantile(column, 0.9)).all()
    assert (column[rest.numpy()] < np.quantile(column, 0.9)).all()
    bos = token_id(tokenizer_of(demo_model), "bos")
    prefix = demo_model.to_tokens(text + "\n", prepend_bos=False)[0].tolist()

    def nll(ids: list[int], first: int) -> float:
        logp = demo_model(torch.tensor([ids]))[0].log_softmax(-1)
        return -float(sum(logp[p - 1, ids[p]] for p in range(first, len(ids))) / (len(ids) - first))

    gains = []
    for i in torch.cat([top, rest]).tolist():
        window = contexts.tokens[i].tolist()
        alone = nll([bos, *window], 1)
        assert contexts.surprisal[i] == pytest.approx(alone, rel=1e-4)
        gains.append(alone - nll([bos, *prefix, *window], 1 + len(prefix)))
    pos, neg = gains[: len(top)], gains[len(top) :]
    pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg]
    ours = prediction_score(demo_model, contexts, neuron, text, 4, seed=0)
    assert len(top) == len(rest) == 4 and ours == pytest.approx(sum(pairs) / len(pairs))


def test_fluency_is_the_models_own_loss_on_the_text(demo_model: HookedTransformer):
    ours = text_cross_entropy(demo_model, TEXTS)
    for text, value in zip(TEXTS, ours):
        if not text:
            assert value is None
            continue
        loss = demo_model(demo_model.to_tokens(text, prepend_bos=True), return_type="loss")
        assert value == pytest.approx(float(loss), rel=1e-4)


def score(s1, c1, top10, s3, c3):
    s2 = {"top10": top10, "top1": False, "rank": 5 if top10 else 50, "reciprocal_rank": 0.1,
          "auroc": 0.9}  # fmt: skip
    return {"text": "", "s1": s1, "s1_control": c1, "s2": s2, "s3": s3, "s3_control": c3,
            "one_of_three": {"0.5": s3 > c3}, "s4": 0.5, "fluency": 3.0}  # fmt: skip


def test_explained_needs_s1_and_s3_above_their_controls_95th_percentile_and_the_top_10():
    controls = [float(i) for i in range(20)]  # 95th percentile (linear): 18.05
    rows = [
        {"neuron": i, "methods": {"a": score(s1, controls[i], top, s3, controls[i]),
                                  "m0_context": score(0.0, controls[i], True, 0.0, controls[i])}}
        for i, (s1, top, s3) in enumerate(
            [(19.0, True, 19.0), (18.0, True, 19.0), (19.0, False, 19.0), (19.0, True, 18.0)]
            + [(0.0, True, 0.0)] * 16
        )
    ]  # fmt: skip
    flags = explained(rows, ["a", "m0_context"])
    assert flags["a"][:4] == [True, False, False, False] and not any(flags["a"][4:])
    table = method_table(rows, ["m0_context", "a"], "m0_context")
    entry = table["methods"][1]
    assert entry["fraction_explained"] == pytest.approx(1 / 20)
    assert entry["against_m0_context"]["explained"]["only_method"] == 1
    assert table["union"]["fraction_explained"] == pytest.approx(1 / 20)


def test_the_split_is_fixed_by_its_seed_and_disjoint():
    dev, held = neuron_split(2048, 256, 0)
    assert len(dev) == 256 and len(held) == 1792 and not set(dev) & set(held)
    assert (dev, held) == neuron_split(2048, 256, 0) and dev != neuron_split(2048, 256, 1)[0]


# --- the run ---------------------------------------------------------------------------------
CONFIG = ROOT / "configs" / "explanations" / "benchmark_demo.yaml"
SMALL = [
    "--model.init_args.methods=[m0_context, m2_patchscope, m4_vocab_proj]",
    "--model.init_args.steps=4",
    "--model.init_args.new_tokens=4",
    '--model.init_args.baseline={"words": 100}',
    "--model.init_args.held_out.n_documents=40",
    "--model.init_args.s4_per_side=2",
    "--model.init_args.split=all",
    "--model.init_args.max_neurons=6",
    "--data.init_args.batch_size=3",
    "--trainer.enable_progress_bar=false",
]


def bench_args(save_dir, atlas, *extra):
    return [
        "predict", "--config", str(CONFIG), f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--model.init_args.atlas={atlas}", f"--model.init_args.held_out.start={N_DOCUMENTS}",
        *SMALL, *extra,
    ]  # fmt: skip


def results(save_dir) -> dict:
    (path,) = save_dir.glob("*/version_*/results/neuron_explanations_benchmark.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def bench(demo_atlas_path, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("bench")
    main(bench_args(save_dir, demo_atlas_path))
    return save_dir, results(save_dir)


def test_the_run_writes_every_methods_text_and_scores_per_neuron(bench, demo_model):
    save_dir, out = bench
    names = ["m0_context", "m2_patchscope", "m4_vocab_proj", "control_random_neuron",
             "control_mean_vector", "control_shuffled"]  # fmt: skip
    assert [r["neuron"] for r in out["rows"]] == list(range(6))
    assert [e["method"] for e in out["summary"]["methods"]] == names
    for row in out["rows"]:
        assert list(row["methods"]) == names and set(row["partners"]) <= set(range(6))
        m0 = row["methods"]["m0_context"]
        assert row["methods"]["control_random_neuron"]["text"] == next(
            r["methods"]["m0_context"]["text"]
            for r in out["rows"]
            if r["neuron"] == row["partners"][0]
        )
        assert m0["s1_control"] == pytest.approx(row["methods"]["control_random_neuron"]["s1"])
        assert len(demo_model.to_tokens(m0["text"], prepend_bos=False)[0]) <= 24
    (parquet,) = save_dir.glob("*/version_*/results/neuron_explanations_benchmark.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == 6 * len(names)
    (page,) = save_dir.glob("*/version_*/results/neuron_explanations_benchmark.html")
    shown = page.read_text()
    texts = [json.dumps(r["methods"]["m2_patchscope"]["text"])[1:-1] for r in out["rows"]]
    assert all(t in shown for t in texts) and "summary-figure" in shown


class CrashingBenchmark(ExplanationBenchmarkModule):
    """Stands for a killed run: raises after the `crash_at`-th snapshot written after a method;
    counts those snapshots (the methods it ran)."""

    def __init__(self, *args, crash_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_at, self.methods_run = crash_at, 0

    def save_progress(self) -> None:
        super().save_progress()
        if self.in_progress is not None:
            self.methods_run += 1
            if self.methods_run == self.crash_at:
                raise RuntimeError("interrupted")


def leaves(value, path: str = "") -> dict:
    """Every number, text and flag of a nested result by its path (for approx comparisons)."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in leaves(item, f"{path}/{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}/{i}").items()
        }
    return {path: value}


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds_per_neuron"} for r in rows]


@pytest.mark.slow
def test_ckpt_path_last_resumes_with_no_finished_method_redone(bench, demo_atlas_path, tmp_path):
    _, whole = bench
    crashing = [  # 3 methods per chunk: it stops after chunk 1's second method
        "--model.class_path=tests.test_explanation_benchmark.CrashingBenchmark",
        "--model.init_args.crash_at=5",
    ]
    with pytest.raises(RuntimeError, match="interrupted"):
        main(bench_args(tmp_path, demo_atlas_path, *crashing))
    (interrupted,) = tmp_path.glob("*/version_*")
    assert not (interrupted / "results").exists()
    with pytest.raises(ValueError, match="model.init_args.steps: snapshot 4, command line 5"):
        main(bench_args(tmp_path, demo_atlas_path, *crashing, "--model.init_args.steps=5",
                        "--ckpt_path=last"))  # fmt: skip
    cli = main(bench_args(tmp_path, demo_atlas_path, *crashing, "--ckpt_path=last"))
    assert cli.trainer.log_dir == str(interrupted)
    assert cli.model.methods_run == 1  # chunk 1's last method; chunk 0 and two methods were kept
    assert without_seconds(results(tmp_path)["rows"]) == without_seconds(whole["rows"])


@pytest.mark.slow
def test_two_ddp_processes_give_the_same_rows(bench, demo_atlas_path, tmp_path):
    _, one = bench
    args = bench_args(tmp_path, demo_atlas_path, "--trainer.strategy=ddp", "--trainer.devices=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    two = results(tmp_path)
    assert two["processes"] == 2
    a, b = leaves(without_seconds(two["rows"])), leaves(without_seconds(one["rows"]))
    assert a.keys() == b.keys()
    floats = [k for k in a if isinstance(a[k], float)]
    assert {k: v for k, v in a.items() if k not in floats} == {
        k: v for k, v in b.items() if k not in floats
    }  # texts, ranks, flags: equal
    assert [a[k] for k in floats] == pytest.approx([b[k] for k in floats], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.init_args.max_neurons=null", "--data.init_args.neurons=[3, 600]"],
         r"neuron\(s\) \[600\] out of range"),
        (["--model.init_args.layer=2"], "profiles 'blocks.3.mlp.hook_post', not"),
        (["--model.init_args.carriers=[no slot here]"], "must hold the slot {E} exactly once"),
        (['--model.init_args.carriers=["Quixotic {E} zebra"]'], "does not know"),
        (["--model.init_args.kl_targets=[0.25, 0]"], "kl_targets must be > 0"),
        (["--model.init_args.methods=[m0_context, m9_magic]"], "unknown method 'm9_magic'"),
        (["--model.init_args.held_out.start=10"], "the atlas read documents 0..299"),
        (["--data.init_args.batch_size=4"], "a chunk of 2 neurons"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_in_one_line_before_any_forward(
    demo_atlas_path, tmp_path, monkeypatch, extra, message
):
    def no_forward(*args, **kwargs):
        raise AssertionError("a forward ran before the refusal")

    monkeypatch.setattr(HookedTransformer, "forward", no_forward)
    monkeypatch.setattr(TransformerBlock, "forward", no_forward)  # run_blocks' way in
    monkeypatch.setattr(  # the set-up's first model work (no block runs at source_layer 0)
        "lightning_modules.explanation_benchmark.placeholder_baseline", no_forward
    )
    with pytest.raises(ValueError, match=message) as refused:
        main(bench_args(tmp_path, demo_atlas_path, *extra))
    assert "\n" not in str(refused.value)


def test_an_atlas_of_another_model_is_refused(demo_atlas_path, tmp_path):
    atlas = json.loads(demo_atlas_path.read_text())
    atlas["model_identity"] = "0123456789abcdef"
    other = tmp_path / "atlas.json"
    other.write_text(json.dumps(atlas))
    with pytest.raises(ValueError, match="was made with another model"):
        main(bench_args(tmp_path, other))
