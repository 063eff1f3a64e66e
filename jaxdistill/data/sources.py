"""Finding, verifying and loading a dataset's files.

Where the files come from (`resolve_dataset_dir`), in order:
  1. an explicit data_dir: the files directly in it, or in data_dir/<name>/; never downloaded into;
  2. $JAXDISTILL_DATA/<name>/, if that folder exists; never downloaded into;
  3. the cache, <cache>/<name>/ with <cache> = cache_dir, else $JAXDISTILL_CACHE, else ~/.cache/jaxdistill;
     missing files are downloaded there.
Every file is checked each time it is used, against its published sha256 or, for a gzip file whose spec gives one,
the sha256 of its decompressed content (so a re-compressed copy, or the uncompressed file under the name without
'.gz', is accepted: see `jaxdistill.data.download`); a file that matches neither is never read. A spec with a
`Manifest` also has its decoded arrays checked against it. `load_dataset` says where the data came from
(`Dataset.origin`) and can resize the images to another resolution the spec allows.

A folder dataset (a spec with an `index_file`, e.g. MHIST) is looked for in the same places, by its index file, but
is never downloaded; its format's reader validates it and says what the source's checksum is (`Dataset.source_sha256`)
and whether it is a generated stand-in (`Dataset.stand_in`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxdistill.data.cifar import read_cifar10_python
from jaxdistill.data.download import MANUAL_FIX, download_file, locate_file, verify_file
from jaxdistill.data.idx import read_idx
from jaxdistill.data.registry import DatasetSpec, FileSpec, get_spec, verify_manifest
from jaxdistill.data.resize import resize_images
from jaxdistill.errors import ConfigError, DataError

__all__ = [
    "ENV_DATA",
    "ENV_CACHE",
    "Dataset",
    "DataOrigin",
    "ORIGIN_KINDS",
    "default_cache_dir",
    "resolve_dataset_dir",
    "resolve_dataset_origin",
    "load_dataset",
    "dataset_status",
    "dataset_class_counts",
    "register_reader",
    "STATUSES",
]

ENV_DATA = "JAXDISTILL_DATA"
ENV_CACHE = "JAXDISTILL_CACHE"
STATUSES = ("verified", "present", "corrupt", "incomplete", "missing")
#: Where a dataset was loaded from: an explicit data_dir, $JAXDISTILL_DATA, the user cache, TensorFlow Datasets.
ORIGIN_KINDS = ("data_dir", "env", "cache", "tfds")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DataOrigin:
    """Where a loaded dataset came from: kind is one of ORIGIN_KINDS; folder is the folder its files were read from
    (absolute, as resolved), or for kind 'tfds' TFDS's data directory (None: TFDS's default)."""

    kind: str
    folder: str | None

    def __post_init__(self) -> None:
        if self.kind not in ORIGIN_KINDS:
            raise ConfigError(f"data origin kind {self.kind!r} is not one of {', '.join(ORIGIN_KINDS)}")
        if self.folder is not None:
            object.__setattr__(self, "folder", os.fspath(self.folder))

    def to_dict(self) -> dict[str, str | None]:
        """{'kind': ..., 'folder': ...}, JSON-serialisable."""
        return {"kind": self.kind, "folder": self.folder}

    @classmethod
    def from_dict(cls, record: dict) -> DataOrigin:
        """The inverse of `to_dict`."""
        try:
            return cls(kind=record["kind"], folder=record.get("folder"))
        except (KeyError, TypeError, AttributeError):
            raise ConfigError(f"a data origin record needs 'kind' and 'folder', got {record!r}") from None


@dataclass
class Dataset:
    """A loaded dataset: images uint8 (N, H, W, C) with (H, W, C) = spec.image_shape, labels int32 (N,).

    origin says where it was loaded from (None only for datasets built by hand). For a folder dataset,
    source_sha256 is the checksum of what was read, stand_in whether the folder is a generated stand-in, and
    annotations holds per-image arrays its reader keeps (MHIST: 'train_votes', 'test_votes', the annotators' SSA votes).
    """

    spec: DatasetSpec
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    origin: DataOrigin | None = None
    source_sha256: str | None = None
    stand_in: bool = False
    annotations: dict[str, np.ndarray] = field(default_factory=dict)

    def class_counts(self, split: str = "train") -> tuple[int, ...]:
        """Images per class in a split ('train' or 'test')."""
        labels = self.train_labels if split == "train" else self.test_labels
        return tuple(int(c) for c in np.bincount(np.asarray(labels, np.int64), minlength=self.num_classes))

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
    """The spec's files found in `folder` under one of their accepted names."""
    return [f for f in spec.files if locate_file(folder, f) is not None]


def _missing(spec: DatasetSpec, folder: Path) -> list[FileSpec]:
    return [f for f in spec.files if locate_file(folder, f) is None]


def _file_names(files: list[FileSpec] | tuple[FileSpec, ...]) -> str:
    """'a.gz (or a uncompressed), b.gz' for messages."""
    return ", ".join(
        f.filename if f.uncompressed_name is None else f"{f.filename} (or {f.uncompressed_name} uncompressed)"
        for f in files
    )


def _explicit_folder(spec: DatasetSpec, data_dir: Path) -> Path:
    """The folder under an explicit data_dir that holds the spec's files: data_dir itself or data_dir/<name>."""
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} for dataset {spec.name!r} does not exist or is not a folder; "
            f"create it and put {_file_names(spec.files)} in it (or in {data_dir / spec.name}), "
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
        f"dataset {spec.name!r}: {_file_names(missing)} missing in {folder} ({why}); "
        f"download {urls} into {folder}"
    )


