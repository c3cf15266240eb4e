"""Copy a trained demo world from `runs/demo_world/` into `assets/demo/` and write its model card.

    python scripts/build_demo_assets.py [--source runs/demo_world] [--out assets/demo]

Expects what `make demo-assets` made before it: `model/` (ModelDirectoryExport),
`corpus.jsonl` (DemoCorpusDataModule), `saes/layer_{L}/` and `saes/sae_report.json`
(scripts/train_demo_saes.py). Evaluates the model (`reports/language_model.json`), writes the
model card and a sha256 manifest into every shipped folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitforge.manifest import write_manifest  # noqa: E402

N_TRAIN_SAMPLE = 3000  # training documents shipped for the demo's baseline, atlas and stories


def corpus_sample(source: Path, target: Path) -> dict[str, int]:
    """The first training documents and every validation and held-out one, as JSON lines."""
    records = [json.loads(line) for line in source.read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"][:N_TRAIN_SAMPLE]
    rest = [r for r in records if r["split"] != "train"]  # validation and held-out
    target.write_text("".join(json.dumps(r) + "\n" for r in train + rest))
    return {"train": len(train), "validation_and_heldout": len(rest), "generated": len(records)}


def model_card(lm: dict, saes: dict, counts: dict, config: dict, sizes: dict[str, float]) -> str:
    """assets/demo/README.md: what the demo world is, what it learned, how to regenerate it."""
    topics = sorted(lm["validation_loss"])
    loss_rows = "\n".join(
        f"| {t} | {lm['validation_loss'][t]:.3f} | {lm['heldout_loss'][t]:.3f} |" for t in topics
    )
    ioi_sets = {
        "ioi_training_names_and_templates": "training names, training templates",
        "ioi_training_names_heldout_templates": "training names, held-out templates",
        "ioi_heldout_names_training_templates": "held-out names, training templates",
        "ioi_heldout_names_and_templates": "held-out names, held-out templates",
    }
    ioi_rows = "\n".join(
        f"| {label} | {lm[key]['accuracy']:.1%} | {lm[key]['top1_accuracy']:.1%} "
        f"| {lm[key]['logit_diff']:+.2f} |"
        for key, label in ioi_sets.items()
    )
    n_ioi = lm["ioi_heldout_names_and_templates"]["n"]
    gt = lm["greater_than_heldout_nouns"]
    sae_rows = "\n".join(
        f"| {hook_label(layer)} | {r['explained_variance']:.3f} | {r['l0']:.1f} "
        f"| {r['dead_fraction']:.1%} "
        f"| {r['loss_clean']:.3f} | {r['loss_spliced']:.3f} | {r['loss_change']:+.3f} |"
        for layer, r in sorted(saes["layers"].items(), key=lambda kv: int(kv[0]))
    )
    first = next(iter(saes["layers"].values()))
    arch = ", ".join(f"{k} {v}" for k, v in config.items())
    size_rows = "\n".join(f"| `{name}` | {mb:.2f} MB |" for name, mb in sizes.items())
    return f"""# The embedded demo world

A small language model the project trains itself, its sparse autoencoders and its corpus: every
pipeline runs on it offline, on a laptop CPU, and gives results a person can read and check.
Load it with `FrozenModelSpec(path="assets/demo/model")`; its SAEs with
`SAESource(path="assets/demo/saes/layer_{{layer}}")`.

## What is here

- `model/`: a Gemma-2-style HookedTransformer ({arch}; RMSNorm before and after each
  sublayer, gated GELU MLP, rotary, grouped-query attention, soft-capped attention and logits,
  alternating global/local attention; embedding and unembedding tied while training). Files:
  `config.json`, `model.safetensors`, `tokenizer.json`, `reference_logits.safetensors` (logits of
  the model in memory when training ended, for the loading test), `manifest.json`.
- `model/tokenizer.json`: word-level (`tokenizers`), trained on the corpus: words and punctuation
  are tokens, years are two two-digit tokens (`1732` -> `17` `32`), `<pad>` `<bos>` `<eos>` `<unk>`
  are special, `<bos>` is prepended, the Patchscope placeholder `x` is one token.
- `saes/layer_{{L}}/`: TopK SAEs (d_sae {first["d_sae"]}, k {first["k"]}) trained with sae-lens
  on `blocks.{{L}}.hook_resid_post` (Gemma Scope's convention: `layer_{{S-1}}` reads
  `blocks.{{S}}.hook_resid_pre`), and `saes/resid_pre_0/` on `blocks.0.hook_resid_pre` (the
  stream before block 0, where the demo Patchscope writes), {first["training_tokens"]:,} tokens
  each, all trained in one run.
- `corpus.jsonl`: {counts["train"]} training documents and {counts["validation_and_heldout"]}
  validation/held-out ones (of {counts["generated"]} generated), with `topic` and `split`.
- `reports/`: the numbers below as JSON. Every folder has a `manifest.json` of sha256 sums; the
  loaders refuse a file that does not match (corrupted, truncated, edited).

## The corpus

Six topics, generated from a seed (`circuitforge/demo_world/corpus.py`): mathematical
definitions, IOI sentences (Wang et al. templates, 118 names), greater-than year ranges (Hanna et
al.), and encyclopedic sentences about animals, places and objects. Held out of training: the
last 3 IOI templates and 20 names (the names still occur in other topics), 3 greater-than nouns,
and one sentence frame per other topic. `validation` documents are new documents from the
training frames.

## What the model learned

Next-token loss (nats per token) per topic:

| topic | validation (training frames, new documents) | held out (unseen frames) |
|---|---|---|
{loss_rows}

