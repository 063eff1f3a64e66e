"""Downloading and checking dataset files.

`download_file` streams each mirror into a uniquely named temporary file next to the destination, hashing as it
goes; only a complete file with the right sha256 is moved into place (atomically, with os.replace). Whatever goes
wrong, the temporary file is removed, so nothing half-written is ever left behind.
"""

from __future__ import annotations

import hashlib
import http.client
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

__all__ = ["sha256_file", "verify_file", "download_file", "MANUAL_FIX"]

_CHUNK = 1 << 20
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


def verify_file(path: str | os.PathLike, file: FileSpec) -> None:
    """Raise DataError unless `path` exists and has `file`'s sha256."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{file.filename}: {path} does not exist or is not a file; "
            f"download it from {_first_url(file)} into {path.parent}, or {MANUAL_FIX}"
        )
    try:
        actual = sha256_file(path)
        nbytes = path.stat().st_size
    except OSError as e:
        raise DataError(f"{file.filename}: cannot read {path}: {e}; check its permissions, or delete it") from e
    if actual != file.sha256:
        size_note = ""
        if file.size is not None and nbytes != file.size:
            size_note = f" (it has {nbytes} bytes, expected {file.size})"
        raise DataError(
            f"{file.filename} at {path} is corrupt: sha256 expected {file.sha256}, got {actual}{size_note}; "
            f"delete it so it is downloaded again, or replace it with a good copy from {_first_url(file)}"
        )


def _first_url(file: FileSpec) -> str:
    return file.urls[0] if file.urls else "the dataset's homepage"


class _AttemptFailed(Exception):
    """One mirror failed; the message says how."""


def _stream(url: str, file: FileSpec, out, progress: bool, timeout: float) -> None:
    """Fetch `url` into the open binary file `out`, checking length and sha256; raise _AttemptFailed."""
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
        total = expected_len if expected_len is not None else file.size
        digest = hashlib.sha256()
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=file.filename,
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
    if file.size is not None and received != file.size:
        raise _AttemptFailed(f"got {received} bytes, expected {file.size}")
    actual = digest.hexdigest()
    if actual != file.sha256:
        raise _AttemptFailed(f"sha256 mismatch: expected {file.sha256}, got {actual}")


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
    """Download `file` into `dest_dir`, trying its mirrors in order; return the final path.

    Raises DataError naming the file, each URL tried and why it failed, and how to fetch it by hand.
    """
    dest_dir = Path(dest_dir)
    target = dest_dir / file.filename
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
                _stream(url, file, out, progress, timeout)
                os.fsync(out.fileno())
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
