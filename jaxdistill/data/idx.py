"""Strict reader and writer of IDX files, the format of the MNIST distribution.

An IDX file is: two zero bytes, one dtype code byte, one byte holding the number of
dimensions ``ndim``, ``ndim`` big-endian uint32 sizes, then the elements in C order,
big-endian. The whole file may be gzip-compressed (recognised by its magic bytes
``1f 8b``, not by its name).

Dtype codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

Every problem with a file is reported as a `DataError` naming the file, what was
expected, what was found, and what to do about it.
"""

from __future__ import annotations

import gzip
import math
import os
import secrets
import struct
import zlib
from collections.abc import Sequence

import numpy as np

from jaxdistill.errors import DataError

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

#: IDX dtype code -> big-endian numpy dtype of the elements on disk.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CODE_OF_KIND_SIZE: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()
}

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIM = 2**32 - 1
_MAX_NDIM = 255

_HINT_CORRUPT = "the file is truncated or corrupt: delete it so it is downloaded again"
_HINT_WRONG_FILE = (
    "the file holds different data than expected or is corrupt: check that the path "
    "names the right file, or delete it so it is downloaded again"
)


def _fail(path: str, what: str, hint: str) -> DataError:
    return DataError(f"IDX file {path}: {what}; {hint}.")


def _native(dt: np.dtype) -> np.dtype:
    return dt.newbyteorder("=")


def _dtype_name(dt: np.dtype) -> str:
    return _native(dt).name


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data) if data else "nothing"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(
            f"IDX file {path}: expected a file at this path but found none; check the "
            f"data directory, or download the dataset again."
        ) from None
    except IsADirectoryError:
        raise DataError(
            f"IDX file {path}: expected a file but found a directory; point to the file "
            f"inside it, or remove the directory so the dataset is downloaded again."
        ) from None
    except PermissionError:
        raise DataError(
            f"IDX file {path}: expected a readable file but permission was denied; fix "
            f"the file's permissions or use a data directory you can read."
        ) from None
    except OSError as exc:
        raise DataError(
            f"IDX file {path}: expected a readable file but reading failed "
            f"({exc.strerror or exc}); check the disk and the path, or delete the file "
            f"so it is downloaded again."
        ) from exc


def _gunzip(path: str, raw: bytes) -> bytes:
    """Decompress all gzip members of ``raw``; reject truncation, bad CRCs and trailing junk."""
    parts = []
    rest = raw
    member = 0
    try:
        while True:
            member += 1
            dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            parts.append(dec.decompress(rest))
            if not dec.eof:
                raise _fail(
                    path,
                    f"expected a complete gzip stream but gzip member {member} ends before "
                    f"its end marker and checksum ({len(raw)} compressed bytes in all)",
                    _HINT_CORRUPT,
                )
            rest = dec.unused_data
            if not rest:
                break
            if rest[:2] != _GZIP_MAGIC:
                raise _fail(
                    path,
                    f"expected the file to end after gzip member {member} but found "
                    f"{len(rest)} trailing bytes that are not gzip data (starting "
                    f"{_hex(rest[:4])})",
                    _HINT_CORRUPT,
                )
    except zlib.error as exc:
        raise _fail(
            path,
            f"expected valid gzip data but decompressing gzip member {member} failed ({exc})",
            _HINT_CORRUPT,
        ) from exc
    except MemoryError:
        raise _fail(
            path,
            "expected gzip data that fits in memory but decompressing it ran out of memory",
            _HINT_CORRUPT,
        ) from None
    return b"".join(parts) if len(parts) > 1 else parts[0]


