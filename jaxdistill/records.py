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


def cpuinfo_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """Linux /proc/cpuinfo (or the text `cpuinfo`) as each key's first value, in the order the keys first appear:
    the first processor's values for the keys it has; {} where there is none (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(fields: dict[str, str] | None = None) -> str:
    """The CPU's model name (/proc/cpuinfo's 'model name', or `fields` of `cpuinfo_fields`; else
    `platform.processor()`), '' if unknown."""
    fields = cpuinfo_fields() if fields is None else fields
    name = next((value for key, value in fields.items() if key in ("model name", "Model", "cpu model")), None)
    return platform.processor() if name is None else name


# The instruction-set extensions that decide which kernels a CPU run takes, and so its rounding: XLA generates code
# for the host's ISA, and the oneDNN library it calls for convolutions and matrix products picks its kernels for the
# host at run time. A VM may name its CPU only "AMD EPYC". Measured on a Zen 4 with jaxlib 0.10.2
# (`python scripts/cpu_numerics.py`, results/bench/cpu_numerics.json): 100 SGD steps of AlexNet end in other bits
# when oneDNN is held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) or when the process has one core instead of two.
CPU_ISA = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_bf16",
           "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def cpu_id(fields: dict[str, str] | None = None) -> dict[str, Any]:
    """What tells one CPU from another where the model name does not (a VM may show only "AMD EPYC"): the vendor,
    family, model and stepping numbers and the instruction-set extensions of `CPU_ISA` it has, from /proc/cpuinfo (or
    `fields` of `cpuinfo_fields`; a VM's processors are alike, so the first one's); {} where there is none."""
    fields = cpuinfo_fields() if fields is None else fields
    flags = set((fields.get("flags") or fields.get("Features") or "").split())  # x86 / arm64
    out: dict[str, Any] = {key: fields[name] for key, name in (("vendor", "vendor_id"), ("implementer",
                                                               "CPU implementer"), ("part", "CPU part"))
                           if name in fields}
    for key, name in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping")):
        if fields.get(name, "").isdigit():
            out[key] = int(fields[name])
    if flags:
        out["isa"] = [f for f in CPU_ISA if f in flags]
    return out


# Environment variables that change a run's rounding (kernel choice, threads, matmul precision), where set.
NUMERICS_ENV = ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
                "JAX_DEFAULT_MATMUL_PRECISION", "NVIDIA_TF32_OVERRIDE", "OMP_NUM_THREADS")


def usable_cpus() -> int | None:
    """The cores this process may run on (its affinity, which `taskset` or a container narrows), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count()


def device_info() -> dict[str, Any]:
    """The devices, the host (CPU model and `cpu_id`, the cores this process may use, kernel), the CPU settings in
    effect (`cpu_tuning.applied_settings()`) and the environment variables of `NUMERICS_ENV` that are set: what a run's
    rounding depends on beyond the code and library versions."""
    import jax

    from jaxdistill.cpu_tuning import applied_settings
    devices = jax.devices()
    cpuinfo = cpuinfo_fields()
    return {"backend": devices[0].platform if devices else "none", "devices": [d.device_kind for d in devices],
            "device_count": len(devices), "host": platform.node(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "cpu_model": cpu_model(cpuinfo), "cpu": cpu_id(cpuinfo),
            "cpus_usable": usable_cpus(), "kernel": platform.release(), "cpu_tuning": applied_settings(),
            "numerics_env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ}}


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