def _verify_all(spec: DatasetSpec, folder: Path) -> None:
    for f in spec.files:
        verify_file(locate_file(folder, f) or folder / f.filename, f)


def resolve_dataset_dir(
    spec: DatasetSpec | str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The folder holding all of the spec's files, each verified (see module docstring).

    Raises DataError when files are missing (naming them and how to get them) or corrupt.
    """
    return _resolve(spec, data_dir, cache_dir, download, progress)[0]


def resolve_dataset_origin(
    spec: DatasetSpec | str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> DataOrigin:
    """Like `resolve_dataset_dir`, but says which kind of place the folder is: a DataOrigin with the folder made
    absolute (symbolic links are kept as they are)."""
    folder, kind = _resolve(spec, data_dir, cache_dir, download, progress)
    return DataOrigin(kind, folder.absolute())


def _resolve(
    spec: DatasetSpec | str,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    download: bool,
    progress: bool,
) -> tuple[Path, str]:
    """(folder, origin kind); see `resolve_dataset_dir`."""
    spec = get_spec(spec)
    if spec.is_folder_dataset:
        return _resolve_folder(spec, data_dir, cache_dir)
    if data_dir is not None:
        folder = _explicit_folder(spec, Path(data_dir).expanduser())
        missing = _missing(spec, folder)
        if missing:
            raise _missing_error(spec, folder, missing, "files in an explicit data directory are never downloaded")
        _verify_all(spec, folder)
        return folder, "data_dir"

    env = os.environ.get(ENV_DATA)
    if env:
        folder = Path(env).expanduser() / spec.name
        if folder.is_dir():
            missing = _missing(spec, folder)
            if missing:
                raise _missing_error(
                    spec, folder, missing,
                    f"found through ${ENV_DATA}; files there are never downloaded; or unset ${ENV_DATA}",
                )
            _verify_all(spec, folder)
            return folder, "env"

    folder = default_cache_dir(cache_dir) / spec.name
    missing = _missing(spec, folder)
    # Verify what is already there first, so a corrupt file is reported before any long download.
    for f in spec.files:
        if f not in missing:
            verify_file(locate_file(folder, f), f)
    if missing and not download:
        err = _missing_error(spec, folder, missing, "downloading is off")
        raise DataError(f"{err}, or allow downloading (download=True), or {MANUAL_FIX}")
    for f in missing:
        download_file(f, folder, progress=progress)
    return folder, "cache"


def _folder_candidates(spec: DatasetSpec, data_dir: str | os.PathLike | None,
                       cache_dir: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """Where a folder dataset is looked for, in order, with the origin kind of each."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [(root, "data_dir"), (root / spec.name, "data_dir")]
    out = []
    env = os.environ.get(ENV_DATA)
    if env:
        out.append((Path(env).expanduser() / spec.name, "env"))
    out.append((default_cache_dir(cache_dir) / spec.name, "cache"))
    return out


def _resolve_folder(spec: DatasetSpec, data_dir, cache_dir) -> tuple[Path, str]:
    """The folder holding a folder dataset's index file; DataError saying how to obtain the dataset otherwise."""
    candidates = _folder_candidates(spec, data_dir, cache_dir)
    hint = spec.obtain or f"pass --data-dir naming the folder that holds {spec.index_file}"
    if data_dir is not None and not candidates[0][0].is_dir():
        raise DataError(
            f"data directory {candidates[0][0]} for dataset {spec.name!r} does not exist or is not a folder; {hint}"
        )
    for folder, kind in candidates:
        if (folder / spec.index_file).is_file():
            return folder, kind
    looked = ", ".join(str(folder) for folder, _ in candidates)
    raise DataError(f"dataset {spec.name!r}: no {spec.index_file} in {looked}; {hint}")


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
    h, w, c = spec.native_shape

    def path(role: str) -> Path:
        file = roles[role]
        return locate_file(folder, file) or folder / file.filename

    out = []
    for split in ("train", "test"):
        images = read_idx(path(f"{split}_images"), expected_shape=(None, h, w) if c == 1 else None)
        labels = read_idx(path(f"{split}_labels"), expected_ndim=1, max_label=spec.num_classes - 1)
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
    """Add the reader of a file format: reader(spec, folder) -> (train_images, train_labels, test_images, test_labels),
    images uint8 (N, H, W, C) at the spec's (native) image_shape, labels integers (N,). folder holds the spec's
    verified files; a reader finds each with `jaxdistill.data.download.locate_file(folder, file)`, which also
    finds an accepted uncompressed copy."""
    if format in _READERS:
        raise ConfigError(f"a reader for format {format!r} is already registered")
    _READERS[format] = reader


# ----------------------------------------------------------------------------------------------- checking


def _check_split(spec: DatasetSpec, split: str, images, labels, expected: int | None, origin: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Check a split's arrays; expected is its image count (None: any count, for a folder dataset's subset)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    fix = "delete the files so they are downloaded again, or check that they belong to this dataset"
    expected = len(images) if expected is None else expected
    # a folder dataset's reader resizes as it decodes; other readers return the native shape
    want_shape = (expected, *(spec.image_shape if spec.is_folder_dataset else spec.native_shape))
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


def _to_dataset(
    spec: DatasetSpec, arrays: Arrays, where: str, origin: DataOrigin | None = None, check_manifest: bool = False
) -> Dataset:
    """Check the arrays (at the native shape) against the spec (and its manifest, if asked and it has one), then
    resize them to spec.image_shape if it differs."""
    train_x, train_y, test_x, test_y = arrays
    train_x, train_y = _check_split(spec, "train", train_x, train_y, spec.train_size, where)
    test_x, test_y = _check_split(spec, "test", test_x, test_y, spec.test_size, where)
    if check_manifest and spec.manifest is not None:
        verify_manifest(spec.manifest, train_x, train_y, test_x, test_y, where=f"dataset {spec.name!r} in {where}")
    if spec.is_resized:
        h, w, _ = spec.image_shape
        train_x, test_x = resize_images(train_x, h, w), resize_images(test_x, h, w)
    return Dataset(
        spec=spec, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y, origin=origin
    )


def load_dataset(
    name: str | DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    *,
    source: str = "files",
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    resolution: int | None = None,
    min_agreement: int | None = None,
) -> Dataset:
    """Load a dataset by registered name (case-insensitive) or from a DatasetSpec.

    source='files' reads the verified files (see `resolve_dataset_dir`); source='tfds' goes through TensorFlow
    Datasets, with data_dir as TFDS's data directory. Shapes, counts and label range are checked against the spec,
    and the decoded arrays against its manifest if it has one (files only); anything off raises DataError.

    resolution: the image side in pixels, one of `spec.allowed_resolutions` (ConfigError otherwise). None keeps the spec's
    own image_shape (the native one for a registered name); the native side returns the arrays as read, bit for bit.
    Any other side resizes both splits on the host (antialiased linear resampling, uint8 in and uint8 out; see
    `jaxdistill.data.resize`), and the returned Dataset's spec is `spec.at_resolution(resolution)`.

    The Dataset's origin says where it was loaded from (an explicit data_dir, $JAXDISTILL_DATA, the cache or TFDS).

    A folder dataset (MHIST) is read and validated by its format's reader, which caches the decoded arrays per
    resolution under the cache folder (cache_dir, else $JAXDISTILL_CACHE, else ~/.cache/jaxdistill) keyed by the
    source's checksum; min_agreement (MHIST only) keeps the training images on which at least that many of the 7
    annotators agree.
    """
    spec = get_spec(name)
    if resolution is not None:
        spec = spec.at_resolution(resolution)
    if min_agreement is not None and spec.format != "mhist":
        raise ConfigError(f"dataset {spec.name!r} has no annotator votes; min_agreement is for MHIST")
    if source == "files" and spec.is_folder_dataset:
        return _load_folder_dataset(spec, data_dir, cache_dir, progress, min_agreement)
    if source == "files":
        reader = _READERS.get(spec.format)
        if reader is None:
            raise ConfigError(
                f"dataset {spec.name!r} has format {spec.format!r}, which this version of jaxdistill cannot read "
                f"(readable formats: {', '.join(sorted(_READERS))})"
            )
        origin = resolve_dataset_origin(spec, data_dir, cache_dir, download, progress)
        folder = Path(origin.folder)
        arrays = reader(spec.at_resolution(None), folder)  # readers read the native shape
        return _to_dataset(spec, arrays, str(folder), origin, check_manifest=True)
    if source == "tfds":
        from jaxdistill.data.tfds_backend import load_tfds

        origin = DataOrigin("tfds", None if data_dir is None else Path(data_dir).expanduser().absolute())
        return _to_dataset(spec, load_tfds(spec, data_dir, download=download), "TensorFlow Datasets", origin)
    raise ConfigError(f"unknown dataset source {source!r}; use 'files' or 'tfds'")


def _load_folder_dataset(spec: DatasetSpec, data_dir, cache_dir, progress: bool, min_agreement) -> Dataset:
    if spec.format != "mhist":
        raise ConfigError(f"dataset {spec.name!r}: no reader for folder format {spec.format!r}")
    from jaxdistill.data.mhist import read_mhist

    folder, kind = _resolve_folder(spec, data_dir, cache_dir)
    side = spec.image_shape[0]
    data = read_mhist(folder, side, cache_dir=default_cache_dir(cache_dir), progress=progress,
                      min_agreement=min_agreement)
    where = str(folder)
    train_x, train_y = _check_split(spec, "train", data.train_images, data.train_labels, None, where)
    test_x, test_y = _check_split(spec, "test", data.test_images, data.test_labels, None, where)
    return Dataset(spec=spec, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y,
                   origin=DataOrigin(kind, folder.absolute()), source_sha256=data.source_sha256,
                   stand_in=data.stand_in, annotations={"train_votes": data.train_votes, "test_votes": data.test_votes})


# ------------------------------------------------------------------------------------------------- status


def _folder_status(spec: DatasetSpec, folder: Path) -> tuple[str, str]:
    present = _present(spec, folder) if folder.is_dir() else []
    missing = [f.filename for f in spec.files if f not in present]
    corrupt = []
    for f in present:
        path = locate_file(folder, f)
        try:
            verify_file(path, f)
        except DataError:
            corrupt.append(path.name)
    if corrupt:
        return "corrupt", (
            f"{folder}: sha256 mismatch in {', '.join(corrupt)}; replace them with good copies (in the cache: delete "
            f"them so they are downloaded again)"
        )
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
    'incomplete' or 'missing'. A folder dataset (MHIST) is 'present' when its index file is valid and every image it
    lists is there (the images themselves are checked as they are decoded, on load), 'corrupt' when not (the
    second item is the problem), 'missing' when no folder has its index file. Never downloads.
    """
    spec = get_spec(name)
    if spec.is_folder_dataset:
        return _index_status(spec, data_dir, cache_dir)[:2]
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


def _index_status(spec: DatasetSpec, data_dir, cache_dir) -> tuple[str, str, tuple | None]:
    """(status, text, (train_counts, test_counts) or None) of a folder dataset, from its index file."""
    from jaxdistill.data.mhist import ANNOTATIONS, find_images, read_annotations, split_counts

    try:
        folder, _ = _resolve_folder(spec, data_dir, cache_dir)
    except DataError:
        looked = ", ".join(str(f) for f, _ in _folder_candidates(spec, data_dir, cache_dir))
        return "missing", (f"no {spec.index_file} in {looked}; never downloaded (get it from {spec.homepage}, "
                           f"then pass --data-dir)"), None
    try:
        rows = read_annotations(folder / ANNOTATIONS)
        find_images(folder, rows).close()
    except DataError as e:
        return "corrupt", str(e), None
    counts = split_counts(rows)
    return "present", str(folder), (counts["train"], counts["test"])


def dataset_class_counts(
    name: str | DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None, str]:
    """(train counts, test counts, where they come from) per class: a folder dataset's own index file when one is
    found and valid ('annotations.csv'), else the spec's official counts ('official'; None when unknown)."""
    spec = get_spec(name)
    if spec.is_folder_dataset:
        status, _, counts = _index_status(spec, data_dir, cache_dir)
        if counts is not None:
            return counts[0], counts[1], spec.index_file
    return spec.train_counts, spec.test_counts, "official"