def _check_args(
    expected_ndim: int | None,
    expected_shape: Sequence[int | None] | None,
    max_label: int | None,
) -> tuple[int | None, tuple[int | None, ...] | None]:
    if expected_ndim is not None:
        if isinstance(expected_ndim, bool) or not isinstance(expected_ndim, (int, np.integer)):
            raise TypeError(f"expected_ndim must be an int or None, got {expected_ndim!r}")
        if not 1 <= expected_ndim <= _MAX_NDIM:
            raise ValueError(f"expected_ndim must be in [1, {_MAX_NDIM}], got {expected_ndim}")
        expected_ndim = int(expected_ndim)
    shape = None
    if expected_shape is not None:
        shape = tuple(expected_shape)
        for s in shape:
            if s is not None and (
                isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
            ):
                raise ValueError(
                    f"expected_shape entries must be non-negative ints or None, got {expected_shape!r}"
                )
        shape = tuple(None if s is None else int(s) for s in shape)
        if not 1 <= len(shape) <= _MAX_NDIM:
            raise ValueError(f"expected_shape must have 1 to {_MAX_NDIM} entries, got {expected_shape!r}")
        if expected_ndim is not None and expected_ndim != len(shape):
            raise ValueError(
                f"expected_ndim={expected_ndim} contradicts expected_shape={expected_shape!r}"
            )
        expected_ndim = len(shape)
    if max_label is not None:
        if isinstance(max_label, bool) or not isinstance(max_label, (int, np.integer)):
            raise TypeError(f"max_label must be an int or None, got {max_label!r}")
        if max_label < 0:
            raise ValueError(f"max_label must be >= 0, got {max_label}")
    return expected_ndim, shape


