"""Reader of MHIST (Wei et al., 2021, "A Petri Dish for Histopathology Image Analysis").

MHIST is 3,152 hematoxylin-and-eosin patches of colorectal polyps, 224x224 RGB PNG, labelled hyperplastic polyp (HP,
benign, label 0) or sessile serrated adenoma (SSA, precancerous, label 1) by the majority of 7 pathologists. It is
released under a research-use agreement (https://bmirds.github.io/MHIST/), so jaxdistill never downloads it: the
user points it at a folder holding

  * ``annotations.csv``, whose header is exactly ``Image Name,Majority Vote Label,Number of Annotators who Selected
    SSA (Out of 7),Partition`` and whose rows read like ``MHIST_aaa.png,SSA,6,train``;
  * the images: an ``images/`` folder, the PNGs next to the CSV, or ``images.zip`` as downloaded (read in place,
    never extracted).

Everything is validated, and the first problem found is reported in one line naming the row or the file: the header,
an unknown label or partition, a vote count outside 0-7 or inconsistent with the majority label (SSA needs at least
4 of 7 votes, HP at most 3), a duplicated or missing image, an image that does not decode or is not 224x224 RGB. A
split whose class counts differ from the official ones (train HP 1,545 / SSA 630, test HP 617 / SSA 360) loads with a
`DataWarning` naming the difference, so that a curated subset still loads.

No checksum of the real MHIST exists to ship, so integrity is that validation, and every load computes `source_sha256`
over the CSV and every image file's bytes (about 0.2 s per 400 MB); runs record it. The decoded arrays are cached,
per resolution, under ``<cache>/mhist/decoded/`` keyed by that checksum: a second load reads the cache in seconds, and
a changed source (a file edited, added or removed) has another checksum, so it is decoded afresh. Images are resized
with the library's antialiased linear filter (`jaxdistill.data.resize`).

The annotator agreement is kept (`MhistData.train_votes` / `test_votes`): the MHIST paper trains on agreement subsets,
and `min_agreement` keeps only training images on which at least that many of the 7 annotators agree (4 = all).

A folder written by the stand-in generator (`jaxdistill.data.mhist_standin`) carries `STANDIN_MARKER`; such data loads
the same way and is flagged `stand_in`, which every record made on it repeats.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdistill.data.resize import resize_images
from jaxdistill.errors import ConfigError, DataError, DataWarning

__all__ = [
    "ANNOTATIONS",
    "ARCHIVE",
    "CLASS_NAMES",
    "DataWarning",
    "HEADER",
    "IMAGE_SHAPE",
    "MhistData",
    "MhistRow",
    "OBTAIN",
    "OFFICIAL_COUNTS",
    "STANDIN_MARKER",
    "VOTERS",
    "agreement",
    "find_images",
    "read_annotations",
    "read_mhist",
    "source_sha256",
    "split_counts",
]

ANNOTATIONS = "annotations.csv"
ARCHIVE = "images.zip"
IMAGES_DIR = "images"
#: Written by the stand-in generator next to annotations.csv; the real MHIST has no such file.
STANDIN_MARKER = "mhist_standin.json"
HEADER = ("Image Name", "Majority Vote Label", "Number of Annotators who Selected SSA (Out of 7)", "Partition")
CLASS_NAMES = ("HP", "SSA")
PARTITIONS = ("train", "test")
VOTERS = 7
IMAGE_SHAPE = (224, 224, 3)
#: (HP, SSA) images per split in the official release.
OFFICIAL_COUNTS = {"train": (1545, 630), "test": (617, 360)}
#: Cached decodes are stored under <cache>/mhist/<this>/.
CACHE_SUBDIR = "decoded"
_CACHE_FORMAT = 1  # bump when the cached arrays' meaning changes
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
#: How to get MHIST; the registered spec's `obtain` and this module's errors say it.
OBTAIN = ("MHIST is released under a research-use agreement, so it is never downloaded: request it at "
          "https://bmirds.github.io/MHIST/ and pass --data-dir naming the folder that holds annotations.csv and "
          "images/ (or images.zip, read without extracting)")


@dataclass(frozen=True)
class MhistRow:
    """One row of annotations.csv: image file name, label index (0 HP, 1 SSA), SSA votes (0-7), partition."""

    name: str
    label: int
    votes: int
    partition: str
    line: int  # 1-based line number in the CSV, for messages


def agreement(votes: np.ndarray) -> np.ndarray:
    """How many of the 7 annotators agree with the majority label (4-7), from the SSA vote counts."""
    votes = np.asarray(votes)
    return np.maximum(votes, VOTERS - votes)


def read_annotations(path: str | os.PathLike) -> list[MhistRow]:
    """Parse and validate annotations.csv; DataError naming the line for the first problem found."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {OBTAIN}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e}); replace it with the annotations.csv of MHIST") from None
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        raise DataError(f"{path} is empty; replace it with the annotations.csv of MHIST")
    header = tuple(h.strip() for h in lines[0])
    if header != HEADER:
        raise DataError(f"{path}: line 1: the header is {','.join(lines[0])!r}, expected {','.join(HEADER)!r}")
    rows: list[MhistRow] = []
    seen: dict[str, int] = {}
    for number, fields in enumerate(lines[1:], start=2):
        if not fields or all(not f.strip() for f in fields):
            continue  # a blank line (e.g. a trailing newline in an edited copy)
        where = f"{path}: line {number}"
        if len(fields) != len(HEADER):
            raise DataError(f"{where}: {len(fields)} fields, expected {len(HEADER)} ({','.join(HEADER)})")
        name, label, votes, partition = (f.strip() for f in fields)
        if not _NAME_RE.match(name):
            raise DataError(f"{where}: image name {name!r} is not a plain .png file name")
        if name in seen:
            raise DataError(f"{where}: image {name} is listed twice (also on line {seen[name]})")
        seen[name] = number
        if label not in CLASS_NAMES:
            raise DataError(f"{where}: label {label!r} is not one of {', '.join(CLASS_NAMES)}")
        if partition not in PARTITIONS:
            raise DataError(f"{where}: partition {partition!r} is not one of {', '.join(PARTITIONS)}")
        try:
            count = int(votes)
        except ValueError:
            count = -1
        if not 0 <= count <= VOTERS or votes != str(count):
            raise DataError(f"{where}: the SSA vote count {votes!r} is not an integer from 0 to {VOTERS}")
        index = CLASS_NAMES.index(label)
        if (count >= 4) != (index == 1):
            need = "at least 4" if index == 1 else "at most 3"
            raise DataError(
                f"{where}: {name} is labelled {label} by majority vote with {count} of {VOTERS} SSA votes; "
                f"{label} needs {need}"
            )
        rows.append(MhistRow(name, index, count, partition, number))
    if not rows:
        raise DataError(f"{path} lists no images; replace it with the annotations.csv of MHIST")
    return rows


