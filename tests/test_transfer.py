"""Transfer learning and KD on MHIST: augmentation, the protocol's phases and freezing, resume, and every step of
experiments/mhist_transfer.py on a tiny stand-in (the pretrained path through a Keras-saved random-weights file)."""
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import experiment
from jaxdistill.checkpoint import RunDir
from jaxdistill.errors import ConfigError
from jaxdistill.transfer import (NUM_VIEWS, TransferConfig, TransferTrainer, augment_batch, colour_jitter,
                                 dihedral_view, train_transfer)

pytestmark = pytest.mark.filterwarnings("ignore::jaxdistill.errors.DataWarning")
TINY = "mobilenetv2:alpha=0.35"
ROOT = Path(__file__).resolve().parents[1]


def test_dihedral_views_are_the_eight_distinct_symmetries():
    image = jnp.arange(4 * 4 * 1, dtype=jnp.float32).reshape(4, 4, 1)
    views = [np.asarray(dihedral_view(image, jnp.int32(v))) for v in range(NUM_VIEWS)]
    np.testing.assert_array_equal(views[0], image)
    assert len({v.tobytes() for v in views}) == NUM_VIEWS
    np.testing.assert_array_equal(views[1], np.rot90(image, 1, axes=(0, 1)))
    np.testing.assert_array_equal(views[4], image[:, ::-1])
    for v in views:  # a permutation of the pixels, nothing else
        np.testing.assert_array_equal(np.sort(v.ravel()), np.asarray(image).ravel())


def test_colour_jitter_is_mild_and_stays_in_range():
    image = jax.random.uniform(jax.random.PRNGKey(0), (8, 8, 3), minval=-1, maxval=1)
    out = colour_jitter(jax.random.PRNGKey(1), image)
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    assert 0 < float(jnp.abs(out - image).mean()) < 0.3
    batch, views = augment_batch("dihedral", jax.random.PRNGKey(2), jnp.stack([image] * 16))
    assert views.shape == (16,) and len(set(np.asarray(views).tolist())) > 1
    for b, v in zip(batch, views):
        np.testing.assert_array_equal(b, dihedral_view(image, v))


def test_config_phases_and_refusals():
    scratch = TransferConfig(model=TINY, head_epochs=10, finetune_epochs=25)
    assert [(p.name, p.epochs, p.fine_tune_from, p.frozen_bn) for p in scratch.phases()] == [
        ("all", 10, "all", False), ("all_low_lr", 25, "all", False)]
    pre = TransferConfig(model="resnet50v2", pretrained="imagenet")
    assert [(p.name, p.lr, p.fine_tune_from, p.frozen_bn) for p in pre.phases()] == [
        ("head", 1e-4, None, True), ("finetune", pytest.approx(1e-5), "conv5_block1_preact_bn", True)]
    assert TransferConfig(model=TINY, pretrained="x.h5").phases()[1].fine_tune_from == 100
    with pytest.raises(ConfigError, match="dihedral"):
        TransferConfig(model=TINY, temperature=4.0)  # KD with colour jitter: the cached teacher views would lie
    with pytest.raises(ConfigError, match="resnet50v2 or mobilenetv2"):
        TransferConfig(model="convnet")
    with pytest.raises(ConfigError, match="alpha"):
        TransferConfig(model=TINY, temperature=2.0, alpha=1.5, augment="dihedral")
    for lr in (-1e-4, float("nan")):
        with pytest.raises(ConfigError, match="finite lr > 0"):
            TransferConfig(model=TINY, lr=lr)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=12) < 0.4).astype(np.int32)
    images = rng.uniform(-1, 1, (12, 16, 16, 3)).astype(np.float32)
    return images, labels


@pytest.mark.slow
def test_head_phase_trains_only_the_head_and_finetune_only_the_top(tiny_data):
    images, labels = tiny_data
    config = TransferConfig(model=TINY, pretrained="given", head_epochs=1, finetune_epochs=1, batch_size=4,
                            lr=1e-2, augment="none")
    trainer = TransferTrainer(config, 2, images.shape[0])
    state = jax.vmap(lambda k: trainer.init_state(k, jnp.asarray(images)))(jax.random.PRNGKey(0)[None])
    key = jax.random.PRNGKey(1)[None]
    head, finetune = trainer.phases
    state = jax.tree.map(np.array, state)  # host copies: the step donates its input buffers
    after_head, _ = trainer.step_fn(head, False)(state, key, jnp.asarray(images), jnp.asarray(labels), None)
    after_head = jax.tree.map(np.array, after_head)
    changed = lambda a, b: {k for k in a if any(not np.array_equal(x, y) for x, y in
                                                zip(jax.tree.leaves(a[k]), jax.tree.leaves(b[k])))}
    assert changed(after_head.params, state.params) == {"classifier"}
    assert jax.tree.all(jax.tree.map(np.array_equal, after_head.batch_stats, state.batch_stats))  # frozen BN
    after_ft, _ = trainer.step_fn(finetune, False)(after_head, key, jnp.asarray(images), jnp.asarray(labels), None)
    moved = changed(after_ft.params, after_head.params)
    assert "Conv_1" in moved and "block_11_depthwise" in moved
    assert not moved & {"Conv1", "block_10_project", "block_11_expand"}  # below Keras layer 100


