"""Reader of the CIFAR-10 "python version" archive (cifar-10-python.tar.gz).

The archive holds cifar-10-batches-py/data_batch_1..5 and test_batch, each a pickled dict with b"data", a uint8
array of shape (n, 3072) whose rows are one image in CHW order (1024 red, 1024 green, 1024 blue bytes), and
b"labels", a list of n ints. Members are read straight from the tar.gz; nothing is extracted to disk.

The pickles are loaded with an unpickler that only admits the numpy globals needed to rebuild arrays, so a
tampered archive cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from jaxdistill.errors import DataError

__all__ = ["read_cifar10_python", "CIFAR10_MEMBER_DIR", "CIFAR10_TRAIN_BATCHES", "CIFAR10_TEST_BATCH"]

CIFAR10_MEMBER_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"

_ROW = 32 * 32 * 3
_FIX = "delete it so it is downloaded again, or replace it with cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/"

# (module, name) pairs that a CIFAR-10 pickle may reference: numpy array and dtype reconstruction, and
# _codecs.encode, which protocol-2 pickles written by Python 3 use for bytes objects. None of them can run code.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        if module.startswith("numpy.core."):
            # numpy >= 2 moved numpy.core to numpy._core; importing the old name warns.
            try:
                return super().find_class("numpy._core." + module[len("numpy.core."):], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _load_batch(tar: tarfile.TarFile, tar_path: str, member_name: str) -> dict:
    try:
        member = tar.getmember(member_name)
    except KeyError:
        raise DataError(
            f"{tar_path}: member {member_name} is missing; this is not the CIFAR-10 python archive; {_FIX}"
        ) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{tar_path} is truncated or corrupt ({e}); {_FIX}") from e
    f = tar.extractfile(member)
    if f is None:
        raise DataError(f"{tar_path}: member {member_name} is not a regular file; {_FIX}")
    try:
        with f:
            raw = f.read()
        batch = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, OSError, zlib.error, tarfile.TarError) as e:
        raise DataError(f"{tar_path}: member {member_name} cannot be read ({e}); {_FIX}") from e
    if not isinstance(batch, dict):
        raise DataError(f"{tar_path}: member {member_name} holds a {type(batch).__name__}, not a dict; {_FIX}")
    return batch


def _field(batch: dict, key: str):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    return None


def _batch_arrays(batch: dict, tar_path: str, member_name: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    where = f"{tar_path}: member {member_name}"
    data = _field(batch, "data")
    labels = _field(batch, "labels")
    if data is None or labels is None:
        raise DataError(f"{where} lacks the 'data' or 'labels' entry; {_FIX}")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(
            f"{where}: data should be uint8 of shape (n, {_ROW}), got {data.dtype} {data.shape}; {_FIX}"
        )
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError) as e:
        raise DataError(f"{where}: labels are not a list of ints ({e}); {_FIX}") from e
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(
            f"{where}: expected {data.shape[0]} integer labels, got {labels.dtype} of shape {labels.shape}; {_FIX}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{where}: labels should lie in [0, {num_classes - 1}], found [{labels.min()}, {labels.max()}]; {_FIX}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def read_cifar10_python(
    tar_path: str | os.PathLike,
    *,
    train_size: int = 50000,
    test_size: int = 10000,
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read cifar-10-python.tar.gz into (train_images, train_labels, test_images, test_labels).

    Images are uint8 NHWC (n, 32, 32, 3); labels int32 (n,). train_size / test_size are the expected totals
    (the five training batches together, and the test batch); anything else raises DataError.
    """
    tar_path = os.fspath(tar_path)
    try:
        tar = tarfile.open(tar_path, "r:gz")
    except FileNotFoundError:
        raise DataError(f"{tar_path} does not exist; download cifar-10-python.tar.gz into its folder") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tar_path} is not a readable tar.gz archive ({e}); {_FIX}") from e
    with tar:
        train_parts = [
            _batch_arrays(_load_batch(tar, tar_path, f"{CIFAR10_MEMBER_DIR}/{b}"), tar_path, b, num_classes)
            for b in CIFAR10_TRAIN_BATCHES
        ]
        test_images, test_labels = _batch_arrays(
            _load_batch(tar, tar_path, f"{CIFAR10_MEMBER_DIR}/{CIFAR10_TEST_BATCH}"),
            tar_path, CIFAR10_TEST_BATCH, num_classes,
        )
    train_images = np.concatenate([p[0] for p in train_parts])
    train_labels = np.concatenate([p[1] for p in train_parts])
    if train_images.shape[0] != train_size:
        raise DataError(
            f"{tar_path}: the training batches hold {train_images.shape[0]} images, expected {train_size}; {_FIX}"
        )
    if test_images.shape[0] != test_size:
        raise DataError(f"{tar_path}: the test batch holds {test_images.shape[0]} images, expected {test_size}; {_FIX}")
    return train_images, train_labels, test_images, test_labels
