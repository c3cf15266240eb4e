"""Feature-circuit maths against independent computations: plain TransformerLens forwards with
hand-written hooks (brute-force ablations, forward-mode derivatives with pinned sublayers)."""

from __future__ import annotations

from functools import cache, partial
from types import SimpleNamespace as NS
from typing import Any, cast

import pytest
import torch
import torch.autograd.forward_ad as fwad
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from torch.testing import assert_close

from circuitforge.edges.objectives import logit_difference
from circuitforge.feature_circuits import ablation as ab
from circuitforge.feature_circuits import attribution as at
from circuitforge.feature_circuits import points as pt
from circuitforge.feature_circuits.edges import (
    ERROR,
    EVERY,
    KeptNodes,
    edge_effects,
    embedding_edges,
)
from circuitforge.feature_circuits.points import SAEGroup, SAEPoint, load_points
from circuitforge.model.hooks import attn_out, mlp_out, resid_mid, resid_post, resid_pre
from circuitforge.model.spec import FrozenModelSpec, load_frozen_model
from circuitforge.sae.matching import MatchedSAE, SAESource
from circuitforge.tasks.demo_tasks import demo_ioi_pairs
from circuitforge.tasks.prompt_pairs import tokenize_pairs
from tests.conftest import DEMO_SAES

CLOSE: dict[str, Any] = {"rtol": 1e-4, "atol": 1e-4}  # assert_close's tolerances
NO_SAE = cast(MatchedSAE, None)  # a point whose SAE no code under test reads


def corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def pinned(pts, xs):  # hooks setting each point's activation to xs[i]
    return [(p.hook_name, lambda a, hook, x=x: x) for p, x in zip(pts, xs)]


def caches(model, tokens, hooks):
    _, c = model.run_with_cache(tokens, names_filter=lambda n: n in hooks)
    return [c[h] for h in hooks]


@pytest.fixture(scope="module")
def demo(demo_model):
    m, layers = demo_model, [0, 1, 2, 3]
    pts = load_points(m, [SAEGroup(SAESource(path=str(DEMO_SAES / "layer_{layer}")), layers)])
    pairs = tokenize_pairs(m, demo_ioi_pairs(16, 0))
    tok, cor = pairs.clean, pairs.corrupt

    def metric(logits):  # any multiple k of the batch: [k*b] values
        k = logits.shape[0] // len(tok)
        answers = pairs.answer.repeat(k), pairs.wrong_answer.repeat(k)
        return logit_difference(logits, pairs.read.repeat(k, 1), *answers)

    with torch.no_grad():  # our own states: sae-lens encode on a plain cache
        xc, xa = (caches(m, t, [p.hook_name for p in pts]) for t in (tok, cor))
        fc, fa = ([p.sae.sae.encode(x) for p, x in zip(pts, xs)] for xs in (xc, xa))
        base = metric(m(tok))
    clean, abl = at.point_states(m, tok, pts), at.point_states(m, cor, pts)
    assert_close([s.f for s in clean + abl], fc + fa)  # the package reads the states we read
    val, grads = at.point_gradients(m, tok, pts, metric)
    assert_close(val, base)
    d = NS(m=m, pts=pts, tok=tok, cor=cor, metric=metric, xc=xc, xa=xa, fc=fc, fa=fa, base=base)
    d.clean, d.abl, d.eff = clean, abl, at.node_effects(pts, clean, abl, grads)
    d.ig = cache(lambda steps: at.ig_gradients(m, tok, pts, metric, clean, abl, steps))
    return d


@torch.no_grad()
def added_effect(d, i, deltas):  # per delta [k b pos d_in]: mean metric change, added at i
    k = deltas.shape[0]
    hook = (d.pts[i].hook_name, lambda a, hook: a + deltas.flatten(0, 1))
    logits = d.m.run_with_hooks(d.tok.repeat(k, 1), fwd_hooks=[hook])
    return (d.metric(logits).reshape(k, -1) - d.base).mean(1)


def feature_deltas(d, i, feats):  # [k b pos d_in]: (f_abl - f)[b, pos] * D_i per feature i
    df = (d.fa[i] - d.fc[i])[..., feats]
    return df.permute(2, 0, 1)[..., None] * d.pts[i].decoder[feats][:, None, None]


