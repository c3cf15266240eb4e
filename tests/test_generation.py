import torch

from circuitforge.model.hooks import mlp_post, resid_pre
from circuitforge.patchscope.generation import patchscope_decode
from circuitforge.patchscope.prompt import locate_placeholder


def brute_force_decode(model, prompt, source, vector, baseline, alpha, n, contrastive):
    """No KV cache: rerun the whole sequence each step, injecting at the placeholder each time."""
    seq = prompt.tokens

    def logits_with(v, tokens):
        def inject(resid, hook):
            resid = resid.clone()
            resid[:, prompt.position] = v
            return resid

        hooks = [(resid_pre(source), inject)]
        return model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1]

    out = []
    for _ in range(n):
        lx = logits_with(vector, seq)
        nxt = (
            ((1 + alpha) * lx - alpha * logits_with(baseline, seq)).argmax()
            if contrastive
            else lx.argmax()
        )  # noqa: E501
        out.append(int(nxt))
        seq = torch.cat([seq, nxt.view(1, 1)], 1)
    return out


def test_decoding_matches_a_loop_without_kv_cache(demo_model):
    prompt = locate_placeholder(demo_model, "A detailed description of x is that")
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(2, 128, generator=g) * 8
    baseline = torch.randn(128, generator=g)
    got = patchscope_decode(
        demo_model, prompt, 1, vectors, baseline, 3, [7, 9], alpha=1.5, new_tokens=6
    )
    for i in range(2):
        for contrastive, tokens in ((True, got.contrastive_tokens), (False, got.plain_tokens)):
            expected = brute_force_decode(
                demo_model, prompt, 1, vectors[i], baseline, 1.5, 6, contrastive
            )
            assert tokens[i] == expected
    # the prefill activation is the neuron's activation with X injected
    _, cache = demo_model.run_with_cache(prompt.tokens)
    resid = cache[resid_pre(1)].clone()
    resid[:, prompt.position] = vectors[1]
    seen = {}

    def read(post, hook):
        seen["a"] = post[0, prompt.position, 9]

    with demo_model.hooks(fwd_hooks=[(mlp_post(3), read)]):
        demo_model(resid, start_at_layer=1)
    assert abs(got.prefill_activation[1] - float(seen["a"])) < 1e-4
