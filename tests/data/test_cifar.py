import hashlib
import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest

from jaxdistill.data.cifar import read_cifar10_python
from jaxdistill.data.registry import DatasetSpec, FileSpec, get_spec
from jaxdistill.data.sources import load_dataset
from jaxdistill.errors import DataError

pytestmark = pytest.mark.usefixtures("clean_env")

PER_BATCH, TEST = 4, 3
ARCHIVE = "cifar-10-python.tar.gz"


def batch(n, seed, labels=None, data=None):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"batch",
        b"labels": rng.integers(0, 10, n).tolist() if labels is None else labels,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data,
        b"filenames": [b"img%d.png" % i for i in range(n)],
    }


def old_numpy_pickle(obj):
    """Protocol-2 pickle naming numpy.core (as the original Python 2 archive does) instead of numpy._core."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def make_tar(path, batches=None, skip=(), raw=None):
    """Write a CIFAR-10-layout tar.gz; `batches` maps member name -> dict; `raw` maps member -> bytes."""
    if batches is None:
        batches = {f"data_batch_{i}": batch(PER_BATCH, i) for i in range(1, 6)}
        batches["test_batch"] = batch(TEST, 9)
    members = {name: old_numpy_pickle(b) for name, b in batches.items() if name not in skip}
    members.update(raw or {})
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return batches


def read(path, **kw):
    return read_cifar10_python(path, train_size=kw.pop("train_size", 5 * PER_BATCH), test_size=TEST, **kw)


def test_reads_real_layout(tmp_path):
    path = tmp_path / ARCHIVE
    batches = make_tar(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_x, train_y, test_x, test_y = read(path)
    assert train_x.shape == (20, 32, 32, 3) and train_x.dtype == np.uint8 and train_x.flags.c_contiguous
    assert test_x.shape == (3, 32, 32, 3)
    assert train_y.dtype == np.int32 and test_y.dtype == np.int32
    expected_labels = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][b"labels"]]
    assert train_y.tolist() == expected_labels
    # Row layout is CHW: byte c*1024 + y*32 + x is pixel (y, x) of channel c.
    row = batches["data_batch_2"][b"data"][1]
    image = train_x[PER_BATCH + 1]
    for c, y, x in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 12, 31)]:
        assert image[y, x, c] == row[c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(test_x[2].transpose(2, 0, 1).reshape(-1), batches["test_batch"][b"data"][2])


def test_missing_member(tmp_path):
    path = tmp_path / ARCHIVE
    make_tar(path, skip=("data_batch_3",))
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        read(path)


def test_wrong_shape(tmp_path):
    path = tmp_path / ARCHIVE
    batches = {f"data_batch_{i}": batch(PER_BATCH, i) for i in range(1, 6)}
    batches["test_batch"] = batch(TEST, 9, data=np.zeros((TEST, 3000), np.uint8))
    make_tar(path, batches)
    with pytest.raises(DataError, match=r"test_batch: data should be uint8 of shape \(n, 3072\)"):
        read(path)


def test_label_count_mismatch(tmp_path):
    path = tmp_path / ARCHIVE
    batches = {f"data_batch_{i}": batch(PER_BATCH, i) for i in range(1, 6)}
    batches["data_batch_1"][b"labels"] = [0, 1]
    batches["test_batch"] = batch(TEST, 9)
    make_tar(path, batches)
    with pytest.raises(DataError, match="expected 4 integer labels"):
        read(path)


def test_labels_out_of_range(tmp_path):
    path = tmp_path / ARCHIVE
    batches = {f"data_batch_{i}": batch(PER_BATCH, i) for i in range(1, 6)}
    batches["data_batch_5"][b"labels"] = [0, 1, 10, 2]
    batches["test_batch"] = batch(TEST, 9)
    make_tar(path, batches)
    with pytest.raises(DataError, match=r"data_batch_5: labels should lie in \[0, 9\]"):
        read(path)


def test_wrong_total(tmp_path):
    path = tmp_path / ARCHIVE
    make_tar(path)
    with pytest.raises(DataError, match="hold 20 images, expected 50000"):
        read_cifar10_python(path)


def test_refuses_code_in_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / ARCHIVE
    make_tar(path, raw={"data_batch_1": pickle.dumps(Evil(), protocol=2)})
    with pytest.raises(DataError, match="not allowed"):
        read(path)
    assert not marker.exists()


def test_not_an_archive(tmp_path):
    path = tmp_path / ARCHIVE
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        read(path)
    with pytest.raises(DataError, match="does not exist"):
        read(tmp_path / "absent.tar.gz")


def test_truncated_archive(tmp_path):
    path = tmp_path / ARCHIVE
    make_tar(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        read(path)


def test_load_dataset_cifar_format(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / ARCHIVE
    make_tar(path)
    real = get_spec("cifar10")
    spec = DatasetSpec(
        name="tiny_cifar", image_shape=real.image_shape, num_classes=10, class_names=real.class_names,
        mean=real.mean, std=real.std, format="cifar10_python", train_size=5 * PER_BATCH, test_size=TEST,
        files=(FileSpec(ARCHIVE, (), hashlib.sha256(path.read_bytes()).hexdigest()),),
    )
    ds = load_dataset(spec, data_dir, progress=False)
    assert ds.train_images.shape == (20, 32, 32, 3) and ds.test_labels.shape == (3,)
    assert ds.train_labels.dtype == np.int32