def test_single_feature_scores_track_brute_force_ablation(demo):
    d, ig = demo, at.node_effects(demo.pts, demo.clean, demo.abl, demo.ig(8))
    act, one, integ = [], [], []
    for i, p in enumerate(d.pts):
        top = d.eff[i].features.sum(1).mean(0).abs().topk(30).indices
        moved = ((d.fa[i] != d.fc[i]).flatten(0, 1).any(0)).nonzero().flatten()
        rest = moved[~torch.isin(moved, top)]
        pick = torch.randperm(len(rest), generator=torch.Generator().manual_seed(i))[:20]
        feats = torch.cat([top, rest[pick]])
        act.append(torch.cat([added_effect(d, i, feature_deltas(d, i, f)) for f in feats.split(8)]))
        one.append(d.eff[i].features[..., feats].sum(1).mean(0))
        integ.append(ig[i].features[..., feats].sum(1).mean(0))
        c1, ci = corr(act[i], one[i]), corr(act[i], integ[i])
        mae = [(act[i] - e).abs().mean().item() for e in (one[i], integ[i])]
        print(f"\n{p.hook_name}: corr 1-step {c1:.4f} IG-8 {ci:.4f}, MAE {mae[0]:.4f} {mae[1]:.4f}")
        assert c1 > 0.85
    act, one, integ = torch.cat(act), torch.cat(one), torch.cat(integ)
    c1, ci = corr(act, one), corr(act, integ)
    mae1, maei = (act - one).abs().mean().item(), (act - integ).abs().mean().item()
    print(f"pooled, {len(act)} features, mean |effect| {act.abs().mean():.4f}: ", end="")
    print(f"corr 1-step {c1:.4f} IG-8 {ci:.4f}, MAE 1-step {mae1:.4f} IG-8 {maei:.4f}")
    assert c1 > 0.88 and ci > 0.93 and ci >= c1 and maei < mae1


def test_node_scores_are_first_order_effects_and_the_error_term(demo):
    d, ig, eps = demo, at.node_effects(demo.pts, demo.clean, demo.abl, demo.ig(8)), 0.01
    for i, p in enumerate(d.pts):
        derr = d.xa[i] - p.sae.sae.decode(d.fa[i]) - (d.xc[i] - p.sae.sae.decode(d.fc[i]))
        actual = added_effect(d, i, derr[None]).item()
        one, integ = d.eff[i].error.sum(1).mean().item(), ig[i].error.sum(1).mean().item()
        plus, minus = added_effect(d, i, torch.stack([eps * derr, -eps * derr]))
        slope = ((plus - minus) / (2 * eps)).item()  # the exact first-order effect
        print(
            f"\n{p.hook_name} error: alone {actual:.4f} 1-step {one:.4f} IG-8 {integ:.4f}", end=""
        )
        print(f", first order (central difference) {slope:.4f}")
        assert slope == pytest.approx(one, rel=0.01, abs=2e-3)
        assert abs(integ - actual) < min(0.5 * abs(actual), abs(one - actual))
        top = d.eff[i].features.sum(1).mean(0).abs().topk(5).indices  # features: the same
        dx = feature_deltas(d, i, top)
        slopes = (added_effect(d, i, eps * dx) - added_effect(d, i, -eps * dx)) / (2 * eps)
        assert_close(slopes, d.eff[i].features[..., top].sum(1).mean(0), rtol=0.01, atol=2e-3)


def test_integrated_gradients_are_complete(demo):
    """Per point and example: IG over all features + error == patching the whole point."""
    d, gaps = demo, {}
    hooks = pinned(d.pts, d.xa)
    actual = [d.metric(d.m.run_with_hooks(d.tok, fwd_hooks=[h])) - d.base for h in hooks]
    for steps in (4, 8, 16):
        eff = at.node_effects(d.pts, d.clean, d.abl, d.ig(steps))
        total = [e.features.sum((1, 2)) + e.error.sum(1) for e in eff]
        gaps[steps] = torch.stack([(t - a).abs().max() for t, a in zip(total, actual)])
        print(f"\nIG-{steps} completeness: max gap per point {gaps[steps].tolist()}", end="")
    print(f"\n(effects of patching each point: {[round(a.mean().item(), 3) for a in actual]})")
    assert (torch.stack(actual).abs().mean(1) > 1).all()  # a large move: far from linear
    assert (gaps[16] < 0.5 * gaps[8]).all() and (gaps[8] < 0.5 * gaps[4]).all()
    assert (gaps[16] < 0.03).all()


