"""Provenance for every result: library versions, device, wall time; atomic JSON/NPZ writes."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

_PACKAGES = ("jaxdistill", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def versions() -> dict[str, str]:
    """Python and library versions, plus the jaxdistill source commit when run from a git checkout: the one this
    process imported jaxdistill from (`STARTED_FROM`), not the checkout's at the time of asking, which a commit made
    while a long run goes on would have moved."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    commit = STARTED_FROM
    if commit:
        out["jaxdistill_commit"] = commit
    return out


def source_commit() -> str | None:
    """`git describe`-style id of the checkout jaxdistill runs from ('<sha>' or '<sha>-dirty'); None outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


STARTED_FROM = source_commit()  # the checkout's commit when this process imported jaxdistill


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo 'model name', else `platform.processor()`), '' if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def device_info() -> dict[str, Any]:
    """The devices, the host (CPU model, kernel) and the CPU settings in effect (`cpu_tuning.applied_settings()`)."""
    import jax

    from jaxdistill.cpu_tuning import applied_settings
    devices = jax.devices()
    return {"backend": devices[0].platform if devices else "none", "devices": [d.device_kind for d in devices],
            "device_count": len(devices), "host": platform.node(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "cpu_model": cpu_model(), "kernel": platform.release(),
            "cpu_tuning": applied_settings()}


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("jax"):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    data = json.dumps(_to_jsonable(obj), indent=2, sort_keys=True).encode() + b"\n"
    _atomic_write(path, lambda f: f.write(data))


def write_npz(path: Path, *, compressed: bool = False, **arrays: Any) -> None:
    """Write an .npz atomically (deflated when `compressed`: for files kept in the repository)."""
    save = np.savez_compressed if compressed else np.savez
    _atomic_write(path, lambda f: save(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def arrays_checksum(tree: Any) -> str:
    """sha256 over the arrays of a pytree (tree order, dtype and shape included): expert snapshots' checksums and
    the identity of an evaluated synthetic set."""
    import hashlib

    import jax

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def as_read_back(obj: Any) -> Any:
    """What `write_json` then `read_json` give for obj (tuples become lists, numpy scalars Python numbers, ...)."""
    return json.loads(json.dumps(_to_jsonable(obj)))


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)
