"""A faithful copy of a dataset's files in other packaging is accepted; anything else is refused, by name.

For each IDX file the loader accepts the published .gz (archive sha256: the fast path), a re-compressed .gz whose
content has the published decompressed sha256, or the uncompressed file (the name without '.gz') with that content.
"""

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxdistill.data import sources
from jaxdistill.data.download import content_sha256, locate_file, verify_file
from jaxdistill.data.registry import Manifest, arrays_sha256, get_spec
from jaxdistill.data.sources import DataOrigin, dataset_status, load_dataset, resolve_dataset_dir
from jaxdistill.errors import ConfigError, DataError

# Read before any fixture clears it.
REAL_DATA = os.environ.get("JAXDISTILL_DATA")

pytestmark = pytest.mark.usefixtures("clean_env")


def recompress(src: Path, dest: Path) -> None:
    """What a distribution's packaging does: the same content, gzipped again without name or timestamp (`gzip -n`)."""
    dest.write_bytes(gzip.compress(gzip.decompress(src.read_bytes()), compresslevel=1, mtime=0))  # level 1: fast


def uncompress(src: Path, dest: Path) -> None:
    dest.write_bytes(gzip.decompress(src.read_bytes()))


def repackage(spec, src: Path, dest: Path, how) -> Path:
    """Copy every file of `spec` from src into dest: 'recompressed' (same names) or 'uncompressed' (names without .gz)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        if how == "recompressed":
            recompress(src / f.filename, dest / f.filename)
            assert sha256(dest / f.filename) != f.sha256  # really other archive bytes
        else:
            uncompress(src / f.filename, dest / f.uncompressed_name)
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_arrays(a, b):
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


@pytest.fixture
def tiny(tmp_path, tiny_idx, http_server):
    """A tiny spec with decompressed digests, its published files in tmp_path/src, served by `http_server`."""
    src = tmp_path / "src"
    spec = tiny_idx(src, base_urls=(http_server.url + "/files/",), decompressed_sha256=True)
    for f in spec.files:
        http_server.serve("/files/" + f.filename, (src / f.filename).read_bytes())
    return spec, src, http_server


# ---- real MNIST ------------------------------------------------------------------------------------------------------


def real_mnist() -> Path:
    if not REAL_DATA or not (Path(REAL_DATA) / "mnist").is_dir():
        pytest.skip("real MNIST needs $JAXDISTILL_DATA/mnist (set JAXDISTILL_DATA to a folder holding mnist/)")
    return Path(REAL_DATA) / "mnist"


@pytest.mark.parametrize("how", ["recompressed", "uncompressed"])
def test_real_mnist_in_other_packaging_loads_the_same_arrays(tmp_path, how):
    src = real_mnist()
    spec = get_spec("mnist")
    original = load_dataset("mnist", src, download=False, progress=False)
    folder = repackage(spec, src, tmp_path / "mnist", how)
    copy = load_dataset("mnist", folder, download=False, progress=False)
    assert_same_arrays(copy, original)
    assert copy.origin == DataOrigin("data_dir", folder)
    assert dataset_status("mnist", folder) == ("verified", str(folder))


def test_real_mnist_corrupt_uncompressed_file_is_refused_by_name(tmp_path):
    src = real_mnist()
    spec = get_spec("mnist")
    folder = repackage(spec, src, tmp_path / "mnist", "uncompressed")
    labels = folder / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] = (data[-1] + 1) % 10  # still a valid IDX label file: only the checksum can tell
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError) as excinfo:
        load_dataset("mnist", folder, download=False, progress=False)
    msg = str(excinfo.value)
    file = spec.file("t10k-labels-idx1-ubyte.gz")
    assert "t10k-labels-idx1-ubyte (the uncompressed form of t10k-labels-idx1-ubyte.gz)" in msg and str(labels) in msg
    assert file.sha256 in msg and file.decompressed_sha256 in msg and "delete it" in msg
    assert dataset_status("mnist", folder)[0] == "corrupt"


# ---- tiny dataset: the same, without MNIST ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["recompressed", "uncompressed"])
def test_tiny_in_other_packaging_loads_the_same_arrays(tiny, tmp_path, how):
    spec, src, server = tiny
    original = load_dataset(spec, src, progress=False)
    folder = repackage(spec, src, tmp_path / how, how)
    assert_same_arrays(load_dataset(spec, folder, progress=False), original)
    assert dataset_status(spec, folder) == ("verified", str(folder))
    assert server.hits == []


def test_published_name_wins_when_both_forms_are_present(tiny, tmp_path):
    spec, src, _ = tiny
    folder = shutil.copytree(src, tmp_path / "both")
    f = spec.files[0]
    (folder / f.uncompressed_name).write_bytes(b"not even IDX")
    assert locate_file(folder, f) == folder / f.filename
    load_dataset(spec, folder, progress=False)


@pytest.mark.parametrize("how", ["recompressed", "uncompressed"])
def test_tiny_corrupt_copy_is_refused_naming_the_file_and_digests(tiny, tmp_path, how):
    spec, src, _ = tiny
    folder = repackage(spec, src, tmp_path / how, how)
    f = spec.file("train-images-idx3-ubyte.gz")
    wrong = np.zeros((12, 4, 4), np.uint8)
    from jaxdistill.data.idx import write_idx

    name = f.filename if how == "recompressed" else f.uncompressed_name
    write_idx(folder / name, wrong, compress=how == "recompressed")  # valid IDX, wrong images
    with pytest.raises(DataError) as excinfo:
        load_dataset(spec, folder, progress=False)
    msg = str(excinfo.value)
    assert f"{name}" in msg and str(folder / name) in msg and "corrupt" in msg
    assert f.sha256 in msg and f.decompressed_sha256 in msg and "delete it" in msg
    status, text = dataset_status(spec, folder)
    assert status == "corrupt" and name in text


def test_truncated_gzip_is_refused(tiny, tmp_path):
    spec, src, _ = tiny
    folder = shutil.copytree(src, tmp_path / "cut")
    f = spec.files[0]
    (folder / f.filename).write_bytes((src / f.filename).read_bytes()[:-6])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz at .* is corrupt: .*truncated"):
        verify_file(folder / f.filename, f)


def test_without_decompressed_digest_only_the_published_file_counts(tmp_path, tiny_idx):
    src = tmp_path / "src"
    spec = tiny_idx(src)  # like CIFAR-10's archive: no decompressed sha256 declared
    folder = tmp_path / "plain"
    folder.mkdir()
    for f in spec.files:
        uncompress(src / f.filename, folder / f.filename[:-3])
    with pytest.raises(DataError, match="missing"):
        resolve_dataset_dir(spec, data_dir=folder)
    f = spec.files[0]
    recompress(src / f.filename, folder / f.filename)
    with pytest.raises(DataError, match=f"{f.filename} at .* is corrupt: sha256 expected {f.sha256}, got"):
        verify_file(folder / f.filename, f)


def test_missing_message_names_both_forms(tiny, tmp_path):
    spec, src, _ = tiny
    folder = shutil.copytree(src, tmp_path / "part")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz \(or t10k-images-idx3-ubyte uncompressed\) missing"):
        load_dataset(spec, folder, progress=False)


def test_uncompressed_copy_in_the_cache_is_used_not_downloaded(tiny, tmp_path):
    spec, src, server = tiny
    cache = tmp_path / "cache"
    repackage(spec, src, cache / spec.name, "uncompressed")
    ds = load_dataset(spec, cache_dir=cache, progress=False)
    assert server.hits == [] and ds.origin == DataOrigin("cache", cache / spec.name)
    assert dataset_status(spec, cache_dir=cache) == ("verified", str(cache / spec.name))


@pytest.mark.parametrize("how", ["recompressed", "uncompressed"])
def test_download_from_a_mirror_that_repackaged_the_files(tiny, tmp_path, how):
    spec, src, server = tiny
    repacked = repackage(spec, src, tmp_path / "mirror", how)
    for f in spec.files:
        name = f.filename if how == "recompressed" else f.uncompressed_name
        server.serve("/files/" + f.filename, (repacked / name).read_bytes())
    cache = tmp_path / "cache"
    ds = load_dataset(spec, cache_dir=cache, progress=False)
    stored = sorted(os.listdir(cache / spec.name))
    # Stored under the name that says what the file is: gzip under .gz, raw bytes without it.
    expected = [f.filename if how == "recompressed" else f.uncompressed_name for f in spec.files]
    assert stored == sorted(expected)
    assert_same_arrays(ds, load_dataset(spec, src, progress=False))
    # A second load finds them, downloads nothing.
    hits = len(server.hits)
    load_dataset(spec, cache_dir=cache, progress=False, download=False)
    assert len(server.hits) == hits


def test_download_of_wrong_content_still_fails_cleanly(tiny, tmp_path):
    spec, src, server = tiny
    f = spec.files[1]
    server.serve("/files/" + f.filename, gzip.compress(b"\0\0\x08\x01\0\0\0\0", mtime=0))
    with pytest.raises(DataError) as excinfo:
        load_dataset(spec, cache_dir=tmp_path / "cache", progress=False)
    msg = str(excinfo.value)
    assert f"could not download {f.filename}" in msg and f.decompressed_sha256 in msg
    assert not any(n.startswith(f.filename[:10]) for n in os.listdir(tmp_path / "cache" / spec.name))


def test_content_sha256(tmp_path):
    raw = os.urandom(5000)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw[:100]) + gzip.compress(raw[100:]))  # two members
    assert content_sha256(tmp_path / "a") == content_sha256(tmp_path / "b.gz") == hashlib.sha256(raw).hexdigest()


# ---- where the data came from ----------------------------------------------------------------------------------------


def test_origin_of_each_kind(tiny, tmp_path, monkeypatch):
    spec, src, _ = tiny
    explicit = shutil.copytree(src, tmp_path / "explicit")
    assert load_dataset(spec, explicit, progress=False).origin == DataOrigin("data_dir", explicit)
    env_folder = shutil.copytree(src, tmp_path / "env" / spec.name)
    monkeypatch.setenv("JAXDISTILL_DATA", str(tmp_path / "env"))
    assert load_dataset(spec, cache_dir=tmp_path / "cache", progress=False).origin == DataOrigin("env", env_folder)
    monkeypatch.delenv("JAXDISTILL_DATA")
    origin = load_dataset(spec, cache_dir=tmp_path / "cache", progress=False).origin
    assert origin == DataOrigin("cache", tmp_path / "cache" / spec.name)
    assert json.loads(json.dumps(origin.to_dict())) == {"kind": "cache", "folder": str(tmp_path / "cache" / spec.name)}
    assert DataOrigin.from_dict(origin.to_dict()) == origin


def test_origin_folder_is_absolute(tiny, tmp_path, monkeypatch):
    spec, src, _ = tiny
    shutil.copytree(src, tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    origin = load_dataset(spec, "rel", progress=False).origin
    assert origin.kind == "data_dir" and Path(origin.folder).is_absolute() and origin.folder == str(tmp_path / "rel")
    assert resolve_dataset_dir(spec, data_dir="rel") == Path("rel")  # unchanged: as given


def test_origin_validation():
    assert DataOrigin("tfds", None).to_dict() == {"kind": "tfds", "folder": None}
    with pytest.raises(ConfigError, match="not one of"):
        DataOrigin("http", None)
    with pytest.raises(ConfigError, match="needs 'kind'"):
        DataOrigin.from_dict({"folder": "x"})


# ---- resolution ------------------------------------------------------------------------------------------------------


def test_load_at_resolution(tiny, tmp_path):
    import dataclasses

    spec, src, _ = tiny
    spec = dataclasses.replace(spec, resolutions=(4, 8))
    native = load_dataset(spec, src, progress=False)
    for same in (None, 4):
        ds = load_dataset(spec, src, progress=False, resolution=same)
        assert_same_arrays(ds, native)
        assert ds.spec == spec
    big = load_dataset(spec, src, progress=False, resolution=8)
    assert big.spec == spec.at_resolution(8) and big.spec.image_shape == (8, 8, 1)
    assert big.train_images.shape == (12, 8, 8, 1) and big.train_images.dtype == np.uint8
    assert big.test_images.shape == (6, 8, 8, 1)
    assert np.array_equal(big.train_labels, native.train_labels) and big.origin == native.origin
    # Upsampling a constant image keeps it constant; the mean brightness barely moves.
    assert abs(big.train_images.mean() - native.train_images.mean()) < 2
    # A resized spec loads again as itself.
    assert_same_arrays(load_dataset(big.spec, src, progress=False), big)
    with pytest.raises(ConfigError, match=r"resolution 5; allowed image sides \(pixels\): 4, 8"):
        load_dataset(spec, src, progress=False, resolution=5)


def test_real_mnist_at_32(tmp_path):
    src = real_mnist()
    ds = load_dataset("mnist", src, download=False, progress=False, resolution=32)
    assert ds.train_images.shape == (60000, 32, 32, 1) and ds.train_images.dtype == np.uint8
    assert ds.spec.image_shape == (32, 32, 1) and ds.spec.convnet_depth() == 3
    assert abs(ds.train_images.mean() / 255 - 0.1307) < 2e-3


# ---- manifest-checked folder datasets --------------------------------------------------------------------------------


def test_manifest_dataset_through_a_registered_reader(tmp_path, monkeypatch):
    import dataclasses

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8), np.array([0, 1, 0, 1]),
              rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8), np.array([1, 0])]
    spec = dataclasses.replace(
        get_spec("cifar10"), name="folder_like", format="mhist", image_shape=(6, 6, 3), num_classes=2,
        class_names=("a", "b"), files=(), train_size=4, test_size=2, resolutions=(), train_counts=None,
        test_counts=None, manifest=Manifest((2, 2), (1, 1), (6, 6, 3), arrays_sha256(*arrays)),
    )
    monkeypatch.setitem(sources._READERS, "mhist", lambda s, folder: tuple(arrays))
    (tmp_path / "images").mkdir()
    ds = load_dataset(spec, tmp_path / "images", progress=False)
    assert ds.origin == DataOrigin("data_dir", tmp_path / "images") and ds.train_images.shape == (4, 6, 6, 3)
    arrays[2] = arrays[2].copy()
    arrays[2][0, 0, 0, 0] ^= 1
    with pytest.raises(DataError, match=r"dataset 'folder_like' in .*images: the decoded images .*some image differs"):
        load_dataset(spec, tmp_path / "images", progress=False)


def test_content_sha256_of_a_broken_gzip_names_the_file(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"abc" * 100)[:-4])
    with pytest.raises(DataError, match=r"x.gz: its gzip data ends early \(truncated\)"):
        content_sha256(tmp_path / "x.gz")
