"""Downloading and checking dataset files.

A file is accepted when its bytes have the sha256 it was published with (the fast path), or, for a gzip file whose
spec gives `FileSpec.decompressed_sha256`, when its content has that digest: the content is the gunzipped bytes of a
gzip file (so a faithful re-compression, e.g. by `gzip -n`, is accepted) or the bytes themselves of an uncompressed
copy, which may sit under the name without '.gz' (`FileSpec.uncompressed_name`). `locate_file` finds which form a
folder holds; `verify_file` checks it.

`download_file` streams each mirror into a uniquely named temporary file next to the destination, hashing as it
goes; only a complete file that passes the same check is moved into place (atomically, with os.replace). Whatever
goes wrong, the temporary file is removed, so nothing half-written is ever left behind.
"""

from __future__ import annotations

import hashlib
import http.client
import zlib
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from jaxdistill.data.registry import FileSpec
from jaxdistill.errors import DataError

__all__ = ["sha256_file", "content_sha256", "locate_file", "verify_file", "download_file", "download_url",
           "MANUAL_FIX"]

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_USER_AGENT = "jaxdistill/0.1 (+dataset download; urllib)"

#: How to point jaxdistill at files fetched by hand; appended to error messages.
MANUAL_FIX = (
    "pass --data-dir (data_dir=...) naming a folder that holds the files, "
    "or set JAXDISTILL_DATA to a folder with a <dataset name>/ subfolder holding them"
)


def sha256_file(path: str | os.PathLike) -> str:
    """Lowercase hex sha256 of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _NotGzip(Exception):
    """The bytes are not a complete, valid gzip stream; the message says how."""


def content_sha256(path: str | os.PathLike) -> str:
    """Lowercase hex sha256 of the file's content: of its decompressed bytes if it is gzip (by its first two bytes,
    all members, CRC-checked), else of its bytes. Raises DataError for a gzip file that does not decompress."""
    try:
        return _content_sha256(path)
    except _NotGzip as e:
        raise DataError(f"{path}: {e}; delete it, or replace it with a good copy") from None


def _content_sha256(path: str | os.PathLike) -> str:
    """`content_sha256`, raising _NotGzip for a gzip file that does not decompress."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(2)
        if head != _GZIP_MAGIC:
            h.update(head)
            while chunk := f.read(_CHUNK):
                h.update(chunk)
            return h.hexdigest()
        f.seek(0)
        dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        fed = False  # whether the current member's decompressor has seen any bytes
        try:
            while chunk := f.read(_CHUNK):
                while chunk:
                    fed = True
                    h.update(dec.decompress(chunk))
                    chunk = b""
                    if dec.eof:  # a member ended; what follows starts the next member
                        chunk = dec.unused_data
                        dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                        fed = False
        except zlib.error as e:
            raise _NotGzip(f"its gzip data does not decompress ({e})") from None
        if fed:
            raise _NotGzip("its gzip data ends early (truncated)")
    return h.hexdigest()


def locate_file(folder: str | os.PathLike, file: FileSpec) -> Path | None:
    """The path of the first of `file.accepted_names` present in `folder` (the published name first), or None."""
    folder = Path(folder)
    for name in file.accepted_names:
        if (folder / name).is_file():
            return folder / name
    return None


def _describe_file(path: Path, file: FileSpec) -> str:
    if path.name == file.filename:
        return file.filename
    return f"{path.name} (the uncompressed form of {file.filename})"


def _accepted_forms(file: FileSpec) -> str:
    if file.decompressed_sha256 is None:
        return f"expected {file.sha256}"
    return (
        f"expected {file.sha256} (the archive as published), or {file.decompressed_sha256} for its "
        f"decompressed content (a re-compressed {file.filename}, or {file.uncompressed_name} uncompressed)"
    )


def _content_mismatch(path: Path, file: FileSpec) -> str | None:
    """None if the file at `path` is an accepted form of `file`, else what its digests were (for a message)."""
    actual = sha256_file(path)
    if actual == file.sha256:
        return None
    if file.decompressed_sha256 is None:
        return f"got {actual}"
    try:
        content = _content_sha256(path)
    except _NotGzip as e:
        return f"got {actual}, and {e}"
    if content == file.decompressed_sha256:
        return None
    return f"got {actual}" + ("" if content == actual else f" (decompressed: {content})")


