"""Print what `make demo` found on Gemma-3-270M, beside what the neuron does on real text.

    python scripts/demo_story_gemma3.py                      # the newest patchscope_gemma3 run
    python scripts/demo_story_gemma3.py --run runs/patchscope_gemma3/version_3

Three readings side by side: the neuron's strongest contexts in the English corpus (the
shipped atlas, `assets/gemma3/atlas_l9.json.gz`), the Patchscope decodings of the optimised X,
and X's strongest SAE features with each feature's own strongest corpus contexts
(`feature_contexts.json` beside the SAE). Whether they agree is for the reader to judge; the
closing line says which words they share.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ROOT / "assets/gemma3/atlas_l9.json.gz"


def newest_run(name: str) -> Path:
    runs = sorted((ROOT / "runs" / name).glob("version_*"), key=lambda p: int(p.name[8:]))
    if not runs:
        raise SystemExit(f"no runs/{name}/version_* yet: run `make demo` first")
    return runs[-1]


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)}


def gained_features(run: Path, sae_path: str, k: int) -> list[dict]:
    """X's features that gained most over its start (the baseline), from the last checkpoint:
    X stays close to its start, so its strongest features are mostly the start's."""
    import torch
    from sae_lens import SAE

    checkpoint = run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        return []
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    sae = SAE.load_from_disk(str(sae_path if Path(sae_path).is_absolute() else ROOT / sae_path))
    with torch.no_grad():
        now, start = sae.encode(state["X"][:1]), sae.encode(state["baseline"][None])
    gain = (now - start)[0]
    top = gain.topk(k).indices.tolist()
    return [
        {"feature": i, "activation": float(now[0, i]), "start": float(start[0, i])}
        for i in top
        if gain[i] > 0
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--contexts", type=int, default=8)
    p.add_argument("--features", type=int, default=5)
    args = p.parse_args()
    run = args.run or newest_run("patchscope_gemma3")
    results = run / "results"
    optimisation = read(results / "optimization.json")
    decoding = read(results / "patchscope_generation.json")
    sae = read(results / "sae_decomposition.json")
    if optimisation is None or decoding is None:
        raise SystemExit(f"{results} has no optimization.json / patchscope_generation.json")
    # per-vector fields are lists in the order of `vectors`; the demo optimises one vector
    layer, neuron = optimisation["target_layer"], optimisation["neuron"][0]
    atlas = json.loads(gzip.decompress(ATLAS.read_bytes()))
    entry = atlas["neurons"][str(neuron)]

    print(f"\n=== Gemma-3-270M neuron {layer}/{neuron}: what it fires on in real text ===")
    print(
        f"(atlas of {atlas['data']['n_documents']} English documents, {atlas['n_tokens']:,} tokens)"
    )
    atlas_words: set[str] = set()
    for c in entry["top_k"][: args.contexts]:
        context = " ".join(c["context"].split())  # one line per context
        print(f"  {c['activation']:6.2f}  {context}")
        atlas_words |= words(c["trigger_token"])

    source = optimisation["source_layer"]
    print(f"\n=== X, optimised at blocks.{source}.hook_resid_pre ===")
    print(
        f"  neuron {optimisation['initial_activation'][0]:.2f}"
        f" -> {optimisation['final_activation'][0]:.2f}"
        f" in {optimisation['steps']} steps (atlas maximum {entry['activation']:.2f}); "
        f"|X| {optimisation['x_norm'][0]:.0f}, start {optimisation['baseline_norm']:.0f}"
    )
    print(f'  Patchscope "{decoding["target_prompt"]}":')
    contrastive, plain = decoding["contrastive_text"][0], decoding["plain_text"][0]
    print(f"    contrastive: {contrastive!r}")
    print(f"    plain:       {plain!r}")
    decoded_words = words(contrastive) | words(plain)

    feature_words: set[str] = set()
    if sae is not None:
        contexts_file = Path(sae["sae"]) / "feature_contexts.json"
        labels = read(contexts_file if contexts_file.is_absolute() else ROOT / contexts_file) or {}
        print(f"\n=== X's strongest SAE features ({sae['sae']}, reads {sae['hook_name']}) ===")
        top_features = sae["top_features"][0]
        for f in top_features[: args.features]:
            tops = labels.get(str(f["feature"]), [])
            tokens = ", ".join(repr(c["token"]) for c in tops[:5]) or "(no corpus context)"
            print(f"  feature {f['feature']:5d}  {f['activation']:8.2f}  fires on: {tokens}")
            feature_words |= {w for c in tops[:5] for w in words(c["token"])}
        print(f"  top-{len(top_features)} features rebuild {sae['norm_fraction_topk'][0]:.0%} of X")
        print("  the features X gained most over its start (the mean word):")
        for f in gained_features(run, sae["sae"], args.features):
            tops = labels.get(str(f["feature"]), [])
            tokens = ", ".join(repr(c["token"]) for c in tops[:5]) or "(no corpus context)"
            print(
                f"  feature {f['feature']:5d}  {f['start']:7.2f} -> {f['activation']:7.2f}"
                f"  fires on: {tokens}"
            )
            feature_words |= {w for c in tops[:5] for w in words(c["token"])}

    print("\n=== agreement (words in common) ===")
    print(f"  atlas triggers:             {sorted(atlas_words)}")
    print(f"  decoded text:               {sorted(decoded_words)}")
    print(f"  decoded text & triggers:    {sorted(atlas_words & decoded_words) or 'none'}")
    if sae is not None:
        print(f"  SAE features & triggers:    {sorted(atlas_words & feature_words) or 'none'}")
    print(f"\nresults: {results}")


if __name__ == "__main__":
    main()
