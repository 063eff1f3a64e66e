"""Loading a dataset through TensorFlow Datasets (optional: pip install 'jaxdistill[tfds]').

tensorflow_datasets is imported only when this backend is used, so the rest of jaxdistill never needs it.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from jaxdistill.data.registry import DatasetSpec
from jaxdistill.errors import ConfigError, DataError

__all__ = ["load_tfds", "import_tfds"]

INSTALL_HINT = "pip install 'jaxdistill[tfds]'"


def import_tfds():
    """The tensorflow_datasets module, or DataError saying how to install it."""
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as e:
        raise DataError(
            f"source='tfds' needs TensorFlow Datasets, which is not installed ({e}); "
            f"install it with: {INSTALL_HINT}, or use source='files'"
        ) from e


def load_tfds(
    spec: DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images uint8 NHWC, train_labels int32, test_images, test_labels) of `spec` from TFDS.

    data_dir is TFDS's own data directory (None: TFDS's default). Shapes are not checked here;
    `load_dataset` checks them against the spec.
    """
    if spec.tfds_name is None:
        raise ConfigError(f"dataset {spec.name!r} has no TensorFlow Datasets name; use source='files'")
    tfds = import_tfds()
    try:
        train, test = tfds.load(
            spec.tfds_name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            data_dir=None if data_dir is None else os.fspath(data_dir),
            download=download,
        )
        (train_x, train_y), (test_x, test_y) = tfds.as_numpy(train), tfds.as_numpy(test)
    except (ImportError, MemoryError):
        raise
    except Exception as e:  # TFDS raises many types (its own, tf.errors, OSError); all mean "no data".
        where = "TFDS's default data directory" if data_dir is None else os.fspath(data_dir)
        raise DataError(
            f"TensorFlow Datasets could not load {spec.tfds_name!r} from {where}: {type(e).__name__}: {e}; "
            f"check the data directory and network, or use source='files'"
        ) from e
    return (
        np.asarray(train_x),
        np.asarray(train_y),
        np.asarray(test_x),
        np.asarray(test_y),
    )
