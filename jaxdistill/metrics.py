"""Metrics of a classifier from its test logits, computed on device for K networks in one program.

Each metric is a pure jax.numpy function `(logits (N, C), labels (N,), num_classes) -> array`, so
`compute_batch(names, logits (K, N, C), labels, num_classes)` jits and vmaps every metric asked for into one compiled
program (cached per (names, num_classes)) and returns one {name: value} dict of Python numbers per network, ready for
a JSON record. `compute` is the same for one network.

Metrics for imbalanced problems (MHIST: class 0 = HP, benign, the majority; class 1 = SSA, precancerous, the
positive class) sit beside accuracy; `IMBALANCED_METRICS` names them all for protocols to ask for:
- `balanced_accuracy`: the mean recall over the classes present in the labels (sklearn's balanced_accuracy_score);
- `recall_per_class`: one recall per class, NaN for a class absent from the labels (undefined, not 0, so that it
  cannot pass for a class the network never finds);
- `sensitivity` / `specificity` (binary only): the recall of class 1 / class 0, NaN when that class is absent;
- `precision`, `recall`, `f1`: of the positive class 1 for binary problems (sklearn's average='binary'), macro
  averages over the classes present in the labels or predictions for more classes (average='macro'); a ratio with
  nothing to divide by counts 0 (sklearn's zero_division=0), so `recall` is 0 where `sensitivity` is NaN;
- `roc_auc`: binary: the Mann-Whitney statistic of the score logit[1] - logit[0] (the ranking of softmax p1), ties
  counted 1/2; more classes: the macro one-vs-rest mean over classes of the AUC of each softmax probability (sklearn's
  roc_auc_score(multi_class='ovr', average='macro')). NaN when a class is absent from the labels (sklearn raises);
- `confusion_matrix`: counts[true][predicted].

Predictions are the argmax of the logits, i.e. a threshold of 0.5 on p(SSA) for a binary problem. No threshold is
tuned here; if one is ever chosen it must come from the training data, never from the test set these metrics score.

Values are float32 on device and reach the record as the shortest decimal that reads back as that float32 (0.938, not
0.9380000233650208); NaN is written as NaN, which Python's json reads back.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.errors import ConfigError

MetricFn = Callable[[jax.Array, jax.Array, int], jax.Array]  # (logits (N, C), labels (N,), num_classes) -> array


def predictions(logits: jax.Array) -> jax.Array:
    """The predicted class of each row: the argmax logit (the first one on ties)."""
    return jnp.argmax(logits, -1)


def confusion_matrix(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """counts[true][predicted], an int32 (num_classes, num_classes) array."""
    cells = labels.astype(jnp.int32) * num_classes + predictions(logits).astype(jnp.int32)
    return jnp.bincount(cells, length=num_classes * num_classes).reshape(num_classes, num_classes).astype(jnp.int32)


def accuracy(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Fraction of rows whose argmax logit is the label."""
    return jnp.mean((predictions(logits) == labels).astype(jnp.float32))


def _divide(numerator: jax.Array, denominator: jax.Array, undefined: float) -> jax.Array:
    """numerator / denominator, `undefined` where the denominator is 0."""
    numerator, denominator = numerator.astype(jnp.float32), denominator.astype(jnp.float32)
    return jnp.where(denominator > 0, numerator / jnp.where(denominator > 0, denominator, 1.0), undefined)