def _shape_str(shape: Sequence[int | None]) -> str:
    inner = ", ".join("any" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def read_idx(
    path: str | os.PathLike,
    *,
    expected_ndim: int | None = None,
    expected_shape: Sequence[int | None] | None = None,
    max_label: int | None = None,
) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Args:
      path: the file. Gzip is detected from the content (bytes ``1f 8b``), not the name.
      expected_ndim: if given, the number of dimensions the header must declare.
      expected_shape: if given, the shape the header must declare; ``None`` entries
        match any size. Implies ``expected_ndim = len(expected_shape)``.
      max_label: if given, every element must be an integer in ``[0, max_label]``
        (for label files, e.g. 9 for MNIST); float files are rejected.

    Returns:
      A writable array with the header's shape and the file's element type in native
      byte order (uint8, int8, int16, int32, float32 or float64). Dimensions of size
      zero are allowed and give an empty array.

    Raises:
      DataError: the file is missing, unreadable, not IDX, truncated, has trailing
        bytes, has a corrupt gzip stream, or fails one of the expectations.
      ValueError, TypeError: the expectations themselves are malformed.
    """
    expected_ndim, exp_shape = _check_args(expected_ndim, expected_shape, max_label)
    path = os.fspath(path)
    raw = _read_bytes(path)

    compressed = raw[:2] == _GZIP_MAGIC
    data = _gunzip(path, raw) if compressed else raw
    where = " after gzip decompression" if compressed else ""

    if len(data) < 4:
        raise _fail(
            path,
            f"expected a 4-byte IDX header but found only {_plural(len(data), 'byte')}{where}",
            _HINT_CORRUPT,
        )
    if data[0] != 0 or data[1] != 0:
        hint = _HINT_CORRUPT
        if not compressed and data[:1] in (b"<", b"{"):
            hint = (
                "the file looks like text (perhaps an HTML error page saved by a failed "
                "download): delete it so it is downloaded again"
            )
        raise _fail(
            path,
            f"expected the IDX magic (two zero bytes) or the gzip magic (1f 8b) but found "
            f"{_hex(data[:2])}{where}",
            hint,
        )
    code, ndim = data[2], data[3]
    disk_dtype = IDX_DTYPES.get(code)
    if disk_dtype is None:
        known = ", ".join(f"0x{c:02X} ({_dtype_name(d)})" for c, d in IDX_DTYPES.items())
        raise _fail(
            path,
            f"expected a dtype code among {known} but found 0x{code:02X}",
            _HINT_CORRUPT,
        )
    if ndim == 0:
        raise _fail(path, "expected at least 1 dimension but the header declares 0", _HINT_CORRUPT)
    if expected_ndim is not None and ndim != expected_ndim:
        raise _fail(
            path,
            f"expected {_plural(expected_ndim, 'dimension')} but the header declares {ndim}",
            _HINT_WRONG_FILE,
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _fail(
            path,
            f"expected a {header_len}-byte header for {_plural(ndim, 'dimension')} but found "
            f"only {_plural(len(data), 'byte')}{where}",
            _HINT_CORRUPT,
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    if exp_shape is not None and any(e is not None and e != s for e, s in zip(exp_shape, shape)):
        raise _fail(
            path,
            f"expected shape {_shape_str(exp_shape)} but the header declares {_shape_str(shape)}",
            _HINT_WRONG_FILE,
        )

    count = math.prod(shape)
    want = count * disk_dtype.itemsize
    have = len(data) - header_len
    if have != want:
        problem = "the data is truncated" if have < want else "there are trailing bytes"
        raise _fail(
            path,
            f"expected {want} data bytes{where} for shape {_shape_str(shape)} of "
            f"{_dtype_name(disk_dtype)} but found {have} ({problem})",
            _HINT_CORRUPT,
        )

    try:
        flat = np.frombuffer(data, dtype=disk_dtype, count=count, offset=header_len)
        array = flat.astype(_native(disk_dtype), copy=True).reshape(shape)
    except MemoryError:
        raise _fail(
            path,
            f"expected an array of shape {_shape_str(shape)} that fits in memory but "
            f"allocating it failed",
            "free memory or check that the file is the intended one",
        ) from None
    except ValueError:  # an empty array whose other dimensions multiply past NumPy's index range
        raise _fail(
            path,
            f"the header's shape {_shape_str(shape)} is larger than NumPy can index",
            _HINT_CORRUPT,
        ) from None

    if max_label is not None:
        _check_labels(path, array, int(max_label))
    return array


def _check_labels(path: str, array: np.ndarray, max_label: int) -> None:
    if array.dtype.kind == "f":
        raise _fail(
            path,
            f"expected integer labels in [0, {max_label}] but found {array.dtype.name} data",
            _HINT_WRONG_FILE,
        )
    if array.size == 0:
        return
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi <= max_label:
        return
    bad = np.flatnonzero((array < 0) | (array > max_label))
    first = int(bad[0])
    index = np.unravel_index(first, array.shape)
    index_str = str(index[0]) if len(index) == 1 else str(tuple(int(i) for i in index))
    raise _fail(
        path,
        f"expected every label in [0, {max_label}] but found {len(bad)} outside it "
        f"(first: {int(array.flat[first])} at index {index_str}; range found [{lo}, {hi}])",
        _HINT_WRONG_FILE,
    )


def write_idx(path: str | os.PathLike, array, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically (temp file in the same directory + os.replace).

    Args:
      path: the destination; its parent directories are created if missing.
      array: 1 to 255 dimensions, each of size < 2**32, with dtype uint8, int8, int16,
        int32, float32 or float64 (any byte order; stored big-endian).
      compress: gzip the file (deterministically: no name, mtime 0); by default, iff
        ``path`` ends with ``.gz``.

    Raises:
      DataError: the array cannot be stored as IDX, or the file cannot be written.
    """
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    array = np.asarray(array)
    dt = array.dtype
    code = _CODE_OF_KIND_SIZE.get((dt.kind, dt.itemsize)) if dt.kind in "uif" else None
    if code is None:
        known = ", ".join(_dtype_name(d) for d in IDX_DTYPES.values())
        raise DataError(
            f"IDX file {path}: expected an array of dtype {known} but found {dt}; cast it "
            f"first (e.g. int64 labels to int32 or uint8)."
        )
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise DataError(
            f"IDX file {path}: expected an array with 1 to {_MAX_NDIM} dimensions but found "
            f"{array.ndim}; reshape it first (e.g. a scalar to shape (1,))."
        )
    if any(s > _MAX_DIM for s in array.shape):
        raise DataError(
            f"IDX file {path}: expected every dimension below 2**32 but found shape "
            f"{array.shape}; split the array into several files."
        )
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    payload = header + body
    if compress:
        payload = gzip.compress(payload, compresslevel=6, mtime=0)

    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise DataError(
            f"IDX file {path}: expected to write {len(payload)} bytes but writing failed "
            f"({exc.strerror or exc}); check that the directory is writable and the disk "
            f"has space."
        ) from exc
