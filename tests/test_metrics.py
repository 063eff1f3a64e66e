"""Metrics from test logits."""
import numpy as np
import pytest

from jaxdistill import metrics
from jaxdistill.errors import ConfigError


def test_accuracy_and_confusion_matrix_from_logits():
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 3.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    out = metrics.compute(("accuracy", "confusion_matrix"), logits, labels, 3)
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]  # rows: true class, columns: predicted


def test_unknown_metric_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown metric.*f1"):
        metrics.compute(("accuracy", "f1"), np.zeros((1, 2)), np.zeros(1, int), 2)


def test_evaluation_records_every_metric_per_network():
    from jaxdistill.evaluate import EvalConfig, evaluate_set
    from jaxdistill.train import TrainConfig
    from tests.helpers import SMALL_MODEL, tiny_images
    x, y = tiny_images(num_per_class=3, num_classes=2)
    tx, ty = tiny_images(num_per_class=5, num_classes=2, seed=1)
    cfg = EvalConfig(model=SMALL_MODEL, num_models=2, train=TrainConfig(epochs=2, augment="none"),
                     metrics=("accuracy", "confusion_matrix"))
    rec = evaluate_set(x, y, tx, ty, 2, cfg)
    assert len(rec["metrics"]) == 2 and rec["accuracies"] == [m["accuracy"] for m in rec["metrics"]]
    assert all(np.sum(m["confusion_matrix"]) == 10 for m in rec["metrics"])
    assert rec["metrics_mean"]["accuracy"] == pytest.approx(rec["accuracy_mean"])
    assert "confusion_matrix" not in rec["metrics_mean"]  # only scalar metrics are averaged