def loop_ig(m, tok, pts, metric, clean, abl, steps):
    """IG the plain way: per point and step, a whole-model forward and backward with the point
    set to that step's activation (TransformerLens hooks)."""
    out = []
    for i, p in enumerate(pts):
        total = torch.zeros_like(clean[i].x)
        for step in range(steps):
            x = clean[i].x + (step + 0.5) / steps * (abl[i].x - clean[i].x)
            x = x.reshape(caches(m, tok, [p.hook_name])[0].shape).requires_grad_(True)
            with torch.enable_grad():
                value = metric(
                    m.run_with_hooks(tok, fwd_hooks=[(p.hook_name, lambda a, hook, x=x: x)])
                )
                value.sum().backward()
            total += at.flat(x.grad)
        out.append(total / steps)
    return out


def test_batched_ig_from_the_points_block_equals_the_plain_loop(demo, t):
    """All steps in one batch, the forward started at the point's block: the same gradients as
    `steps` whole-model passes, on resid_post SAEs (demo) and attn/mlp/resid ones (tiny)."""
    assert_close(
        demo.ig(4), loop_ig(demo.m, demo.tok, demo.pts, demo.metric, demo.clean, demo.abl, 4)
    )
    m, tok, pts, clean, abl, _ = t.args
    metric = lambda logits: logits[:, -1, 1] - logits[:, -1, 2]  # noqa: E731
    ours = at.ig_gradients(m, tok, pts, metric, clean, abl, 3)
    assert_close(ours, loop_ig(m, tok, pts, metric, clean, abl, 3), rtol=1e-4, atol=1e-5)


LAYOUT = [resid_post(0), attn_out(1), mlp_out(1), resid_post(1)]
TINY = dict(n_layers=2, d_model=16, d_head=8, d_mlp=32, n_ctx=8, d_vocab=40, act_fn="gelu")
N_SAE = 12


def random_sae(hook, seed):
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=N_SAE, metadata=SAEMetadata(hook_name=hook)))
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.4 for k, v in sae.state_dict().items()}
    sae.load_state_dict(state)
    return sae.requires_grad_(False)


def leaf_gradient(m, tok, hook, metric):
    x = caches(m, tok, [hook])[0].requires_grad_(True)
    with torch.enable_grad():
        metric(m.run_with_hooks(tok, fwd_hooks=[(hook, lambda a, hook: x)])).sum().backward()
    return x.grad


@pytest.fixture(scope="module", name="t")
def tiny():
    """resid0, attn1, mlp1, resid1 of a random 2-layer model with random ReLU SAEs."""
    m = load_frozen_model(FrozenModelSpec(config=TINY, seed=2))
    saes = [random_sae(hook, 10 + i) for i, hook in enumerate(LAYOUT)]
    pts = [
        SAEPoint(h, *pt.hook_place(h)[:2], i, MatchedSAE(sae, h, h), *pt.affine_decoder(sae))
        for i, (h, sae) in enumerate(zip(LAYOUT, saes))
    ]
    tok, cor = torch.randint(0, 40, (2, 3, 6), generator=torch.Generator().manual_seed(0))
    xc, xa = caches(m, tok, LAYOUT), caches(m, cor, LAYOUT)
    metric = lambda logits: logits[:, -1, 1] - logits[:, -1, 2]  # noqa: E731
    t = NS(m=m, tok=tok, cor=cor, xc=xc, saes=saes)
    t.grads = [leaf_gradient(m, tok, h, metric) for h in LAYOUT]
    t.moves = []  # each node of each point moved to its corrupt value: [nodes b pos d]
    for sae, x, y in zip(saes, xc, xa):  # the error moves x by what the features do not
        df = (sae.encode(y) - sae.encode(x)).movedim(-1, 0)[..., None] * sae.W_dec[:, None, None]
        t.moves.append(torch.cat([df, (y - x - df.sum(0))[None]]))
    clean, ablated = at.point_states(m, tok, pts), at.point_states(m, cor, pts)
    t.args = (m, tok, pts, clean, ablated, at.point_gradients(m, tok, pts, metric)[1])
    t.edges = edge_effects(*t.args, [KeptNodes(list(range(N_SAE)), True)] * 4)
    t.nodes = at.node_effects(*t.args[2:])
    return t


def push(t, s, q, dx, pins=()):  # tangents [n b pos d] at point s -> at q, `pins` held clean
    n, got = dx.shape[0], {}
    with fwad.dual_level():
        x = fwad.make_dual(t.xc[s].repeat(n, 1, 1), dx.flatten(0, 1))
        hooks = [(LAYOUT[s], lambda a, hook: x)]
        hooks += [(LAYOUT[k], lambda a, hook, k=k: t.xc[k].repeat(n, 1, 1)) for k in pins]
        hooks += [(LAYOUT[q], lambda a, hook: got.setdefault("dx", fwad.unpack_dual(a).tangent))]
        t.m.run_with_hooks(t.tok.repeat(n, 1), fwd_hooks=hooks, stop_at_layer=2)
    return got["dx"].reshape(dx.shape)


