"""Finding, verifying and loading a dataset's files.

Where the files come from (`resolve_dataset_dir`), in order:
  1. an explicit data_dir: the files directly in it, or in data_dir/<name>/; never downloaded into;
  2. $JAXDISTILL_DATA/<name>/, if that folder exists; never downloaded into;
  3. the cache, <cache>/<name>/ with <cache> = cache_dir, else $JAXDISTILL_CACHE, else ~/.cache/jaxdistill;
     missing files are downloaded there.
Every file is checked against its sha256 each time it is used; a corrupt file is never read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdistill.data.cifar import read_cifar10_python
from jaxdistill.data.download import MANUAL_FIX, download_file, verify_file
from jaxdistill.data.idx import read_idx
from jaxdistill.data.registry import DatasetSpec, FileSpec, get_spec
from jaxdistill.errors import ConfigError, DataError

__all__ = [
    "ENV_DATA",
    "ENV_CACHE",
    "Dataset",
    "default_cache_dir",
    "resolve_dataset_dir",
    "load_dataset",
    "dataset_status",
    "register_reader",
    "STATUSES",
]

ENV_DATA = "JAXDISTILL_DATA"
ENV_CACHE = "JAXDISTILL_CACHE"
STATUSES = ("verified", "corrupt", "incomplete", "missing")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Dataset:
    """A loaded dataset: images uint8 (N, H, W, C), labels int32 (N,)."""

    spec: DatasetSpec
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes


# ---------------------------------------------------------------------------------------------- resolution


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """cache_dir if given, else $JAXDISTILL_CACHE, else ~/.cache/jaxdistill."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "jaxdistill"


def _present(spec: DatasetSpec, folder: Path) -> list[FileSpec]:
    return [f for f in spec.files if (folder / f.filename).is_file()]


def _explicit_folder(spec: DatasetSpec, data_dir: Path) -> Path:
    """The folder under an explicit data_dir that holds the spec's files: data_dir itself or data_dir/<name>."""
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} for dataset {spec.name!r} does not exist or is not a folder; "
            f"create it and put {', '.join(f.filename for f in spec.files)} in it (or in {data_dir / spec.name}), "
            f"or leave out --data-dir to use the download cache"
        )
    candidates = [data_dir, data_dir / spec.name]
    counts = [len(_present(spec, c)) if c.is_dir() else -1 for c in candidates]
    for c, n in zip(candidates, counts):
        if n == len(spec.files):
            return c
    return candidates[0] if counts[0] >= counts[1] else candidates[1]


def _missing_error(spec: DatasetSpec, folder: Path, missing: list[FileSpec], why: str) -> DataError:
    urls = "; ".join(f"{f.filename} from {f.urls[0] if f.urls else spec.homepage}" for f in missing)
    return DataError(
        f"dataset {spec.name!r}: {', '.join(f.filename for f in missing)} missing in {folder} ({why}); "
        f"download {urls} into {folder}"
    )


def _verify_all(spec: DatasetSpec, folder: Path) -> None:
    for f in spec.files:
        verify_file(folder / f.filename, f)


