"""M5 TokenChange (Gur-Arieh et al., ACL 2025): the neuron clamped on held-out prompts; E = the
tokens whose logits rise most.

The paper's code (`get_intervention_tokens`, yoavgur/Feature-Descriptions) clamps
`mlp.hook_post` to a fixed +-10 on 32 pile samples and keeps the tokens whose logits, averaged
over the samples and positions, change most. We size the clamp to an effect instead (`clamp.py`:
the value whose KL(clean || clamped) is `kl_target`, 0.25 by default, the lower of the issue's
two scoring targets, delphi style) and keep the tokens whose mean logit rises most (a text read
literally names what the neuron promotes; the paper also lists the falls for its explainer LLM).

Held-out prompts: by default the last `n_prompts` documents of the shipped English corpus
(`assets/english_corpus`, 12,518 documents; the layer-9 atlas read the first 2,000), each cut
to `prompt_tokens` tokens. Pass `prompts` for another model or corpus.
Cost: 3-5 clamped runs per neuron from layer `layer` on, each unembedding every token (about
40 s per Gemma-3-270M layer-9 neuron on one shared thread here; issue26_methods.md).
"""

from __future__ import annotations

from pathlib import Path

from transformer_lens import HookedTransformer

from circuitforge.data.texts import load_texts
from circuitforge.explanations.methods.clamp import Clamp, clamp_for_kl, make_probe
from circuitforge.explanations.methods.common import allowed_tokens, check_request, word_list

ENGLISH_CORPUS = (
    Path(__file__).resolve().parents[3] / "assets" / "english_corpus" / "corpus.jsonl.gz"
)


def held_out_prompts(n: int, source: str | Path = ENGLISH_CORPUS) -> list[str]:
    """The last `n` documents of `source` (the atlases read from the front)."""
    texts = load_texts(str(source))
    if n < 1 or n > len(texts):
        raise ValueError(f"n_prompts must be in 1..{len(texts)} for {source}, got {n}")
    return texts[-n:]


def token_change(
    model: HookedTransformer,
    layer: int,
    neurons: list[int],
    prompts: list[str],
    kl_target: float = 0.25,
    prompt_tokens: int = 16,
    batch_size: int = 4,
) -> list[Clamp]:
    """Per neuron, the KL-sized clamp and each token's mean logit change under it."""
    if kl_target <= 0:
        raise ValueError(f"kl_target must be > 0, got {kl_target}")
    probe = make_probe(model, layer, prompts, prompt_tokens)
    return clamp_for_kl(model, probe, neurons, kl_target, batch_size=batch_size)


def explain_token_change(
    model: HookedTransformer,
    layer: int,
    neurons: list[int],
    *,
    max_tokens: int = 24,
    prompts: list[str] | None = None,
    n_prompts: int = 8,
    prompt_tokens: int = 16,
    kl_target: float = 0.25,
    candidates: int = 200,
    batch_size: int = 4,
    ascii_only: bool = True,
) -> list[str]:
    """E = the tokens whose mean logit rises most under the clamp, as words (decoded, stripped,
    repeats dropped), as many as fit in `max_tokens` tokens, among the `candidates` best of the
    allowed tokens (`common.allowed_tokens`: printable ASCII words by default)."""
    check_request(model, layer, neurons, max_tokens)
    if kl_target <= 0:
        raise ValueError(f"kl_target must be > 0, got {kl_target}")
    if candidates < 1:
        raise ValueError(f"token_change: candidates must be >= 1, got {candidates}")
    if prompts is None:
        prompts = held_out_prompts(n_prompts)
    clamps = token_change(model, layer, neurons, prompts, kl_target, prompt_tokens, batch_size)
    allowed = allowed_tokens(model, ascii_only)
    texts = []
    for c in clamps:
        ranked = c.logit_change.masked_fill(~allowed, float("-inf"))
        order = ranked.topk(min(candidates, int(allowed.sum()))).indices
        texts.append(word_list(model, order.tolist(), max_tokens))
    return texts
