import dataclasses
import sys
import types

import numpy as np
import pytest

from jaxdistill.data.registry import get_spec
from jaxdistill.data.sources import load_dataset
from jaxdistill.data.tfds_backend import load_tfds
from jaxdistill.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("clean_env")

INSTALL = "pip install 'jaxdistill[tfds]'"


def small_mnist(train=6, test=4):
    return dataclasses.replace(get_spec("mnist"), name="small_mnist", train_size=train, test_size=test,
                               train_counts=None, test_counts=None)


def fake_tfds(monkeypatch, load):
    module = types.ModuleType("tensorflow_datasets")
    module.load = load
    module.as_numpy = lambda x: x
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    return module


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import raise ImportError
    with pytest.raises(DataError) as excinfo:
        load_tfds(get_spec("mnist"))
    assert INSTALL in str(excinfo.value)
    with pytest.raises(DataError, match="jaxdistill\\[tfds\\]"):
        load_dataset("mnist", source="tfds")


def test_no_tfds_name():
    with pytest.raises(ConfigError, match="no TensorFlow Datasets name"):
        load_tfds(dataclasses.replace(get_spec("mnist"), tfds_name=None))


def test_conversion_through_fake_module(monkeypatch, tmp_path):
    calls = []
    rng = np.random.default_rng(0)

    def load(name, **kwargs):
        calls.append((name, kwargs))
        split = lambda n: (rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10)
        return [split(6), split(4)]

    fake_tfds(monkeypatch, load)
    ds = load_dataset(small_mnist(), tmp_path, source="tfds")
    assert calls[0][0] == "mnist"
    assert calls[0][1]["data_dir"] == str(tmp_path) and calls[0][1]["split"] == ["train", "test"]
    assert calls[0][1]["as_supervised"] and calls[0][1]["batch_size"] == -1
    assert ds.train_images.shape == (6, 28, 28, 1) and ds.train_labels.dtype == np.int32
    assert ds.test_labels.tolist() == [0, 1, 2, 3]


def test_shape_checked_against_spec(monkeypatch):
    fake_tfds(monkeypatch, lambda name, **kw: [(np.zeros((6, 28, 28), np.uint8), np.zeros(6, np.int64))] * 2)
    with pytest.raises(DataError, match="expected \\(6, 28, 28, 1\\)"):
        load_dataset(small_mnist(6, 6), source="tfds")


def test_tfds_failure_becomes_data_error(monkeypatch):
    def load(name, **kwargs):
        raise RuntimeError("no network")

    fake_tfds(monkeypatch, load)
    with pytest.raises(DataError, match="could not load 'mnist'.*no network"):
        load_tfds(get_spec("mnist"))


def test_real_tfds_unknown_dataset(tmp_path):
    pytest.importorskip("tensorflow_datasets", reason=f"TensorFlow Datasets is not installed ({INSTALL})")
    spec = dataclasses.replace(get_spec("mnist"), tfds_name="no_such_dataset_jaxdistill")
    with pytest.raises(DataError, match="no_such_dataset_jaxdistill"):
        load_tfds(spec, tmp_path, download=False)
