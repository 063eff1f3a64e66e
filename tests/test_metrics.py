"""Metrics from test logits, against scikit-learn on random and adversarial inputs.

Every comparison batches its networks into one compute_batch call (one compiled program per shape and class count),
and the batched values are also checked against compute on each network alone.
"""
import warnings

import jax
import numpy as np
import pytest
from sklearn import metrics as sk

from jaxdistill import metrics
from jaxdistill.errors import ConfigError

BINARY = metrics.IMBALANCED_METRICS
MULTICLASS = tuple(n for n in metrics.IMBALANCED_METRICS if n not in metrics.BINARY_ONLY)


def sklearn_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """What each metric should be, from scikit-learn (None where sklearn refuses: the AUC with a class absent)."""
    predicted = np.argmax(logits, -1)
    classes = list(range(num_classes))
    average = "binary" if num_classes == 2 else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns of the absent classes these cases are made of
        recalls = sk.recall_score(labels, predicted, labels=classes, average=None, zero_division=np.nan)
        want = {
            "accuracy": sk.accuracy_score(labels, predicted),
            "balanced_accuracy": sk.balanced_accuracy_score(labels, predicted),
            "recall_per_class": list(recalls),
            "precision": sk.precision_score(labels, predicted, average=average, zero_division=0),
            "recall": sk.recall_score(labels, predicted, average=average, zero_division=0),
            "f1": sk.f1_score(labels, predicted, average=average, zero_division=0),
            "confusion_matrix": sk.confusion_matrix(labels, predicted, labels=classes).tolist(),
        }
        if num_classes == 2:
            want.update(sensitivity=recalls[1], specificity=recalls[0])
            scores = metrics.binary_scores(logits)
        else:
            scores = np.asarray(jax.nn.softmax(logits, -1))  # the probabilities the metric ranks, to the bit
        try:
            want["roc_auc"] = sk.roc_auc_score(labels, scores, multi_class="ovr", average="macro")
        except ValueError:  # one class only: sklearn refuses, the metric is NaN
            want["roc_auc"] = np.nan
    return want


def check_against_sklearn(logits_stack: np.ndarray, labels: np.ndarray, num_classes: int) -> list[dict]:
    names = BINARY if num_classes == 2 else MULTICLASS
    got = metrics.compute_batch(names, logits_stack, labels, num_classes)
    assert len(got) == len(logits_stack)
    for k, (logits, out) in enumerate(zip(logits_stack, got)):
        want = sklearn_metrics(logits, labels, num_classes)
        assert set(out) == set(names)
        assert out["confusion_matrix"] == want.pop("confusion_matrix")
        assert all(isinstance(c, int) for row in out["confusion_matrix"] for c in row)
        for name, value in want.items():
            assert np.asarray(out[name]).shape == np.shape(value), (k, name)
            np.testing.assert_allclose(out[name], value, rtol=1e-5, atol=1e-6, err_msg=f"network {k}: {name}")
            assert all(isinstance(v, float) for v in np.ravel(out[name])), name  # JSON-ready Python floats
    return got


@pytest.mark.parametrize("num_classes", [2, 3])
def test_every_metric_equals_sklearn_on_random_logits(num_classes):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, 50)
    labels[:num_classes] = np.arange(num_classes)  # every class present
    # integer logits: many ties, both between scores (counted 1/2 by the AUC) and between logits (argmax: first)
    tied = rng.integers(-2, 3, (4, 50, num_classes)).astype(np.float32)
    smooth = rng.normal(size=(4, 50, num_classes)).astype(np.float32) + 0.7 * np.eye(num_classes)[labels]
    got = check_against_sklearn(np.concatenate([tied, smooth]), labels, num_classes)
    one_by_one = [metrics.compute(BINARY if num_classes == 2 else MULTICLASS, logits, labels, num_classes)
                  for logits in np.concatenate([tied, smooth])[[0, 5]]]
    for alone, batched in zip(one_by_one, [got[0], got[5]]):  # the vmapped program equals the per-network one
        assert alone.keys() == batched.keys()
        for name in alone:  # up to float32 rounding: the batched reductions may add in another order
            np.testing.assert_allclose(alone[name], batched[name], rtol=1e-6, err_msg=name)