def recall_per_class(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """(num_classes,) recall of each class: correct / examples of the class; NaN for a class absent from labels."""
    counts = confusion_matrix(logits, labels, num_classes)
    return _divide(jnp.diagonal(counts), counts.sum(1), jnp.nan)


def balanced_accuracy(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Mean recall over the classes present in `labels` (sklearn.metrics.balanced_accuracy_score)."""
    return jnp.nanmean(recall_per_class(logits, labels, num_classes))


def sensitivity(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Recall of the positive class 1 of a binary problem (NaN when no label is 1)."""
    return recall_per_class(logits, labels, num_classes)[1]


def specificity(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Recall of the negative class 0 of a binary problem (NaN when no label is 0)."""
    return recall_per_class(logits, labels, num_classes)[0]


def _per_class_counts(logits, labels, num_classes):
    """True positives, false positives, false negatives of each class, one-vs-rest."""
    counts = confusion_matrix(logits, labels, num_classes)
    tp = jnp.diagonal(counts)
    return tp, counts.sum(0) - tp, counts.sum(1) - tp


def _precision_recall_f1(logits, labels, num_classes, which: str) -> jax.Array:
    tp, fp, fn = _per_class_counts(logits, labels, num_classes)
    value = {"precision": lambda: _divide(tp, tp + fp, 0.0), "recall": lambda: _divide(tp, tp + fn, 0.0),
             "f1": lambda: _divide(2 * tp, 2 * tp + fp + fn, 0.0)}[which]()
    if num_classes == 2:
        return value[1]
    present = (tp + fp + fn) > 0  # in the labels or the predictions, as sklearn's macro average counts classes
    return _divide(jnp.sum(jnp.where(present, value, 0.0)), jnp.sum(present), jnp.nan)


def precision(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Binary: tp / (tp + fp) of class 1; more classes: the macro mean (0 where nothing is predicted)."""
    return _precision_recall_f1(logits, labels, num_classes, "precision")


def recall(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Binary: tp / (tp + fn) of class 1; more classes: the macro mean (0 where a class has no examples)."""
    return _precision_recall_f1(logits, labels, num_classes, "recall")


def f1(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Binary: 2 tp / (2 tp + fp + fn) of class 1, the harmonic mean of precision and recall; more classes: the
    macro mean."""
    return _precision_recall_f1(logits, labels, num_classes, "f1")


def mann_whitney_auc(scores: jax.Array, positive: jax.Array) -> jax.Array:
    """Area under the ROC curve of `scores` (N,) for the 0/1 mask `positive` (N,): the probability that a random
    positive scores above a random negative, ties counted 1/2. O(N log N) by one sort and two searchsorted passes,
    with no data-dependent shapes, so it jits and vmaps. NaN when either side is empty."""
    positive = positive.astype(bool)
    order = jnp.argsort(scores)
    sorted_scores = scores[order]
    # negatives_before[j]: how many negatives are among the j lowest scores
    negatives_before = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum((~positive[order]).astype(jnp.int32))])
    below = negatives_before[jnp.searchsorted(sorted_scores, scores, side="left")]
    at_or_below = negatives_before[jnp.searchsorted(sorted_scores, scores, side="right")]
    num_positive = jnp.sum(positive).astype(jnp.float32)
    num_negative = scores.shape[0] - num_positive
    # below + (at_or_below - below) / 2 negatives rank under each positive; each term is normalised to [0, 1]
    # before the sum, so float32 keeps its precision for large N
    wins = (below + at_or_below).astype(jnp.float32) / jnp.maximum(2.0 * num_negative, 1.0)
    return _divide(jnp.sum(jnp.where(positive, wins, 0.0)), num_positive * (num_negative > 0), jnp.nan)


def binary_scores(logits):
    """The score of the positive class 1 of binary logits (N, 2): logit[1] - logit[0], a monotone function of
    softmax p1 (and exact where p1 rounds to 0 or 1). numpy in, numpy out; jax in, jax out."""
    return logits[..., 1] - logits[..., 0]


def roc_auc(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Binary: the AUC of logit[1] - logit[0] for class 1. More classes: the mean over classes of the AUC of the
    softmax probability of class c for `labels == c` (one-vs-rest, macro). NaN when a class is absent."""
    if num_classes == 2:
        return mann_whitney_auc(binary_scores(logits), labels == 1)
    probabilities = jax.nn.softmax(logits, -1)
    per_class = jax.vmap(lambda c: mann_whitney_auc(probabilities[:, c], labels == c))(jnp.arange(num_classes))
    return jnp.mean(per_class)


ROC_FPR_GRID = np.linspace(0.0, 1.0, 21)  # false positive rates at which `roc_tpr` reads the curve


def tpr_at_fpr(scores: jax.Array, positive: jax.Array, fpr: jax.Array) -> jax.Array:
    """The ROC curve read at false positive rates `fpr` (M,): for each, the largest true positive rate of a threshold
    whose false positive rate is at most it (a positive counts when it scores strictly above the threshold). Fixed
    shapes, so it jits and vmaps; a record can keep it per network and a figure average it over networks."""
    positive = positive.astype(bool)
    num_negative = jnp.sum(~positive)
    num_positive = jnp.sum(positive).astype(jnp.float32)
    negatives_desc = -jnp.sort(-jnp.where(positive, -jnp.inf, scores))  # the negatives first, highest first
    allowed = jnp.floor(fpr * num_negative + 1e-6).astype(jnp.int32)  # negatives that may score above the threshold
    threshold = jnp.where(allowed < num_negative, negatives_desc[jnp.minimum(allowed, scores.shape[0] - 1)],
                          -jnp.inf)
    above = jnp.sum(positive[None, :] & (scores[None, :] > threshold[:, None]), axis=1).astype(jnp.float32)
    return _divide(above, num_positive, jnp.nan)


def roc_tpr(logits: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Binary: the ROC curve of class 1 (score logit[1] - logit[0]) as its true positive rates at `ROC_FPR_GRID`."""
    return tpr_at_fpr(binary_scores(logits), labels == 1, jnp.asarray(ROC_FPR_GRID, jnp.float32))


METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy, "balanced_accuracy": balanced_accuracy, "recall_per_class": recall_per_class,
    "sensitivity": sensitivity, "specificity": specificity, "precision": precision, "recall": recall, "f1": f1,
    "roc_auc": roc_auc, "confusion_matrix": confusion_matrix, "roc_tpr": roc_tpr,
}
BINARY_ONLY: set[str] = {"sensitivity", "specificity", "roc_tpr"}  # defined for two classes only
IMBALANCED_METRICS: tuple[str, ...] = tuple(METRICS)  # every metric above, for binary imbalanced problems (MHIST)

_PROGRAMS: dict[tuple[tuple[str, ...], int], Callable] = {}


def register_metric(name: str, fn: MetricFn, binary_only: bool = False) -> None:
    """Add a metric: `fn(logits (N, C), labels (N,), num_classes) -> array` written in jax.numpy (it is jitted and
    vmapped with the others); an integer array reaches the record as ints, a float array as floats."""
    if name in METRICS:
        raise ValueError(f"metric {name!r} is registered twice")
    METRICS[name] = fn
    if binary_only:
        BINARY_ONLY.add(name)


def check_names(names: tuple[str, ...], num_classes: int | None = None) -> None:
    """ConfigError for an unknown metric name, or (given `num_classes`) a binary-only metric on more classes."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(sorted(METRICS))}")
    binary = [n for n in names if n in BINARY_ONLY]
    if num_classes is not None and num_classes != 2 and binary:
        raise ConfigError(f"metric(s) {', '.join(binary)} are defined for binary problems only, and this one has "
                          f"{num_classes} classes; ask for recall_per_class instead")


def _program(names: tuple[str, ...], num_classes: int) -> Callable:
    """One compiled program: (logits (K, N, C), labels (N,)) -> {name: (K, ...) array}."""
    key = (names, num_classes)
    if key not in _PROGRAMS:
        def one(logits, labels):
            return {name: METRICS[name](logits, labels, num_classes) for name in names}
        _PROGRAMS[key] = jax.jit(jax.vmap(one, in_axes=(0, None)))
    return _PROGRAMS[key]


def _to_python(value: np.ndarray) -> Any:
    """An array as nested lists of Python ints (integer arrays) or floats (written as their shortest decimal)."""
    if value.ndim:
        return [_to_python(v) for v in value]
    if np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_:
        return int(value)
    return float(str(value[()]))


def compute_batch(names: tuple[str, ...], logits_stack, labels, num_classes: int) -> list[dict[str, Any]]:
    """{name: value} of each metric in `names` for each of K networks' test logits (K, N, C) against the shared
    `labels` (N,), computed as one jitted, vmapped program; values are Python numbers or (nested) lists of them."""
    names = tuple(names)
    check_names(names, num_classes)
    logits_stack = jnp.asarray(logits_stack, jnp.float32)
    if logits_stack.ndim != 3 or logits_stack.shape[-1] != num_classes:
        raise ValueError(f"expected logits of shape (networks, examples, {num_classes}), got {logits_stack.shape}")
    out = jax.device_get(_program(names, num_classes)(logits_stack, jnp.asarray(labels, jnp.int32)))
    return [{name: _to_python(np.asarray(out[name][k])) for name in names} for k in range(logits_stack.shape[0])]


def compute(names: tuple[str, ...], logits, labels, num_classes: int) -> dict[str, Any]:
    """{name: value} of each metric in `names` for one network's test `logits` (N, C) against `labels` (N,)."""
    return compute_batch(names, jnp.asarray(logits)[None], labels, num_classes)[0]


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of `scores` (N,) for binary `labels` (N,), in numpy, for figures: (false positive rates, true
    positive rates, thresholds), one point per distinct score from the highest down, after a first point (0, 0) at
    threshold +inf (sklearn's roc_curve with drop_intermediate=False). The trapezoid area under it equals `roc_auc`.
    For binary logits the score is `binary_scores(logits)`."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], labels[order] == 1
    last_of_each_score = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1] if scores.size else np.zeros(0, int)
    true_pos = np.cumsum(positive)[last_of_each_score]
    false_pos = (last_of_each_score + 1) - true_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0, true_pos] / positive.sum()
        fpr = np.r_[0, false_pos] / (~positive).sum()
    return fpr, tpr, np.r_[np.inf, scores[last_of_each_score]]


def bootstrap_interval(names: tuple[str, ...], logits_stack, labels, num_classes: int, resamples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> dict[str, list[float]]:
    """Percentile bootstrap interval over the test images of each metric's mean over K networks.

    logits_stack (K, N, C): every resample draws N test images with replacement (the same draw for all K networks,
    which saw the same test set) and computes each scalar metric in `names` for every network, then their mean; the
    interval is the (1 - level) / 2 and (1 + level) / 2 quantiles over resamples (NaN resamples, e.g. one class
    missing for an AUC, are left out). It measures the uncertainty that a finite test set puts on the reported mean."""
    names = tuple(names)
    check_names(names, num_classes)
    logits_stack = jnp.asarray(logits_stack, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    n = labels.shape[0]
    draws = jax.random.randint(jax.random.PRNGKey(seed), (resamples, n), 0, n)

    @jax.jit
    def one(idx):
        per_net = jax.vmap(lambda lg: jnp.stack([METRICS[m](lg[idx], labels[idx], num_classes) for m in names]))
        return jnp.mean(per_net(logits_stack), axis=0)

    values = np.asarray(jax.lax.map(one, draws, batch_size=min(resamples, 50)))  # (resamples, len(names))
    low, high = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: [float(np.nanpercentile(values[:, i], low)), float(np.nanpercentile(values[:, i], high))]
            for i, m in enumerate(names)}


__all__ = ["BINARY_ONLY", "bootstrap_interval", "IMBALANCED_METRICS", "METRICS", "ROC_FPR_GRID", "accuracy",
           "balanced_accuracy", "binary_scores", "check_names", "compute", "compute_batch", "confusion_matrix", "f1",
           "mann_whitney_auc", "precision", "predictions", "recall", "recall_per_class", "register_metric", "roc_auc",
           "roc_curve", "roc_tpr", "sensitivity", "specificity", "tpr_at_fpr"]