def verify_file(path: str | os.PathLike, file: FileSpec) -> None:
    """Raise DataError unless `path` exists and is an accepted form of `file` (see the module docstring).

    `path` may name the published file or, when the spec allows one, its uncompressed form.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{file.filename}: {path} does not exist or is not a file; "
            f"download it from {_first_url(file)} into {path.parent}, or {MANUAL_FIX}"
        )
    try:
        mismatch = _content_mismatch(path, file)
        nbytes = path.stat().st_size
    except OSError as e:
        raise DataError(f"{file.filename}: cannot read {path}: {e}; check its permissions, or delete it") from e
    if mismatch is not None:
        size_note = ""
        if file.size is not None and nbytes != file.size and path.name == file.filename:
            size_note = f" (it has {nbytes} bytes, expected {file.size})"
        raise DataError(
            f"{_describe_file(path, file)} at {path} is corrupt: sha256 {_accepted_forms(file)}, {mismatch}{size_note}; "
            f"delete it so it is downloaded again, or replace it with a good copy from {_first_url(file)}"
        )


def _first_url(file: FileSpec) -> str:
    return file.urls[0] if file.urls else "the dataset's homepage"


class _AttemptFailed(Exception):
    """One mirror failed; the message says how."""


def _stream(url: str, name: str, size: int | None, out, progress: bool, timeout: float) -> tuple[int, str]:
    """Fetch `url` (the file `name`, `size` bytes if known, for the progress bar) into the open binary file `out`,
    checking its length against Content-Length; raise _AttemptFailed.

    Returns (bytes received, their sha256)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise _AttemptFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _AttemptFailed(_describe_os_error(e.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as e:
        raise _AttemptFailed(_describe_os_error(e, timeout)) from None
    except ValueError as e:
        raise _AttemptFailed(f"bad URL: {e}") from None

    with response:
        expected_len: int | None = None
        header = response.headers.get("Content-Length")
        if header is not None:
            try:
                expected_len = int(header)
            except ValueError:
                expected_len = None
        total = expected_len if expected_len is not None else size
        digest = hashlib.sha256()
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ) as bar:
            try:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as e:
                received += len(e.partial)
                raise _AttemptFailed(_truncated(received, expected_len)) from None
            except (OSError, http.client.HTTPException) as e:
                raise _AttemptFailed(
                    f"{_describe_os_error(e, timeout)} after {received} bytes"
                ) from None
    out.flush()
    if expected_len is not None and received != expected_len:
        raise _AttemptFailed(_truncated(received, expected_len))
    return received, digest.hexdigest()


def _check_download(tmp: Path, file: FileSpec, received: int, actual: str) -> str:
    """The name to store a complete download under, or _AttemptFailed if it is not an accepted form of `file`.

    The published bytes are stored under the published name. A mirror that serves the same content in other
    packaging is accepted when the spec gives the decompressed sha256: gzip under the published name, uncompressed
    bytes under the uncompressed name (so the stored name says what the file is)."""
    if actual == file.sha256 and (file.size is None or received == file.size):
        return file.filename
    if file.decompressed_sha256 is not None:
        try:
            content = _content_sha256(tmp)
        except _NotGzip:
            content = None
        if content == file.decompressed_sha256:
            with open(tmp, "rb") as f:
                return file.filename if f.read(2) == _GZIP_MAGIC else str(file.uncompressed_name)
    if actual == file.sha256:
        raise _AttemptFailed(f"got {received} bytes, expected {file.size}")
    if file.size is not None and received != file.size and file.decompressed_sha256 is None:
        raise _AttemptFailed(f"got {received} bytes, expected {file.size}")
    raise _AttemptFailed(f"sha256 mismatch: {_accepted_forms(file)}, got {actual}")


def _truncated(received: int, expected: int | None) -> str:
    if expected is None:
        return f"truncated at {received} bytes"
    return f"truncated at {received} of {expected} bytes"


def _describe_os_error(err: object, timeout: float) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(err, socket.gaierror):
        return f"host name lookup failed ({err.strerror or err})"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def download_file(
    file: FileSpec,
    dest_dir: str | os.PathLike,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Download `file` into `dest_dir`, trying its mirrors in order; return the final path (normally
    dest_dir/file.filename; dest_dir/file.uncompressed_name if a mirror served the decompressed content).

    Raises DataError naming the file, each URL tried and why it failed, and how to fetch it by hand.
    """
    dest_dir = Path(dest_dir)
    manual = f"download it by hand from {_first_url(file)} into {dest_dir}, or {MANUAL_FIX}"
    if not file.urls:
        raise DataError(f"{file.filename} has no download URL; {manual}")
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {dest_dir} to download {file.filename} into: {e}; "
            f"choose another cache (cache_dir=... / JAXDISTILL_CACHE), or {MANUAL_FIX}"
        ) from e

    failures: list[str] = []
    for url in file.urls:
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{file.filename}.part-", dir=dest_dir)
        except OSError as e:
            raise DataError(f"cannot write to {dest_dir} to download {file.filename}: {e}; {manual}") from e
        tmp = Path(tmp_name)
        moved = False
        try:
            with os.fdopen(fd, "wb") as out:
                received, actual = _stream(url, file.filename, file.size, out, progress, timeout)
                os.fsync(out.fileno())
            target = dest_dir / _check_download(tmp, file, received, actual)
            os.replace(tmp, target)
            moved = True
            return target
        except _AttemptFailed as e:
            failures.append(f"{url} ({e})")
        except OSError as e:
            failures.append(f"{url} (could not write {dest_dir}: {e})")
        finally:
            if not moved:
                try:
                    tmp.unlink()
                except FileNotFoundError:
                    pass
    tried = "; ".join(failures)
    raise DataError(f"could not download {file.filename}: tried {tried}. Fix: {manual}")


def download_url(url: str, dest: str | os.PathLike, check=None, progress: bool = True, timeout: float = 30) -> str:
    """Stream `url` into the file `dest` (its folder is created), moving it into place only once complete and
    accepted; returns its sha256. `check(tmp_path, sha256)` may raise DataError to refuse the bytes (a wrong
    checksum), which are then deleted. Raises DataError saying what failed; nothing half-written is left behind."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.part-", dir=dest.parent)
    except OSError as e:
        raise DataError(f"cannot write to {dest.parent} to download {dest.name}: {e}") from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _, digest = _stream(url, dest.name, None, out, progress, timeout)
            os.fsync(out.fileno())
        if check is not None:
            check(tmp, digest)
        os.replace(tmp, dest)
        return digest
    except _AttemptFailed as e:
        raise DataError(f"could not download {dest.name} from {url} ({e})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
