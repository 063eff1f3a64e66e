import numpy as np
import pytest

from jaxdistill.checkpoint import RunDir
from jaxdistill.errors import WorkdirError
from jaxdistill.visualize import image_grid, save_image_grid, save_loss_curve


def test_grid_puts_each_class_in_its_column_and_undoes_normalisation():
    mean, std = (0.5,), (0.25,)
    # class 0: two images of value 0.2 and 0.4 (in [0, 1]); class 1: one image of value 0.9; 2x3 pixels each
    raw = np.array([0.2, 0.9, 0.4], np.float32)[:, None, None, None] * np.ones((3, 2, 3, 1), np.float32)
    images = (raw - 0.5) / 0.25
    grid = image_grid(images, np.array([0, 1, 0]), 2, mean, std)
    assert grid.shape == (4, 6, 1)
    np.testing.assert_allclose(grid[0:2, 0:3], 0.2, atol=1e-6)
    np.testing.assert_allclose(grid[2:4, 0:3], 0.4, atol=1e-6)
    np.testing.assert_allclose(grid[0:2, 3:6], 0.9, atol=1e-6)
    np.testing.assert_allclose(grid[2:4, 3:6], 1.0)  # empty slot: white
    soft = np.eye(2)[[0, 1, 0]] * 0.8 + 0.1  # soft labels pick the column by argmax
    np.testing.assert_array_equal(image_grid(images, soft, 2, mean, std), grid)


def test_png_files_are_written(tmp_path):
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    out = save_image_grid(tmp_path / "g.png", images, np.array([0, 0, 1, 1]), 2, (0.5,), (0.5,), ["a", "b"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for step, loss in [(10, 3.0), (20, 2.5)]:
        run.log_metrics(step, {"match_loss": loss})
    curve = save_loss_curve(tmp_path / "loss.png", run.path)
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(WorkdirError, match="accuracy"):
        save_loss_curve(tmp_path / "x.png", run.path, key="accuracy")


def test_confusion_matrix_and_roc_figures(tmp_path):
    from jaxdistill import metrics
    from jaxdistill.visualize import plot_confusion_matrix, plot_roc
    out = plot_confusion_matrix([[50, 10], [0, 0]], ["HP", "SSA"], tmp_path / "figs" / "cm.png", title="MHIST")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # a class with no examples (an all-zero row) is drawn too
    with pytest.raises(ValueError, match="2 x 2"):
        plot_confusion_matrix(np.zeros((3, 3), int), ["HP", "SSA"], tmp_path / "bad.png")
    logits = np.random.default_rng(0).normal(size=(20, 2))
    labels = np.arange(20) % 2
    curve = metrics.roc_curve(metrics.binary_scores(logits), labels)[:2]
    roc = plot_roc({"net 0": curve, "perfect": ([0, 0, 1], [0, 1, 1])}, tmp_path / "roc.png")
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
