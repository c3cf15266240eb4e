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


def _diverging(ax, grid: np.ndarray, rows: list[str], columns: list[str], title: str, limit=None):
    limit = limit or max(float(np.nanmax(np.abs(grid))), 1e-6)
    shown = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", origin="lower")
    ax.set_title(title, fontsize=10)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks(range(len(columns)), columns, fontsize=7, rotation=90)
    return shown


def sweep_heatmaps(
    grids: dict[str, np.ndarray],
    position_labels: list[str],
    title: str,
    limit: float | None = 1.0,
) -> np.ndarray:
    """One panel per sweep kind: layer x position for the residual/attention/MLP sweeps,
    layer x head for the head sweeps. Red = towards the clean run (1), blue = past the
    corrupted run (< 0); white = no effect (0)."""
    kinds = list(grids)
    wide = [k for k in kinds if k in ("resid_pre", "attn_out", "mlp_out")]
    narrow = [k for k in kinds if k not in wide]
    figure = plt.figure(figsize=(4.2 * len(wide) + 2.2 * len(narrow) + 1, 4.2), dpi=110)
    ratios = [3.0] * len(wide) + [1.3] * len(narrow)
    axes = figure.subplots(1, len(kinds), gridspec_kw={"width_ratios": ratios}, squeeze=False)[0]
    shown = None
    for ax, kind in zip(axes, kinds):
        grid = grids[kind]
        layers = [str(i) for i in range(grid.shape[0])]
        across = position_labels if kind in wide else [f"H{h}" for h in range(grid.shape[1])]
        shown = _diverging(ax, grid, layers, across, kind, limit)
        ax.set_ylabel("layer", fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.colorbar(shown, ax=list(axes), fraction=0.02, pad=0.01)
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


def dla_figure(heads: np.ndarray, others: dict[str, float], title: str, total: float) -> np.ndarray:
    """Heads as a layer x head heatmap; embeddings, attention biases and MLPs as bars."""
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(10, 4.2), dpi=110, gridspec_kw={"width_ratios": [1.2, 2]}
    )
    limit = max(float(np.abs(heads).max()), *(abs(v) for v in others.values()), 1e-6)
    shown = _diverging(
        left,
        heads,
        [str(i) for i in range(heads.shape[0])],
        [f"H{h}" for h in range(heads.shape[1])],
        "heads",
        limit,
    )
    left.set_ylabel("layer", fontsize=8)
    figure.colorbar(shown, ax=left, fraction=0.05)
    names, values = list(others), [others[n] for n in others]
    colours = ["#b2182b" if v > 0 else "#2166ac" for v in values]
    right.bar(range(len(values)), values, color=colours)
    right.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    right.axhline(0, color="black", linewidth=0.6)
    right.set_title("embeddings, attention biases, MLPs", fontsize=10)
    figure.suptitle(f"{title} (sum of all pieces + biases = {total:.3f})", fontsize=11)
    figure.tight_layout()
    return _rgb(figure)


def lens_figure(
    stages: list[str],
    mean_probability: np.ndarray,
    median_rank: np.ndarray,
    prompts: dict[str, tuple[np.ndarray, np.ndarray]],
    title: str,
) -> np.ndarray:
    """Answer probability and rank after each layer: the mean/median over all prompts (thick)
    and each shown prompt (thin)."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    x = np.arange(len(stages))
    for label, (probability, rank) in prompts.items():
        top.plot(x, probability, linewidth=0.8, alpha=0.6, label=label)
        bottom.plot(x, rank + 1, linewidth=0.8, alpha=0.6)
    top.plot(x, mean_probability, color="black", linewidth=2.2, label="mean, all prompts")
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