def resolve_dataset_dir(
    spec: DatasetSpec | str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The folder holding all of the spec's files, each verified against its sha256 (see module docstring).

    Raises DataError when files are missing (naming them and how to get them) or corrupt.
    """
    spec = get_spec(spec)
    if data_dir is not None:
        folder = _explicit_folder(spec, Path(data_dir).expanduser())
        missing = [f for f in spec.files if not (folder / f.filename).is_file()]
        if missing:
            raise _missing_error(spec, folder, missing, "files in an explicit data directory are never downloaded")
        _verify_all(spec, folder)
        return folder

    env = os.environ.get(ENV_DATA)
    if env:
        folder = Path(env).expanduser() / spec.name
        if folder.is_dir():
            missing = [f for f in spec.files if not (folder / f.filename).is_file()]
            if missing:
                raise _missing_error(
                    spec, folder, missing,
                    f"found through ${ENV_DATA}; files there are never downloaded; or unset ${ENV_DATA}",
                )
            _verify_all(spec, folder)
            return folder

    folder = default_cache_dir(cache_dir) / spec.name
    missing = [f for f in spec.files if not (folder / f.filename).is_file()]
    # Verify what is already there first, so a corrupt file is reported before any long download.
    for f in spec.files:
        if f not in missing:
            verify_file(folder / f.filename, f)
    if missing and not download:
        err = _missing_error(spec, folder, missing, "downloading is off")
        raise DataError(f"{err}, or allow downloading (download=True), or {MANUAL_FIX}")
    for f in missing:
        download_file(f, folder, progress=progress)
    return folder


# ------------------------------------------------------------------------------------------------- readers


def _idx_roles(spec: DatasetSpec) -> dict[str, FileSpec]:
    """Map train_images/train_labels/test_images/test_labels to the spec's MNIST-style file names."""
    prefixes = {
        "train_images": ("train-images",),
        "train_labels": ("train-labels",),
        "test_images": ("t10k-images", "test-images"),
        "test_labels": ("t10k-labels", "test-labels"),
    }
    roles: dict[str, FileSpec] = {}
    for role, starts in prefixes.items():
        matches = [f for f in spec.files if f.filename.startswith(starts)]
        if len(matches) != 1:
            raise ConfigError(
                f"dataset spec {spec.name!r} (format 'idx') needs exactly one file named {starts[0]}-*, "
                f"found {[f.filename for f in matches]}"
            )
        roles[role] = matches[0]
    return roles


def _read_idx_dataset(spec: DatasetSpec, folder: Path) -> Arrays:
    roles = _idx_roles(spec)
    h, w, c = spec.image_shape
    out = []
    for split in ("train", "test"):
        images = read_idx(folder / roles[f"{split}_images"].filename, expected_shape=(None, h, w) if c == 1 else None)
        labels = read_idx(
            folder / roles[f"{split}_labels"].filename, expected_ndim=1, max_label=spec.num_classes - 1
        )
        if images.ndim == 3:
            images = images[..., None]
        out += [images, labels]
    return tuple(out)  # type: ignore[return-value]


def _read_cifar10_dataset(spec: DatasetSpec, folder: Path) -> Arrays:
    (archive,) = spec.files
    return read_cifar10_python(
        folder / archive.filename,
        train_size=spec.train_size,
        test_size=spec.test_size,
        num_classes=spec.num_classes,
    )


_READERS: dict[str, Callable[[DatasetSpec, Path], Arrays]] = {
    "idx": _read_idx_dataset,
    "cifar10_python": _read_cifar10_dataset,
}


def register_reader(format: str, reader: Callable[[DatasetSpec, Path], Arrays]) -> None:
    """Add the reader of a file format: reader(spec, folder) -> (train_images, train_labels, test_images, test_labels)."""
    if format in _READERS:
        raise ConfigError(f"a reader for format {format!r} is already registered")
    _READERS[format] = reader


# ----------------------------------------------------------------------------------------------- checking


def _check_split(spec: DatasetSpec, split: str, images, labels, expected: int, origin: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels)
    fix = "delete the files so they are downloaded again, or check that they belong to this dataset"
    want_shape = (expected, *spec.image_shape)
    if images.dtype != np.uint8:
        raise DataError(f"dataset {spec.name!r} from {origin}: {split} images are {images.dtype}, expected uint8; {fix}")
    if images.shape != want_shape:
        raise DataError(
            f"dataset {spec.name!r} from {origin}: {split} images have shape {images.shape}, expected {want_shape}; {fix}"
        )
    if labels.shape != (expected,):
        raise DataError(
            f"dataset {spec.name!r} from {origin}: {split} labels have shape {labels.shape}, expected ({expected},); {fix}"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"dataset {spec.name!r} from {origin}: {split} labels are {labels.dtype}, not integers; {fix}")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(
            f"dataset {spec.name!r} from {origin}: {split} labels span [{labels.min()}, {labels.max()}], "
            f"expected [0, {spec.num_classes - 1}]; {fix}"
        )
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _to_dataset(spec: DatasetSpec, arrays: Arrays, origin: str) -> Dataset:
    train_x, train_y, test_x, test_y = arrays
    train_x, train_y = _check_split(spec, "train", train_x, train_y, spec.train_size, origin)
    test_x, test_y = _check_split(spec, "test", test_x, test_y, spec.test_size, origin)
    return Dataset(spec=spec, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y)


def load_dataset(
    name: str | DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    *,
    source: str = "files",
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """Load a dataset by registered name (case-insensitive) or from a DatasetSpec.

    source='files' reads the verified original files (see `resolve_dataset_dir`); source='tfds' goes through
    TensorFlow Datasets, with data_dir as TFDS's data directory. Shapes, counts and label range are checked
    against the spec; anything off raises DataError.
    """
    spec = get_spec(name)
    if source == "files":
        reader = _READERS.get(spec.format)
        if reader is None:
            raise ConfigError(
                f"dataset {spec.name!r} has format {spec.format!r}, which this version of jaxdistill cannot read "
                f"(readable formats: {', '.join(sorted(_READERS))})"
            )
        folder = resolve_dataset_dir(spec, data_dir=data_dir, cache_dir=cache_dir, download=download, progress=progress)
        return _to_dataset(spec, reader(spec, folder), str(folder))
    if source == "tfds":
        from jaxdistill.data.tfds_backend import load_tfds

        return _to_dataset(spec, load_tfds(spec, data_dir, download=download), "TensorFlow Datasets")
    raise ConfigError(f"unknown dataset source {source!r}; use 'files' or 'tfds'")


# ------------------------------------------------------------------------------------------------- status


def _folder_status(spec: DatasetSpec, folder: Path) -> tuple[str, str]:
    present = _present(spec, folder) if folder.is_dir() else []
    missing = [f.filename for f in spec.files if f not in present]
    corrupt = []
    for f in present:
        try:
            verify_file(folder / f.filename, f)
        except DataError:
            corrupt.append(f.filename)
    if corrupt:
        return "corrupt", f"{folder}: sha256 mismatch in {', '.join(corrupt)}; delete so they are downloaded again"
    if not present:
        return "missing", f"no files in {folder}"
    if missing:
        return "incomplete", f"{folder}: missing {', '.join(missing)}"
    return "verified", str(folder)


def dataset_status(
    name: str | DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[str, str]:
    """(status, location or explanation) of a dataset's files, following the order of `resolve_dataset_dir`.

    status is 'verified' (all files present with the right sha256; the second item is their folder), 'corrupt',
    'incomplete' or 'missing'. Never downloads.
    """
    spec = get_spec(name)
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            return "missing", f"data directory {root} does not exist"
        return _folder_status(spec, _explicit_folder(spec, root))
    env = os.environ.get(ENV_DATA)
    if env:
        folder = Path(env).expanduser() / spec.name
        if folder.is_dir():
            return _folder_status(spec, folder)
    folder = default_cache_dir(cache_dir) / spec.name
    status, text = _folder_status(spec, folder)
    if status == "missing":
        where = "" if spec.files[0].urls else f" (get them by hand from {spec.homepage})"
        text = f"not downloaded yet; will be downloaded into {folder} on first use{where}"
    return status, text
