"""Pictures of a run: the synthetic images as a grid (one column per class), the loss curve from metrics.jsonl, and
an evaluation's confusion matrix and ROC curves."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from jaxdistill.checkpoint import METRICS_FILE, RunDir
from jaxdistill.data.arrays import denormalize
from jaxdistill.errors import WorkdirError


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def image_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, mean, std) -> np.ndarray:
    """(rows * H, num_classes * W, C) picture in [0, 1]: column c holds class c's images top to bottom.

    images: (N, H, W, C) normalised; labels: (N,) hard or (N, K) soft (a soft label's argmax picks the column).
    Columns with fewer images than the fullest one are padded with white.
    """
    images = denormalize(np.asarray(images), mean, std)
    labels = np.asarray(labels)
    classes = labels.argmax(-1) if labels.ndim == 2 else labels
    columns = [images[classes == c] for c in range(num_classes)]
    rows = max(1, max(len(col) for col in columns))
    n, h, w, ch = images.shape
    grid = np.ones((rows * h, num_classes * w, ch), np.float32)
    for c, col in enumerate(columns):
        for r, img in enumerate(col):
            grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return grid


def save_image_grid(path: str | Path, images: np.ndarray, labels: np.ndarray, num_classes: int, mean, std,
                    class_names: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Write `image_grid` as a PNG, with class names over the columns."""
    plt = _pyplot()
    grid = image_grid(images, labels, num_classes, mean, std)
    h, w = np.asarray(images).shape[1:3]
    rows = grid.shape[0] // h
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * num_classes), max(1.2, 0.6 * rows) + 0.6))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None,
              vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([(c + 0.5) * w - 0.5 for c in range(num_classes)])
    ax.set_xticklabels(list(class_names) if class_names else [str(c) for c in range(num_classes)], fontsize=7)
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def save_loss_curve(path: str | Path, workdir: str | Path, key: str = "match_loss", title: str | None = None) -> Path:
    """Plot metric `key` against the iteration from a run folder's metrics.jsonl."""
    rows = [r for r in RunDir(workdir).read_metrics() if key in r]
    if not rows:
        raise WorkdirError(f"{Path(workdir) / METRICS_FILE} has no {key!r} values to plot; "
                          f"it is written while `jaxdistill distill` runs")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key.replace("_", " "))
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion_matrix(counts, class_names: Sequence[str], path: str | Path, title: str | None = None) -> Path:
    """Write a confusion matrix (counts[true][predicted], e.g. a record's `confusion_matrix_total`) as a PNG: each
    cell shows its count and its share of the true class's row in %, shaded by that share (so a minority class's
    recall reads as clearly as the majority's)."""
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(class_names):
        raise ValueError(f"expected a {len(class_names)} x {len(class_names)} matrix of counts (one row and column "
                         f"per class name), got shape {counts.shape}")
    row_totals = counts.sum(1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    plt = _pyplot()
    size = max(3.0, 0.8 * len(class_names) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{count}\n{100 * shares[i, j]:.1f}%", ha="center", va="center", fontsize=8,
                color="white" if shares[i, j] > 0.5 else "black")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), fontsize=8)
    ax.set_yticks(ticks, labels=list(class_names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row %)")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, plt, path)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str | None = None
             ) -> Path:
    """Write ROC curves as a PNG: `curves` maps a legend name to (false positive rates, true positive rates), e.g.
    `metrics.roc_curve(metrics.binary_scores(logits), labels)[:2]` per network; the legend gives each area."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=0.8, label="chance (0.500)")
    for name, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
        area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoids: ties count 1/2, as metrics.roc_auc
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({area:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.legend(title="ROC AUC", fontsize=7, title_fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, plt, path)