class _Images:
    """Where a folder's PNGs are: `images/`, next to the CSV, or `images.zip`; reads their bytes by file name."""

    def __init__(self, folder: Path, names: list[str]):
        self.folder = folder
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        self.where = ""
        subdir = folder / IMAGES_DIR
        for candidate, label in ((subdir, f"{subdir}"), (folder, f"{folder}")):
            if candidate.is_dir() and (candidate / names[0]).is_file():
                self._dir, self.where = candidate, label
                return
        archive = folder / ARCHIVE
        if archive.is_file():
            try:
                self._zip = zipfile.ZipFile(archive)
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{archive} is not a readable zip archive ({e}); download images.zip again") from None
            for info in self._zip.infolist():
                if not info.is_dir():
                    base = info.filename.rsplit("/", 1)[-1]
                    if base in self._members:
                        raise DataError(f"{archive}: {base} appears twice ({self._members[base]}, {info.filename})")
                    self._members[base] = info.filename
            self.where = str(archive)
            return
        raise DataError(
            f"{folder}: no images found for annotations.csv (its first image {names[0]} is neither in "
            f"{subdir}/ nor in {folder}/, and there is no {ARCHIVE}); put the MHIST images there"
        )

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def check_present(self, rows: list[MhistRow]) -> None:
        for row in rows:
            if self._zip is not None:
                found = row.name in self._members
            else:
                found = (self._dir / row.name).is_file()
            if not found:
                raise DataError(
                    f"{self.where}: image {row.name} (annotations.csv line {row.line}) is missing; "
                    f"restore it, or remove its row to load a subset"
                )

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(self._members[name])
            return (self._dir / name).read_bytes()
        except (OSError, zipfile.BadZipFile, KeyError) as e:
            raise DataError(f"{self.where}: image {name} cannot be read ({e}); restore it from MHIST") from None


def find_images(folder: str | os.PathLike, rows: list[MhistRow]) -> _Images:
    """The images of `rows` in `folder` (see module docstring); DataError if none or one is missing."""
    images = _Images(Path(folder), [r.name for r in rows])
    try:
        images.check_present(rows)
    except DataError:
        images.close()
        raise
    return images


