"""Pictures of a run: the synthetic images as a grid (one column per class) and the loss curve from metrics.jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