IOI ({n_ioi} prompts a row): how often the indirect object outranks the subject, how often it
is the top-1 token, and the mean logit difference (IO - S):

| names, templates | IO > S | IO top-1 | logit difference |
|---|---|---|---|
{ioi_rows}

The model does IOI on every template, held-out ones included, for the names it saw in IOI
sentences. For the 20 held-out names (seen only in other topics) it prefers the subject, the
name it saw twice: its copying generalises to new names (their top-1 rate is well above
chance), its subject inhibition does not. Training with 500 more invented names, so that no
name could be learned one by one, did not learn IOI at all within the 20-minute budget (53% on
training names after 2 of 4 epochs, 47% held out after 3).

- Greater-than, held-out nouns: the most likely two-digit token is later than the start year in
  **{gt["accuracy"]:.1%}** of {gt["n"]} prompts; probability difference p(later) - p(earlier or
  equal) = {gt["probability_difference"]:.3f}.

## The SAEs

Measured by our own code (`circuitforge/demo_world/sae_training.py::evaluate_sae`) on the
held-out documents (BOS and padding excluded); loss change = next-token loss with the SAE's
reconstruction spliced in minus the clean loss.

| reads | explained variance | L0 | dead features | loss clean | loss spliced | change |
|---|---|---|---|---|---|---|
{sae_rows}

## Sizes

| file | size |
|---|---|
{size_rows}

## Reading it with a Patchscope

`python scripts/demo_story.py --decode-words radius owl hammer` writes a word's own residual at
`blocks.0.hook_resid_pre` over the `x` of "A detailed description of a x is that": the model
says the word's definition ("it is the distance from the center of a circle to any point on
the circle", "it is a bird that hunts at night"). At `resid_pre 1` every word decodes to the
same sentence: this model moves a word's identity to later positions in layer 0's attention,
so Patchscopes on it read source layer 0.

## Regenerate

Pretraining takes about 16 minutes on 2 CPU cores (937 s measured for the 4 epochs, 4,500
steps, evaluation included); the SAEs about 7 minutes (400 s for five SAEs, 2M tokens).

    make demo-assets     # corpus, tokenizer, pretraining, SAEs, this folder (seeded)
    python scripts/check_demo_reproduction.py --regenerated runs/demo_world/model

`make demo-assets` runs `python train.py fit --config configs/demo/pretrain_lm.yaml`,
`python scripts/train_demo_saes.py --model runs/demo_world/model --corpus
runs/demo_world/corpus.jsonl --out runs/demo_world/saes` and `python
scripts/build_demo_assets.py`. The check evaluates the shipped and the regenerated model on the
same held-out data and fails if a loss differs by more than 2%.
"""


def evaluate(model_dir: Path, corpus: Path) -> dict:
    """The shipped model's numbers, measured here on the validation and held-out documents."""
    from circuitforge.demo_world.corpus import Document
    from circuitforge.demo_world.evaluation import evaluate_language_model
    from circuitforge.model.local_dir import load_model_dir

    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    documents = [Document(**r) for r in records if r["split"] != "train"]
    return evaluate_language_model(load_model_dir(model_dir), documents, n_prompts=500, seed=1234)


def hook_label(layer: str) -> str:
    return (
        "resid_pre 0 (`resid_pre_0`)" if layer == "-1" else f"resid_post {layer} (`layer_{layer}`)"
    )


def _copy_dir(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "runs" / "demo_world")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "demo")
    args = parser.parse_args()
    src, out = args.source, args.out
    out.mkdir(parents=True, exist_ok=True)

    _copy_dir(src / "model", out / "model")  # has its own manifest (save_model_dir)
    saes = sorted(p for p in (src / "saes").iterdir() if p.is_dir())  # layer_{L}, resid_pre_0
    if (out / "saes").exists():
        shutil.rmtree(out / "saes")
    for sae in saes:
        _copy_dir(sae, out / "saes" / sae.name)
        write_manifest(out / "saes" / sae.name)
    counts = corpus_sample(src / "corpus.jsonl", out / "corpus.jsonl")
    reports = out / "reports"
    reports.mkdir(exist_ok=True)
    lm = evaluate(out / "model", src / "corpus.jsonl")
    sae_report = json.loads((src / "saes" / "sae_report.json").read_text())
    for key in ("model", "corpus"):  # paths of the machine that trained them: keep the names
        sae_report[key] = Path(sae_report[key]).name
    for layer in sae_report["layers"].values():
        layer.pop("path", None)
    (reports / "language_model.json").write_text(json.dumps(lm, indent=2) + "\n")
    (reports / "saes.json").write_text(json.dumps(sae_report, indent=2) + "\n")
    (reports / "corpus.json").write_text(json.dumps(counts, indent=2) + "\n")
    write_manifest(reports)
    for stale in ("corpus.txt", "tokenizer.json"):
        (out / stale).unlink(missing_ok=True)
    config = json.loads((out / "model" / "config.json").read_text())
    arch = {k: config[k] for k in ("n_layers", "d_model", "n_heads", "n_key_value_heads", "d_mlp")}
    arch["d_vocab"] = config["d_vocab"]
    sizes = {
        name: sum(p.stat().st_size for p in (out / name).rglob("*") if p.is_file()) / 1e6
        for name in ("model", "saes", "reports")
    }
    sizes["corpus.jsonl"] = (out / "corpus.jsonl").stat().st_size / 1e6
    (out / "README.md").write_text(model_card(lm, sae_report, counts, arch, sizes))
    write_manifest(out)  # corpus.jsonl, README.md
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