def source_sha256(folder: str | os.PathLike, rows: list[MhistRow] | None = None, images: _Images | None = None
                  ) -> str:
    """sha256 of what a load reads: annotations.csv's bytes, then either images.zip's bytes or, for a folder of
    PNGs, each listed image's name and bytes in CSV order. Any edit to the CSV or an image changes it."""
    folder = Path(folder)
    own = images is None
    rows = read_annotations(folder / ANNOTATIONS) if rows is None else rows
    images = find_images(folder, rows) if images is None else images
    try:
        h = hashlib.sha256(b"mhist-source-v1\0")
        h.update((folder / ANNOTATIONS).read_bytes())
        if images._zip is not None:
            with open(images.where, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        else:
            for row in rows:
                data = images.read(row.name)
                h.update(f"\0{row.name}\0{len(data)}\0".encode())
                h.update(data)
        return h.hexdigest()
    finally:
        if own:
            images.close()


def _decode(data: bytes, name: str, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, size = image.mode, image.size
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{where}: image {name} does not decode as an image ({e}); restore it from MHIST") from None
    if mode != "RGB" or size != IMAGE_SHAPE[:2] or array.shape != IMAGE_SHAPE or array.dtype != np.uint8:
        raise DataError(
            f"{where}: image {name} is {size[0]}x{size[1]} {mode}, expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} "
            f"8-bit RGB; restore it from MHIST"
        )
    return array


@dataclass
class MhistData:
    """A loaded MHIST folder: images uint8 (N, side, side, 3), labels int32 (0 HP, 1 SSA), SSA votes int32 (0-7)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    train_votes: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_votes: np.ndarray
    source_sha256: str
    stand_in: bool
    cached: bool  # whether the arrays came from the decode cache



def split_counts(rows: list[MhistRow]) -> dict[str, tuple[int, int]]:
    """{partition: (HP, SSA) images} of annotation rows."""
    return {split: tuple(sum(1 for r in rows if r.partition == split and r.label == c) for c in range(len(CLASS_NAMES)))
            for split in PARTITIONS}


def _count_warning(rows: list[MhistRow], where: str) -> None:
    """One DataWarning naming every split count that differs from the official ones; DataError for an empty split."""
    counts = split_counts(rows)
    for split in PARTITIONS:
        if not sum(counts[split]):
            raise DataError(f"{where}: annotations.csv lists no {split} images; MHIST needs both partitions")
    differences = [f"{split} {name} {f} (official {o})" for split, official in OFFICIAL_COUNTS.items()
                   for name, f, o in zip(CLASS_NAMES, counts[split], official) if f != o]
    if differences:
        warnings.warn(f"{where}: not the official MHIST split: {', '.join(differences)}; loading it as given",
                      DataWarning, stacklevel=3)


def _cache_path(cache_root: Path, digest: str, side: int) -> Path:
    return cache_root / "mhist" / CACHE_SUBDIR / f"{digest[:32]}_{side}px_v{_CACHE_FORMAT}.npz"


_ARRAYS = ("train_images", "train_labels", "train_votes", "test_images", "test_labels", "test_votes")


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in _ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # absent, or half-written by a crashed process: decode again


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache costs speed, not correctness
        warnings.warn(f"could not cache the decoded MHIST arrays in {path.parent} ({e}); the next load decodes "
                      f"again", DataWarning, stacklevel=3)


def read_mhist(folder: str | os.PathLike, side: int = 224, *, cache_dir: str | os.PathLike | None = None,
               progress: bool = False, min_agreement: int | None = None) -> MhistData:
    """Validate and load an MHIST folder at `side` x `side` pixels (see module docstring).

    cache_dir: the cache root (the decode cache lives under <cache_dir>/mhist/decoded/); None: no caching.
    min_agreement: keep only training images on which at least this many annotators (4-7) agree; the test split is
    always whole.
    """
    folder = Path(folder)
    if min_agreement is not None and not (isinstance(min_agreement, (int, np.integer)) and 4 <= min_agreement <= 7):
        raise ConfigError(f"min_agreement must be an integer from 4 to {VOTERS} (annotators agreeing with the "
                          f"majority), got {min_agreement!r}")
    rows = read_annotations(folder / ANNOTATIONS)
    _count_warning(rows, str(folder / ANNOTATIONS))
    images = find_images(folder, rows)
    try:
        digest = source_sha256(folder, rows, images)
        path = _cache_path(Path(cache_dir), digest, side) if cache_dir is not None else None
        arrays = _read_cache(path) if path is not None and path.exists() else None
        cached = arrays is not None
        if arrays is None:
            arrays = _decode_all(rows, images, side, progress)
            if path is not None:
                _write_cache(path, arrays)
    finally:
        images.close()
    if min_agreement is not None:
        keep = agreement(arrays["train_votes"]) >= min_agreement
        if not keep.any():
            raise ConfigError(f"no training image has annotator agreement >= {min_agreement}")
        for k in ("train_images", "train_labels", "train_votes"):
            arrays[k] = arrays[k][keep]
    return MhistData(**arrays, source_sha256=digest, stand_in=(folder / STANDIN_MARKER).is_file(), cached=cached)


# Images decoded per block before resizing: bounds the full-size temporaries (256 x 224 x 224 x 3 B = 38 MB).
_BLOCK = 256


def _decode_all(rows: list[MhistRow], images: _Images, side: int, progress: bool) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    out: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(rows), desc="decoding MHIST", unit="img", disable=not progress, leave=False)
    try:
        for split in PARTITIONS:
            part = [r for r in rows if r.partition == split]
            decoded = np.empty((len(part), side, side, 3), np.uint8)
            for start in range(0, len(part), _BLOCK):
                block = np.stack([_decode(images.read(r.name), r.name, images.where)
                                  for r in part[start:start + _BLOCK]])
                decoded[start:start + len(block)] = resize_images(block, side, side)
                bar.update(len(block))
            out[f"{split}_images"] = decoded
            out[f"{split}_labels"] = np.asarray([r.label for r in part], np.int32)
            out[f"{split}_votes"] = np.asarray([r.votes for r in part], np.int32)
    finally:
        bar.close()
    return out