@pytest.mark.slow
def test_training_resumes_from_its_workdir(tiny_data, tmp_path):
    images, labels = tiny_data
    config = TransferConfig(model=TINY, head_epochs=2, finetune_epochs=0, batch_size=6, seeds=(0, 1),
                            augment="dihedral")
    first = train_transfer(tmp_path / "run", config, images, labels, 2, progress=False)
    assert [m["step"] for m in RunDir(tmp_path / "run").read_metrics()] == [1, 2]
    again = train_transfer(tmp_path / "run", config, images, labels, 2, progress=False)  # restored, not retrained
    assert jax.tree.all(jax.tree.map(np.array_equal, first.params, again.params))
    with pytest.raises(ConfigError):
        train_transfer(tmp_path / "run", TransferConfig(model=TINY, head_epochs=3, finetune_epochs=0, batch_size=6,
                                                        seeds=(0, 1), augment="dihedral"),
                       images, labels, 2, progress=False)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """A MobileNetV2 (alpha 0.35) weights file saved by Keras with random weights: stands in for ImageNet's."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    model = keras.applications.MobileNetV2(alpha=0.35, weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("keras") / "random_mobilenet.weights.h5"
    model.save_weights(path)
    return path


@pytest.mark.slow
def test_every_stage_on_the_standin(tiny_mhist_standin, keras_file, tmp_path, capsys):
    """teacher, student, kd and report through the experiment runner (smoke: 32 px, MobileNetV2 alpha 0.35 for both),
    the pretrained path (import, head phase, fine-tuning) from Keras-saved random weights."""
    module = experiment.load_experiment(ROOT / "experiments" / "mhist_transfer.py")
    runs = tmp_path / "runs"
    flags = ["--variant", "smoke", "--init", "imagenet", "--data-dir", str(tiny_mhist_standin), "--no-progress",
             "--pretrained-file", str(keras_file), "--runs", str(runs)]
    workdir = {s: runs / module.get_config("smoke", s, "imagenet")["name"] for s in ("teacher", "student", "kd")}
    for stage in ("teacher", "student", "kd"):
        experiment.run_experiment(module, ["--stage", stage, "--workdir", str(workdir[stage]), *flags], "test")
    experiment.run_experiment(module, ["--stage", "report", *flags], "test")
    report = capsys.readouterr().out
    teacher = json.loads((workdir["teacher"] / "teacher" / "record.json").read_text())
    assert teacher["pretrained"] is True and teacher["stand_in"] is True and teacher["data"]["stand_in"] is True
    facts = teacher["pretrained_weights"]
    assert facts["md5_checked"] is False and len(facts["sha256"]) == 64 and facts["head_kept"] == ["classifier"]
    assert [p["name"] for p in teacher["config"]["phases"]] == ["head", "finetune"]
    for key in ("balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc", "confusion_matrix"):
        assert key in teacher["summary"]["metrics"][0]
    low, high = teacher["bootstrap_95"]["roc_auc"]
    assert 0 <= low <= high <= 1
    assert teacher["costs"]["params"] > 0 and teacher["costs"]["forward_flops_per_image"] > 0
    assert set(teacher["costs"]["latency_s_per_image"]) == {"1", "32"}
    assert (workdir["teacher"] / "teacher" / "figures" / "roc.png").exists()
    with np.load(workdir["teacher"] / "teacher" / "train_view_logits.npz") as f:
        assert f["logits"].shape[0] == 2 and f["logits"].shape[2:] == (NUM_VIEWS, 2)
    kd = json.loads((workdir["kd"] / "kd_T2_a0.5" / "record.json").read_text())
    assert kd["teacher"]["pretrained"] is True and kd["config"]["temperature"] == 2
    assert kd["config"]["augment"] == "dihedral" == json.loads(
        (workdir["student"] / "student" / "record.json").read_text())["config"]["augment"]
    assert "kd_T2_a0.5" in report and "| student" in report and "| teacher" in report and "92.7" in report
    assert not list((ROOT / "results").glob("*smoke*"))  # smoke runs write no result records