def split(t, s, dx):
    """Tangents [n b pos d] at point s -> each node's own [n*nodes b pos d] (features, error)."""
    sae = t.saes[s]
    with fwad.dual_level():
        x = fwad.make_dual(t.xc[s].expand_as(dx).clone(), dx)
        f = sae.encode(x)
        df, derr = fwad.unpack_dual(f).tangent, fwad.unpack_dual(x - sae.decode(f)).tangent
    assert df is not None and derr is not None
    nodes = torch.cat([df.movedim(-1, 1)[..., None] * sae.W_dec[:, None, None], derr[:, None]], 1)
    return nodes.flatten(0, 1)


def score(t, q, dx):  # tangents [n b pos d] at point q -> [n nodes]: node move * dm/d(node)
    return torch.einsum("nbpd,bpd->n", split(t, q, dx), t.grads[q]).reshape(-1, N_SAE + 1)


def test_edges_equal_pinned_forward_mode_derivatives(t):
    """(u_abl - u) * d/du [(dm/dd) d] with the points between u and d pinned by plain hooks."""
    assert sorted(t.edges) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for (s, q), table in t.edges.items():
        reference = score(t, q, push(t, s, q, t.moves[s], pins=range(s + 1, q)))
        assert_close(table, reference, rtol=1e-4, atol=1e-5)
        assert table.abs().max() > 0.3  # every table is far from 0


def tangent_at_first_point(t, emb, dx):  # a tangent of the embedding -> at point 0
    seen = {}
    with fwad.dual_level():
        x = fwad.make_dual(emb, dx)
        hooks = [(resid_pre(0), lambda a, hook: x)]
        hooks += [(LAYOUT[0], lambda a, hook: seen.setdefault("dx", fwad.unpack_dual(a).tangent))]
        t.m.run_with_hooks(t.tok, fwd_hooks=hooks, stop_at_layer=1)
    return seen["dx"]


def test_embedding_edges_equal_forward_mode_derivatives(t):
    """Each position's embedding moved to the corrupt prompt's, pushed to the first point."""
    m, tok, pts, clean, _, grads = t.args
    embedding = resid_pre(0)
    emb_clean, emb_corrupt = caches(m, tok, [embedding])[0], caches(m, t.cor, [embedding])[0]
    nodes = [(EVERY, d) for d in [*range(N_SAE), ERROR]]
    got = embedding_edges(m, tok, pts[0], clean[0], grads[0], nodes, emb_corrupt)
    for i in range(tok.shape[1]):
        dx = torch.zeros_like(emb_clean)
        dx[:, i] = (emb_corrupt - emb_clean)[:, i]
        assert_close(got[i], score(t, 0, tangent_at_first_point(t, emb_clean, dx)[None])[0])
    assert got.abs().max() > 0.1


def test_direct_edge_plus_paths_through_sublayers_is_the_total_effect(t):
    """Nothing counted twice: total(u->d) = edge(u->d) + sum over nodes s of the paths u->s->d
    (attn1 or mlp1) and u->a->m->d (Marks et al.'s A->B->C->D footnote)."""
    n = N_SAE + 1
    total = score(t, 3, push(t, 0, 3, t.moves[0]))  # no pins: the uncorrected effect
    via_attn = score(t, 3, push(t, 1, 3, split(t, 1, push(t, 0, 1, t.moves[0])), pins=[2]))
    via_mlp = score(t, 3, push(t, 2, 3, split(t, 2, push(t, 0, 2, t.moves[0], pins=[1]))))
    attn_nodes = split(t, 1, push(t, 0, 1, t.moves[0]))
    via_both = score(t, 3, push(t, 2, 3, split(t, 2, push(t, 1, 2, attn_nodes))))
    paths = [p.reshape(n, -1, n).sum(1) for p in (via_attn, via_mlp, via_both)]
    assert all(p.abs().max() > 0.1 * total.abs().max() for p in paths)  # each kind matters
    assert_close(t.edges[(0, 3)] + sum(paths), total, rtol=1e-4, atol=1e-5)
    for s in range(3):  # so a node's score is the sum of its outgoing edges (all nodes kept)
        node = torch.cat([t.nodes[s].features.sum((0, 1)), t.nodes[s].error.sum()[None]])
        out = sum(t.edges[(s, q)].sum(1) for q in range(s + 1, 4))
        assert_close(out, node, rtol=1e-4, atol=1e-5)


