"""The analyses' pictures (matplotlib, no display): heatmaps, bar charts, the lens' curves.

Every function returns an RGB uint8 array [H, W, 3]: the callback saves it as PNG and logs the
same array to TensorBoard.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _rgb(figure) -> np.ndarray:
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def _diverging(
    ax, grid: np.ndarray, rows: list[str], columns: list[str], title: str, limit=None, centre=0.0
):
    limit = limit or max(float(np.nanmax(np.abs(grid - centre))), 1e-6)
    shown = ax.imshow(
        grid,
        cmap="RdBu",
        vmin=centre - limit,
        vmax=centre + limit,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=10)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks(range(len(columns)), columns, fontsize=7, rotation=90)
    return shown


def sweep_heatmaps(
    grids: dict[str, np.ndarray],
    position_labels: list[str],
    title: str,
    centre: float = 0.0,
    limit: float | None = 1.0,
) -> np.ndarray:
    """Top row: layer x position for the residual/attention/MLP sweeps; bottom row: one column
    for the whole-layer sweeps, layer x head for the head sweeps. White = `centre` (no effect:
    0 when denoising, 1 when noising); blue = higher (towards the clean run), red = lower."""
    wide = [k for k in grids if k in ("resid_pre", "attn_out", "mlp_out")]
    narrow = [k for k in grids if k not in wide]
    rows = [r for r in (wide, narrow) if r]
    width = max(4.5 * len(wide) + 1, 2.6 * len(narrow) + 1, 6)
    figure = plt.figure(figsize=(width, 3.6 * len(rows) + 0.6), dpi=110, layout="constrained")
    shown = None
    for row, kinds in zip(figure.subfigures(len(rows), 1, squeeze=False)[:, 0], rows):
        ratios = [0.4 if grids[k].shape[1] == 1 else 1.0 for k in kinds]
        axes = row.subplots(1, len(kinds), squeeze=False, width_ratios=ratios)[0]
        for ax, kind in zip(axes, kinds):
            grid = grids[kind]
            layers = [str(i) for i in range(grid.shape[0])]
            across = position_labels if kind in wide else [f"H{h}" for h in range(grid.shape[1])]
            across = ["all positions"] if kind in ("attn_layer", "mlp_layer") else across
            shown = _diverging(ax, grid, layers, across, kind, limit, centre)
            ax.set_ylabel("layer", fontsize=8)
        row.colorbar(shown, ax=row.axes, fraction=0.03, pad=0.01)
    figure.suptitle(f"{title} (white = {centre:g}, no effect)", fontsize=11)
    return _rgb(figure)


def attribution_scatter(
    exact: dict[str, np.ndarray], estimate: dict[str, np.ndarray], title: str
) -> np.ndarray:
    """Attribution-patching estimate against the exact patch, one colour per sweep kind."""
    figure, ax = plt.subplots(figsize=(5, 5), dpi=110)
    every = []
    for kind in exact:
        x, y = exact[kind].ravel(), estimate[kind].ravel()
        r = np.corrcoef(x, y)[0, 1] if x.std() > 0 and y.std() > 0 else float("nan")
        ax.scatter(x, y, s=10, alpha=0.7, label=f"{kind} (r={r:.2f})")
        every += [x, y]
    low, high = float(np.min(np.concatenate(every))), float(np.max(np.concatenate(every)))
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("exact patch (normalised logit difference)")
    ax.set_ylabel("attribution patching estimate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _rgb(figure)


def dla_figure(
    heads: np.ndarray, others: dict[str, float], largest: dict[str, float], title: str
) -> np.ndarray:
    """Three panels: the largest pieces as bars (largest first), every head as a layer x head
    heatmap, and the embeddings, attention biases and MLPs as bars in model order."""
    figure, (first, left, right) = plt.subplots(
        1, 3, figsize=(15, 4.6), dpi=110, gridspec_kw={"width_ratios": [1.3, 1.2, 2]}
    )
    names = list(largest)[::-1]  # barh draws bottom-up: the largest on top
    values = [largest[n] for n in names]
    first.barh(range(len(values)), values, color=[_colour(v) for v in values])
    first.set_yticks(range(len(names)), names, fontsize=7)
    first.axvline(0, color="black", linewidth=0.6)
    first.set_title(f"the {len(names)} largest pieces", fontsize=10)
    limit = max(float(np.abs(heads).max()), *(abs(v) for v in others.values()), 1e-6)
    layers, head_names = (
        [str(i) for i in range(heads.shape[0])],
        [f"H{h}" for h in range(heads.shape[1])],
    )
    shown = _diverging(left, heads, layers, head_names, "heads", limit)
    left.set_ylabel("layer", fontsize=8)
    figure.colorbar(shown, ax=left, fraction=0.05)
    names, values = list(others), [others[n] for n in others]
    right.bar(range(len(values)), values, color=[_colour(v) for v in values])
    right.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    right.axhline(0, color="black", linewidth=0.6)
    right.set_title("embeddings, attention biases, MLPs", fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _rgb(figure)


def _colour(value: float) -> str:
    return "#2166ac" if value > 0 else "#b2182b"  # as the heatmaps: blue > 0, red < 0


def lens_figure(
    stages: list[str],
    mean_probability: np.ndarray,
    median_rank: np.ndarray,
    prompts: dict[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    wrong_mean_probability: np.ndarray | None = None,
) -> np.ndarray:
    """Answer probability and rank after each layer: the mean/median over all prompts (thick),
    each shown prompt (thin), and the wrong answer's mean probability (dashed)."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    x = np.arange(len(stages))
    for label, (probability, rank) in prompts.items():
        top.plot(x, probability, linewidth=0.8, alpha=0.6, label=label)
        bottom.plot(x, rank + 1, linewidth=0.8, alpha=0.6)
    top.plot(x, mean_probability, color="black", linewidth=2.2, label="mean, all prompts")
    if wrong_mean_probability is not None:
        top.plot(
            x, wrong_mean_probability, color="black", linestyle="--", label="wrong answer, mean"
        )
    bottom.plot(x, median_rank + 1, color="black", linewidth=2.2)
    top.set_ylabel("P(answer)")
    top.set_ylim(0, 1)
    bottom.set_ylabel("rank of answer (1 = top)")
    bottom.set_yscale("log")
    bottom.set_xticks(x, stages, rotation=45, fontsize=8)
    top.legend(fontsize=6, loc="upper left")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _rgb(figure)
