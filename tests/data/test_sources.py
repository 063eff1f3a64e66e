import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxdistill.data.idx import write_idx
from jaxdistill.data.registry import FileSpec
from jaxdistill.data.sources import dataset_status, default_cache_dir, load_dataset, resolve_dataset_dir
from jaxdistill.errors import ConfigError, DataError

# Read before any fixture clears it.
REAL_DATA = os.environ.get("JAXDISTILL_DATA")

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def tiny(tmp_path, tiny_idx, http_server):
    """A tiny spec whose files sit in tmp_path/src and are served by `http_server` (which records requests)."""
    src = tmp_path / "src"
    spec = tiny_idx(src, base_urls=(http_server.url + "/files/",))
    for f in spec.files:
        http_server.serve("/files/" + f.filename, (src / f.filename).read_bytes())
    return spec, src, http_server


def copy_files(spec, src, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        shutil.copy(src / f.filename, dest / f.filename)
    return dest


def test_real_mnist(monkeypatch, tmp_path):
    if not REAL_DATA or not (Path(REAL_DATA) / "mnist").is_dir():
        pytest.skip("real MNIST needs $JAXDISTILL_DATA/mnist (set JAXDISTILL_DATA to a folder holding mnist/)")
    monkeypatch.setenv("JAXDISTILL_DATA", REAL_DATA)
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache", download=False, progress=False)
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert ds.test_labels.shape == (10000,)
    counts = np.bincount(ds.train_labels, minlength=10)
    assert len(counts) == 10 and counts.min() >= 5000 and counts.max() <= 7000
    assert abs(ds.train_images.mean() / 255 - 0.1307) < 1e-3
    assert os.listdir(tmp_path) == []  # nothing cached or downloaded


def test_explicit_dir_direct_or_named_subfolder(tiny, tmp_path):
    spec, src, server = tiny
    direct = copy_files(spec, src, tmp_path / "direct")
    assert resolve_dataset_dir(spec, data_dir=direct, cache_dir=tmp_path / "cache") == direct
    nested = copy_files(spec, src, tmp_path / "root" / "tiny")
    assert resolve_dataset_dir(spec, data_dir=tmp_path / "root", cache_dir=tmp_path / "cache") == nested
    assert server.hits == []


def test_explicit_beats_env_beats_cache(tiny, tmp_path, monkeypatch):
    spec, src, server = tiny
    explicit = copy_files(spec, src, tmp_path / "explicit")
    env_folder = copy_files(spec, src, tmp_path / "env" / "tiny")
    cache_folder = copy_files(spec, src, tmp_path / "cache" / "tiny")
    monkeypatch.setenv("JAXDISTILL_DATA", str(tmp_path / "env"))
    assert resolve_dataset_dir(spec, data_dir=explicit, cache_dir=tmp_path / "cache") == explicit
    assert resolve_dataset_dir(spec, cache_dir=tmp_path / "cache") == env_folder
    shutil.rmtree(env_folder)
    assert resolve_dataset_dir(spec, cache_dir=tmp_path / "cache") == cache_folder
    assert server.hits == []


def test_cache_dir_beats_env_cache(tiny, tmp_path, monkeypatch):
    spec, src, server = tiny
    monkeypatch.setenv("JAXDISTILL_CACHE", str(tmp_path / "envcache"))
    assert resolve_dataset_dir(spec, progress=False) == tmp_path / "envcache" / "tiny"
    assert len(server.hits) == 4
    assert resolve_dataset_dir(spec, cache_dir=tmp_path / "c2", progress=False) == tmp_path / "c2" / "tiny"
    assert len(server.hits) == 8
    assert resolve_dataset_dir(spec, progress=False) == tmp_path / "envcache" / "tiny"
    assert len(server.hits) == 8


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXDISTILL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "jaxdistill"
    assert default_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_corrupt_file_in_explicit_dir(tiny, tmp_path):
    spec, src, server = tiny
    explicit = copy_files(spec, src, tmp_path / "explicit")
    copy_files(spec, src, tmp_path / "cache" / "tiny")
    (explicit / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError) as excinfo:
        load_dataset(spec, explicit, cache_dir=tmp_path / "cache", progress=False)
    msg = str(excinfo.value)
    assert "train-labels-idx1-ubyte.gz" in msg and spec.files[1].sha256 in msg and "delete it" in msg
    assert server.hits == []


def test_missing_file_in_explicit_dir_is_not_downloaded(tiny, tmp_path):
    spec, src, server = tiny
    explicit = copy_files(spec, src, tmp_path / "explicit")
    (explicit / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        resolve_dataset_dir(spec, data_dir=explicit, cache_dir=tmp_path / "cache")
    msg = str(excinfo.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "train-images" not in msg and str(explicit) in msg
    assert server.url in msg  # says where to get it
    assert server.hits == [] and sorted(os.listdir(explicit)) == sorted(f.filename for f in spec.files[:2] + spec.files[3:])
    with pytest.raises(DataError, match="does not exist"):
        resolve_dataset_dir(spec, data_dir=tmp_path / "nowhere")


def test_env_dir_corrupt_or_incomplete(tiny, tmp_path, monkeypatch):
    spec, src, server = tiny
    env_folder = copy_files(spec, src, tmp_path / "env" / "tiny")
    monkeypatch.setenv("JAXDISTILL_DATA", str(tmp_path / "env"))
    (env_folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"x")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz .*corrupt"):
        resolve_dataset_dir(spec, cache_dir=tmp_path / "cache")
    (env_folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="JAXDISTILL_DATA"):
        resolve_dataset_dir(spec, cache_dir=tmp_path / "cache")
    assert server.hits == []


def test_cache_corrupt_file_is_reported_not_used(tiny, tmp_path):
    spec, src, server = tiny
    cache_folder = copy_files(spec, src, tmp_path / "cache" / "tiny")
    (cache_folder / "train-images-idx3-ubyte.gz").write_bytes(b"y" * 100)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz .*corrupt"):
        load_dataset(spec, cache_dir=tmp_path / "cache", progress=False)
    assert server.hits == []


def test_cache_download_false(tiny, tmp_path):
    spec, src, server = tiny
    with pytest.raises(DataError) as excinfo:
        load_dataset(spec, cache_dir=tmp_path / "cache", download=False)
    msg = str(excinfo.value)
    assert "train-images-idx3-ubyte.gz" in msg and "download" in msg and server.url in msg
    assert server.hits == []


def test_partial_cache_downloads_only_missing(tiny, tmp_path):
    spec, src, server = tiny
    cache_folder = copy_files(spec, src, tmp_path / "cache" / "tiny")
    (cache_folder / "t10k-labels-idx1-ubyte.gz").unlink()
    ds = load_dataset(spec, cache_dir=tmp_path / "cache", progress=False)
    assert server.hits == ["/files/t10k-labels-idx1-ubyte.gz"]
    assert ds.test_labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_dataset_status(tiny, tmp_path):
    spec, src, server = tiny
    cache = tmp_path / "cache"
    status, text = dataset_status(spec, cache_dir=cache)
    assert status == "missing" and "downloaded" in text
    folder = copy_files(spec, src, cache / "tiny")
    assert dataset_status(spec, cache_dir=cache) == ("verified", str(folder))
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    status, text = dataset_status(spec, cache_dir=cache)
    assert status == "incomplete" and "t10k-labels-idx1-ubyte.gz" in text
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"z")
    status, text = dataset_status(spec, cache_dir=cache)
    assert status == "corrupt" and "train-labels-idx1-ubyte.gz" in text
    explicit = copy_files(spec, src, tmp_path / "explicit")
    assert dataset_status(spec, data_dir=explicit, cache_dir=cache) == ("verified", str(explicit))
    assert dataset_status(spec, data_dir=tmp_path / "nowhere")[0] == "missing"
    assert server.hits == []


def test_dataset_status_registered_name(tmp_path):
    status, text = dataset_status("MNIST", cache_dir=tmp_path)
    assert status == "missing" and str(tmp_path / "mnist") in text
    assert os.listdir(tmp_path) == []


def test_counts_checked_against_spec(tiny, tmp_path):
    spec, src, _ = tiny
    wrong = dataclasses.replace(spec, train_size=13)
    with pytest.raises(DataError, match=r"train images have shape \(12, 4, 4, 1\), expected \(13, 4, 4, 1\)"):
        load_dataset(wrong, src)
    wrong_shape = dataclasses.replace(spec, image_shape=(5, 4, 1))
    with pytest.raises(DataError, match="expected shape"):
        load_dataset(wrong_shape, src)


def test_labels_out_of_range(tiny_idx, tmp_path):
    src = tmp_path / "src"
    spec = tiny_idx(src)
    write_idx(src / "train-labels-idx1-ubyte.gz", np.full(12, 3, np.uint8))
    digest = hashlib.sha256((src / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    files = tuple(FileSpec(f.filename, f.urls, digest) if "train-labels" in f.filename else f for f in spec.files)
    with pytest.raises(DataError, match=r"\[0, 2\]"):
        load_dataset(dataclasses.replace(spec, files=files), src)


def test_bad_source_and_unreadable_format(tiny, tmp_path):
    spec, src, _ = tiny
    with pytest.raises(ConfigError, match="unknown dataset source"):
        load_dataset(spec, src, source="hdf5")
    with pytest.raises(ConfigError, match="cannot read"):
        load_dataset(dataclasses.replace(spec, format="mhist"), src)
    with pytest.raises(ConfigError, match="known datasets"):
        load_dataset("not_a_dataset")


def test_fashion_mnist_loads_from_files_in_the_official_idx_format(tmp_path):
    # The official Fashion-MNIST files are gzipped IDX with MNIST's names and layout; generate small ones, point the
    # registered spec's checksums and sizes at them, and load through the same path a user's real files take.
    import dataclasses
    import hashlib

    from jaxdistill.data.idx import write_idx
    from jaxdistill.data.registry import get_spec
    from jaxdistill.runner import load_real

    official = get_spec("fashion_mnist")
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": (np.arange(30) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8)}
    folder = tmp_path / "fashion_mnist"
    files = []
    for f in official.files:
        write_idx(folder / f.filename, arrays[f.filename])
        data = (folder / f.filename).read_bytes()
        assert data[:2] == b"\x1f\x8b"  # gzip, as published
        files.append(dataclasses.replace(f, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    spec = dataclasses.replace(official, files=tuple(files), train_size=30, test_size=20, train_counts=None,
                               test_counts=None)
    ds = load_dataset(spec, tmp_path, download=False, progress=False)
    np.testing.assert_array_equal(ds.train_images[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte.gz"])
    loaded = load_real(spec, str(tmp_path), progress=False)
    expected = (arrays["t10k-images-idx3-ubyte.gz"][..., None] / 255.0 - 0.2860) / 0.3530  # the paper's normalisation
    np.testing.assert_allclose(np.asarray(loaded.test_images), expected, rtol=1e-5, atol=1e-5)
    assert loaded.train.num_classes == 10 and loaded.spec.class_names[0] == "T-shirt/top"
