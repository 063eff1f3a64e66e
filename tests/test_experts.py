import json

import jax
import numpy as np
import pytest

from jaxdistill import experts as ex
from jaxdistill.checkpoint import RunDir
from jaxdistill.errors import ConfigError, WorkdirError
from tests.helpers import tiny_images

IMAGES, LABELS = tiny_images(num_per_class=4, num_classes=2)
CFG = ex.ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=4, augment="none",
                      parallel="vmap")


@pytest.fixture(scope="module")
def buffer(tmp_path_factory):
    path = tmp_path_factory.mktemp("buffer")
    ex.train_experts(path, IMAGES, LABELS, "tiny", 2, [0, 1], CFG, progress=False)
    return path


def test_every_epoch_of_every_expert_is_stored_with_a_checksum(buffer):
    manifest = json.loads((buffer / "manifest.json").read_text())
    assert set(manifest["experts"]) == {"0", "1"}
    for entry in manifest["experts"].values():
        assert entry["complete"] and sorted(entry["checksums"], key=int) == ["0", "1", "2", "3"]
    b = ex.ExpertBuffer(buffer)
    assert b.experts == [0, 1] and b.verify() == []
    first, last = b.load(0, 0), b.load(0, 3)
    assert jax.tree.structure(first) == jax.tree.structure(last)
    assert not np.allclose(first["Conv_0"]["kernel"], last["Conv_0"]["kernel"])  # it trained
    assert not np.allclose(b.load(1, 0)["Conv_0"]["kernel"], first["Conv_0"]["kernel"])  # seeds differ


def test_a_window_reads_two_snapshots_of_one_expert(buffer):
    b = ex.ExpertBuffer(buffer)
    seen = set()
    for i in range(20):
        seed, start, a, z = b.sample_window(np.random.default_rng(i), expert_epochs=2, max_start_epoch=2)
        assert start in (0, 1) and seed in (0, 1)
        np.testing.assert_array_equal(z["Conv_0"]["bias"], b.load(seed, start + 2)["Conv_0"]["bias"])
        seen.add((seed, start))
    assert len(seen) == 4
    with pytest.raises(ConfigError, match="does not fit"):
        b.sample_window(np.random.default_rng(0), expert_epochs=3, max_start_epoch=2)


def test_an_interrupted_expert_resumes_to_the_same_trajectory(buffer, tmp_path, monkeypatch):
    save = RunDir.save

    def save_then_die(self, step, state):
        save(self, step, state)
        if step == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(RunDir, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        ex.train_experts(tmp_path, IMAGES, LABELS, "tiny", 2, [0, 1], CFG, progress=False)
    assert not json.loads((tmp_path / "manifest.json").read_text())["experts"]["0"]["complete"]
    with pytest.raises(WorkdirError, match="no complete expert"):
        ex.ExpertBuffer(tmp_path)
    monkeypatch.setattr(RunDir, "save", save)
    ex.train_experts(tmp_path, IMAGES, LABELS, "tiny", 2, [0, 1], CFG, progress=False)
    done, ref = ex.ExpertBuffer(tmp_path), ex.ExpertBuffer(buffer)
    for seed in (0, 1):
        for a, b in zip(jax.tree.leaves(done.load(seed, 3)), jax.tree.leaves(ref.load(seed, 3))):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_corrupt_and_missing_snapshots_are_reported(buffer, tmp_path):
    import shutil
    copy = tmp_path / "b"
    shutil.copytree(buffer, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["experts"]["0"]["checksums"]["2"] = "0" * 64  # the stored snapshot no longer matches
    (copy / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(copy / "expert_0001" / "0003")
    b = ex.ExpertBuffer(copy)
    problems = b.verify()
    assert any("expert_0000/0002" in p and "corrupt" in p for p in problems)
    assert any("expert_0001/0003" in p and "missing" in p for p in problems)
    with pytest.raises(WorkdirError, match="corrupt"):
        b.load(0, 2)


def test_a_buffer_of_another_config_is_refused(buffer):
    import dataclasses
    with pytest.raises(ConfigError, match="another config"):
        ex.train_experts(buffer, IMAGES, LABELS, "tiny", 2, [2], dataclasses.replace(CFG, lr=0.02), progress=False)


@pytest.mark.parametrize("lr", [0.0, -0.01, float("nan")])
def test_a_bad_expert_lr_is_refused_when_the_config_is_made(lr):
    with pytest.raises(ConfigError, match="expert lr must be a finite number > 0"):
        ex.ExpertConfig(lr=lr)


def test_mnist_experts_default_to_dsa_without_flips():
    assert ex.ExpertConfig().train_config("mnist").augment == "dsa:color_crop_cutout_scale_rotate"
    assert ex.ExpertConfig().train_config("cifar10").augment == "dsa:color_crop_cutout_flip_scale_rotate"