def test_upstream_points_are_marks_neighbour_sets():
    def point(i: int, hook: str) -> SAEPoint:  # only its place is read: no SAE behind it
        layer, sublayer, _ = pt.hook_place(hook)
        return SAEPoint(hook, layer, sublayer, i, NO_SAE, torch.empty(0), torch.empty(0))

    def ups(*hooks):
        pts = [point(i, h) for i, h in enumerate(hooks)]
        return [pt.upstream_points(pts, q) for q in range(len(pts))]

    later = [attn_out(2), mlp_out(2), resid_post(2)]
    assert ups(*LAYOUT, *later) == [[], [0], [0, 1], [0, 1, 2], [3], [3, 4], [3, 4, 5]]
    mid = [*LAYOUT[:2], resid_mid(1), *LAYOUT[2:]]
    assert ups(*mid) == [[], [0], [0, 1], [2], [2, 3]]


def test_load_points_orders_a_sublayer_layout(tmp_path, t):
    for i, hook in enumerate([*LAYOUT, resid_pre(1)]):
        random_sae(hook, i).save_model(str(tmp_path / f"sae_{i}"))
    groups = [SAEGroup(SAESource(path=str(tmp_path / f"sae_{i}")), [1]) for i in range(5)]
    groups[0] = SAEGroup(groups[0].source, [0])
    assert [p.hook_name for p in load_points(t.m, groups[3::-1])] == LAYOUT
    with pytest.raises(ValueError, match="same point"):  # resid_pre 1 is resid_post 0
        load_points(t.m, groups)


def splice(sae, mask, keep_err, f_abl, x_abl, a, hook):  # kept nodes from the (ablated)
    f = sae.encode(a)  # upstream, the rest from the corrupt run
    err = a - sae.decode(f) if keep_err else x_abl - sae.decode(f_abl)
    return sae.decode(torch.where(mask, f, f_abl)) + err


def splice_hooks(d, keep):  # the reference splice, by hand
    args = zip(d.pts, keep, d.fa, d.xa)
    return [(p.hook_name, partial(splice, p.sae.sae, *k, f, x)) for p, k, f, x in args]


def test_edge_tables_follow_the_kept_nodes(t):  # rows: kept[p].indices(), columns: kept[q]'s
    kept = [KeptNodes(f, e > 0) for f, e in [([5, 0, 7], 0), ([], 1), ([3, 11], 1), ([2, 9], 0)]]
    for (s, q), table in edge_effects(*t.args, kept=kept).items():
        rows, cols = ([*k.features] + [N_SAE] * k.error for k in (kept[s], kept[q]))
        assert_close(table, t.edges[(s, q)][rows][:, cols])


def test_spliced_metric_bookkeeping(demo):
    d, close = demo, CLOSE
    spliced = lambda k, s=d.abl: ab.spliced_metric(d.m, d.tok, d.pts, d.metric, s, k)  # noqa: E731
    run = lambda hooks: d.metric(d.m.run_with_hooks(d.tok, fwd_hooks=hooks))  # noqa: E731
    everything, nothing = ab.everything(d.pts), ab.nothing(d.pts)
    patched = pinned(d.pts, d.xa)
    zero = pinned(d.pts, [p.sae.sae.decode(0 * f) for p, f in zip(d.pts, d.fc)])
    patch_all, zero_all, corrupt = run(patched), run(zero), d.metric(d.m(d.cor))
    assert_close(spliced(everything), d.base, **close)  # SAEs + errors change nothing
    assert_close([spliced(nothing)] * 2, [patch_all, corrupt], **close)
    assert_close(spliced(ab.complement(nothing)), d.base, **close)
    assert_close(spliced(nothing, at.zero_states(d.pts, d.clean)), zero_all, **close)
    for i in range(len(d.pts)):  # only point i ablated: patching point i alone
        keep = [nothing[j] if j == i else everything[j] for j in range(len(d.pts))]
        assert_close(spliced(keep), run(patched[i : i + 1]), **close)
    gen = torch.Generator().manual_seed(0)
    for trial in range(3):  # random circuits and their complements
        masks = [torch.rand(p.d_sae, generator=gen) < 0.3 for p in d.pts]
        keep = [(mask, bool((trial + i) % 2)) for i, mask in enumerate(masks)]
        for k in (keep, ab.complement(keep)):
            assert_close(spliced(k), run(splice_hooks(d, k)), **close)