def test_binary_adversarial_cases_equal_sklearn():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    onehot = np.eye(2, dtype=np.float32)[labels]
    cases = {
        "all tied": np.zeros((10, 2), np.float32),
        "no positive predictions": np.stack([np.linspace(1, 2, 10), np.linspace(0, 0.5, 10)], -1),
        "perfect": onehot * 3.0,
        "inverted": (1 - onehot) * 3.0,
        "all positive": np.tile([0.0, 1.0], (10, 1)),
    }
    out = dict(zip(cases, check_against_sklearn(np.stack(list(cases.values())).astype(np.float32), labels, 2)))
    assert out["all tied"]["roc_auc"] == 0.5 and out["all tied"]["balanced_accuracy"] == 0.5
    assert out["no positive predictions"]["precision"] == 0.0 and out["no positive predictions"]["f1"] == 0.0
    assert out["no positive predictions"]["specificity"] == 1.0 and out["no positive predictions"]["sensitivity"] == 0
    assert {k: out["perfect"][k] for k in ("roc_auc", "f1", "balanced_accuracy")} == dict.fromkeys(
        ("roc_auc", "f1", "balanced_accuracy"), 1.0)
    assert out["inverted"]["roc_auc"] == 0.0 and out["inverted"]["accuracy"] == 0.0
    assert out["all positive"]["precision"] == pytest.approx(0.3) and out["all positive"]["recall"] == 1.0


def test_a_class_absent_from_the_labels():
    # binary, no positive label: sensitivity and AUC undefined (NaN), recall 0 as sklearn's zero_division=0
    logits = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)
    out = check_against_sklearn(logits, np.zeros(8, int), 2)
    assert np.isnan(out[0]["sensitivity"]) and np.isnan(out[0]["roc_auc"]) and out[0]["recall"] == 0.0
    assert np.isnan(out[0]["recall_per_class"][1]) and not np.isnan(out[0]["recall_per_class"][0])
    # three classes, class 2 never a label: balanced accuracy over the two present, macro AUC NaN
    logits = np.random.default_rng(1).normal(size=(3, 12, 3)).astype(np.float32)
    labels = np.arange(12) % 2
    out = check_against_sklearn(logits, labels, 3)
    assert all(np.isnan(o["roc_auc"]) and np.isnan(o["recall_per_class"][2]) for o in out)


def test_auc_counts_ties_one_half_and_is_rank_based():
    scores = np.array([0.1, 0.4, 0.4, 0.8, 0.4], np.float32)
    positive = np.array([0, 0, 1, 1, 1])
    # positives 0.4, 0.8, 0.4 against negatives 0.1, 0.4: (1 + 0.5) + 2 + (1 + 0.5) = 5 of 6 pairs
    auc = float(jax.jit(metrics.mann_whitney_auc)(scores, positive))
    assert auc == pytest.approx(5 / 6)
    assert float(metrics.mann_whitney_auc(np.exp(scores), positive)) == pytest.approx(5 / 6)  # monotone: same AUC


def test_roc_curve_for_figures_equals_sklearn_and_its_area_the_auc():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 30)
    scores = rng.integers(0, 6, 30).astype(np.float32)  # ties
    fpr, tpr, thresholds = metrics.roc_curve(scores, labels)
    want = sk.roc_curve(labels, scores, drop_intermediate=False)
    for got, expected in zip((fpr, tpr, thresholds), want):
        np.testing.assert_allclose(got, expected)
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(float(metrics.mann_whitney_auc(scores, labels)), rel=1e-6)


def test_names_are_checked_and_binary_metrics_refuse_more_classes():
    with pytest.raises(ConfigError, match="unknown metric.*auroc.*choose from.*roc_auc"):
        metrics.compute(("accuracy", "auroc"), np.zeros((1, 2)), np.zeros(1, int), 2)
    with pytest.raises(ConfigError, match="specificity.*binary.*3 classes"):
        metrics.compute(("specificity",), np.zeros((1, 3)), np.zeros(1, int), 3)
    metrics.check_names(metrics.IMBALANCED_METRICS, 2)


