"""Metrics of a classifier from its test logits: one function per metric, all computed per network.

`compute(names, logits, labels, num_classes)` returns {name: value} for the metrics asked for. Accuracy is the
default; metrics for imbalanced problems (balanced accuracy, per-class recall, F1, ROC AUC, confusion matrix) register
here the same way, so every evaluation record carries whatever its protocol names.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxdistill.errors import ConfigError

MetricFn = Callable[[np.ndarray, np.ndarray, int], Any]  # (logits (N, C), labels (N,), num_classes) -> JSON value


def accuracy(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Fraction of rows whose argmax logit is the label."""
    return float(np.mean(np.argmax(logits, -1) == labels))


def confusion_matrix(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> list[list[int]]:
    """counts[true][predicted], a num_classes x num_classes list of ints."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(labels), np.argmax(logits, -1)), 1)
    return counts.tolist()


METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "confusion_matrix": confusion_matrix}


def register_metric(name: str, fn: MetricFn) -> None:
    if name in METRICS:
        raise ValueError(f"metric {name!r} is registered twice")
    METRICS[name] = fn


def check_names(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(sorted(METRICS))}")


def compute(names: tuple[str, ...], logits, labels, num_classes: int) -> dict[str, Any]:
    """{name: value} of each metric in `names` for one network's test `logits` (N, C) against `labels` (N,)."""
    check_names(names)
    logits, labels = np.asarray(logits, np.float32), np.asarray(labels)
    return {name: METRICS[name](logits, labels, num_classes) for name in names}


__all__ = ["METRICS", "accuracy", "check_names", "compute", "confusion_matrix", "register_metric"]