def test_a_registered_metric_joins_the_batched_program():
    if "test_top2" not in metrics.METRICS:
        metrics.register_metric("test_top2", lambda logits, labels, c: jax.numpy.mean(
            (jax.numpy.argsort(-logits, -1)[:, :2] == labels[:, None]).any(-1)))
    logits = np.array([[[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]], np.float32)
    assert metrics.compute_batch(("test_top2", "accuracy"), logits, np.array([1, 0]), 3) == [
        {"test_top2": 0.5, "accuracy": 0.0}]
    with pytest.raises(ValueError, match="twice"):
        metrics.register_metric("test_top2", metrics.accuracy)


def test_accuracy_and_confusion_matrix_from_logits():
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 3.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    out = metrics.compute(("accuracy", "confusion_matrix"), logits, labels, 3)
    assert out["accuracy"] == 0.5
    assert out["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]  # rows: true class, columns: predicted


def test_evaluation_records_every_metric_per_network():
    from jaxdistill.evaluate import EvalConfig, evaluate_set, summarize
    from jaxdistill.train import TrainConfig
    from tests.helpers import SMALL_MODEL, tiny_images
    x, y = tiny_images(num_per_class=3, num_classes=2)
    tx, ty = tiny_images(num_per_class=5, num_classes=2, seed=1)
    cfg = EvalConfig(model=SMALL_MODEL, num_models=2, train=TrainConfig(epochs=2, augment="none"),
                     metrics=metrics.IMBALANCED_METRICS)
    rec = evaluate_set(x, y, tx, ty, 2, cfg)
    assert len(rec["metrics"]) == 2 and rec["accuracies"] == [m["accuracy"] for m in rec["metrics"]]
    assert all(np.sum(m["confusion_matrix"]) == 10 for m in rec["metrics"])
    assert rec["metrics_mean"]["accuracy"] == pytest.approx(rec["accuracy_mean"])
    assert "confusion_matrix" not in rec["metrics_mean"]  # count tables are summed, not averaged
    assert rec["confusion_matrix_total"] == np.sum([m["confusion_matrix"] for m in rec["metrics"]], 0).tolist()
    recalls = np.array([m["recall_per_class"] for m in rec["metrics"]])
    np.testing.assert_allclose(rec["metrics_mean"]["recall_per_class"], recalls.mean(0))
    np.testing.assert_allclose(rec["metrics_std"]["recall_per_class"], recalls.std(0))
    pooled = summarize([rec, rec])
    assert pooled["confusion_matrix_total"] == (2 * np.asarray(rec["confusion_matrix_total"])).tolist()
    assert pooled["metrics_mean"]["recall_per_class"] == pytest.approx(rec["metrics_mean"]["recall_per_class"])
    with pytest.raises(ConfigError, match="sensitivity.*binary"):  # refused before any network is trained
        evaluate_set(x, y, tx, ty, 3, cfg)


def test_test_metrics_scores_stacked_networks_as_each_alone():
    from jaxdistill.evaluate import test_metrics
    from jaxdistill.models import ModelConfig
    from jaxdistill.train import Trainer, TrainConfig, predict_logits, predict_logits_stacked
    from tests.helpers import tiny_images
    net = ModelConfig.parse("convnet:depth=1,width=4").build(2)
    x, y = tiny_images(num_per_class=3, num_classes=2)
    tx, ty = tiny_images(num_per_class=7, num_classes=2, seed=1)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states = Trainer(net, TrainConfig(epochs=1, parallel="vmap"), 6).run(keys, x, y)
    alone = np.stack([predict_logits(net, *jax.tree.map(lambda a: a[k], (states.params, states.batch_stats)), tx)
                      for k in range(3)])
    # batch 4: vmapped over 3 networks, chunks of 1 image; one network at a time, chunks of 4 (the last padded)
    for vmap in (True, False):
        stacked = predict_logits_stacked(net, states.params, states.batch_stats, tx, batch_size=4, vmap=vmap)
        np.testing.assert_allclose(stacked, alone, rtol=1e-5, atol=1e-5)
    got = test_metrics(net, states, tx, ty, ("accuracy", "roc_auc"), batch_size=4)
    want = metrics.compute_batch(("accuracy", "roc_auc"), alone, ty, 2)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-6)


def test_roc_tpr_reads_the_roc_curve_at_fixed_false_positive_rates():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 40)
    logits = rng.normal(size=(40, 2)).astype(np.float32)
    logits[:, 1] += labels  # informative scores, no ties
    fpr, tpr, _ = sk.roc_curve(labels, metrics.binary_scores(logits), drop_intermediate=False)
    want = [tpr[fpr <= f + 1e-9].max() for f in metrics.ROC_FPR_GRID]
    got = metrics.compute(("roc_tpr",), logits, labels, 2)["roc_tpr"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[-1] == 1.0 and len(got) == len(metrics.ROC_FPR_GRID)
    with pytest.raises(ConfigError, match="roc_tpr.*binary"):
        metrics.compute(("roc_tpr",), np.zeros((1, 3)), np.zeros(1, int), 3)
