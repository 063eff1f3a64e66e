"""Process-level settings that make XLA:CPU fast and lean for this library's workloads: an explicit opt-in.

Importing jaxdistill changes no environment variable and no global setting. The `jaxdistill` command, the experiment
scripts and the benchmark scripts opt in by calling `apply()` first thing (`jaxdistill --verbose ...` prints what it
did); a library user may call `apply()` before any JAX computation. Measured on a 2-core x86 CPU with jaxlib 0.10
(README "Performance"; `scripts/bench_dc.py`):

* XLA:CPU's default "concurrency-optimised" scheduler lets independent work overlap and so keeps every class's
  activations of a gradient-matching step alive at once (11 GB for the ten 256-image real-data gradients of one DC
  iteration on MNIST); the memory-minimising scheduler runs them one after another in 1.2 GB, at the same speed.
  `apply()` turns it off through XLA_FLAGS, which jax reads only when it starts its backend; a flag the user already
  set is left alone.
* glibc returns every large buffer to the kernel when XLA frees it, so the next execution page-faults and the kernel
  zeroes the same gigabyte again (~0.3 s of system time per class-gradient). Allocating from a heap that is kept
  (`mmap_max=0`, no trimming) on transparent huge pages (`hugetlb=1`) removes that: one DC iteration at ipc 1 went
  from 14.6 s to 6.6 s. glibc reads these tunables only at process start, so `apply(reexec=True)` restarts the
  current command once (same interpreter and arguments) with them in GLIBC_TUNABLES. Other C libraries ignore it.

Switches: JAXDISTILL_CPU_TUNING=0 turns all of it off; JAXDISTILL_MALLOC_TUNING=0 keeps the XLA flag but not the
allocator restart. What is in effect is `applied_settings()`, which run records hold (`records.device_info()`).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping, MutableMapping

from jaxdistill.errors import ConfigError

XLA_CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)
MALLOC_TUNABLES = ("glibc.malloc.hugetlb=1", "glibc.malloc.mmap_max=0", "glibc.malloc.trim_threshold=1099511627776")
OFF_ENV = "JAXDISTILL_CPU_TUNING"  # "0": none of the settings
MALLOC_OFF_ENV = "JAXDISTILL_MALLOC_TUNING"  # "0": no allocator restart
# What apply() added, as JSON; the restarted process and child processes inherit it, so their records say so, and a
# restarted process never restarts again whatever glibc made of GLIBC_TUNABLES.
APPLIED_ENV = "JAXDISTILL_CPU_TUNING_APPLIED"
_MIN_JAXLIB = (0, 5)  # the scheduler flag exists from here on; unknown XLA flags are fatal, so older ones skip it


class BackendStartedError(ConfigError):
    """The CPU settings were asked for after jax had started its backend, when they can no longer take effect."""


def _jaxlib_version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return tuple(int(p) for p in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def backend_started() -> bool:
    """Whether jax has started a backend in this process (after which XLA_FLAGS is no longer read).

    False when jax was never imported. Uses jax's private `xla_bridge`; should that move, it answers False (the
    settings are then applied and may silently not take effect, as before this check existed)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    if bridge is None:
        return False
    check = getattr(bridge, "backends_are_initialized", None)
    try:
        if callable(check):
            return bool(check())
        return bool(getattr(bridge, "_backends", None))
    except Exception:  # a changed private API must not stop the command
        return False


def _applied_record(environ: Mapping[str, str]) -> dict[str, list[str]]:
    try:
        record = json.loads(environ.get(APPLIED_ENV, "") or "{}")
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    return {key: [str(v) for v in record.get(key, [])] for key in ("xla_flags", "glibc_tunables")}


def _note_applied(environ: MutableMapping[str, str], key: str, added: list[str]) -> None:
    record = _applied_record(environ)
    record[key] += [a for a in added if a not in record[key]]
    environ[APPLIED_ENV] = json.dumps(record, separators=(",", ":"))


def configure_xla(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Add XLA_CPU_FLAGS to XLA_FLAGS unless the user set those flags (or the installed jaxlib predates them); return
    the flags added. Takes effect only if jax has not yet started its backend; `apply()` checks that."""
    if _jaxlib_version() < _MIN_JAXLIB:
        return []
    current = environ.get("XLA_FLAGS", "")
    extra = [f for f in XLA_CPU_FLAGS if f.split("=")[0] not in current]
    if extra:
        environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()
    return extra


def malloc_tuning_env(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """The environment to re-execute with, or None if the tuning is already there, was applied by a restart,
    is switched off (JAXDISTILL_CPU_TUNING=0 or JAXDISTILL_MALLOC_TUNING=0), or this is not glibc Linux."""
    if environ.get(OFF_ENV, "1") == "0" or environ.get(MALLOC_OFF_ENV, "1") == "0":
        return None
    if not sys.platform.startswith("linux") or _applied_record(environ)["glibc_tunables"]:
        return None
    import platform
    if platform.libc_ver()[0] != "glibc":
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    missing = [t for t in MALLOC_TUNABLES if t.split("=")[0] not in current]
    if not missing:
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = ":".join([t for t in current.split(":") if t] + missing)
    _note_applied(env, "glibc_tunables", missing)
    return env


def reexec_with_malloc_tuning() -> None:
    """Restart this process (same interpreter and arguments) with MALLOC_TUNABLES in GLIBC_TUNABLES, once.

    Call it before any work: it does not return when it restarts. A no-op where `malloc_tuning_env` says so.
    Prefer `apply(reexec=True)`, which also sets the XLA flags."""
    env = malloc_tuning_env()
    if env is None:
        return
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def apply(reexec: bool = False) -> dict[str, Any]:
    """Opt this process in to the CPU settings: add the XLA flags to XLA_FLAGS and, with `reexec`, restart the
    process once with the allocator tunables (it then does not return; the restarted process runs from the start
    and calls this again). Returns `applied_settings()`. Does nothing when JAXDISTILL_CPU_TUNING=0.

    Raises BackendStartedError if jax has already started its backend: call it before any JAX computation.
    Harmless on GPU/TPU hosts (the flags concern XLA:CPU only)."""
    if os.environ.get(OFF_ENV, "1") == "0":
        return applied_settings()
    if backend_started():
        raise BackendStartedError(
            "the CPU settings can no longer take effect: jax has already started its backend in this process; "
            "call jaxdistill.cpu_tuning.apply() before any JAX computation (first thing in the script), "
            f"or set {OFF_ENV}=0 to run without them")
    added = configure_xla(os.environ)
    if added:
        _note_applied(os.environ, "xla_flags", added)
    if reexec:
        reexec_with_malloc_tuning()
    return applied_settings()


def applied_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """What of the CPU settings this process runs with, for run records (JSON-ready).

    `xla_flags_added` / `glibc_tunables_added`: what jaxdistill's `apply()` added (in this process, or in the one
    that restarted or started it); `xla_tuning_flags`: the tuning flags XLA_FLAGS holds, whoever set them (a user's
    own value is kept); `glibc_tunables`: GLIBC_TUNABLES as this process started with it (None if unset);
    `malloc_tuned`: every allocator tunable is there; `off` / `malloc_off`: switched off by JAXDISTILL_CPU_TUNING=0
    / JAXDISTILL_MALLOC_TUNING=0."""
    record = _applied_record(environ)  # inherited, so only what is still there counts
    names = tuple(f.split("=")[0] for f in XLA_CPU_FLAGS)
    xla_flags = environ.get("XLA_FLAGS", "").split()
    flags = [f for f in xla_flags if f.split("=")[0] in names]
    tunables = environ.get("GLIBC_TUNABLES")
    present = (tunables or "").split(":")
    return {"off": environ.get(OFF_ENV, "1") == "0", "malloc_off": environ.get(MALLOC_OFF_ENV, "1") == "0",
            "xla_flags_added": [f for f in record["xla_flags"] if f in xla_flags], "xla_tuning_flags": flags,
            "glibc_tunables_added": [t for t in record["glibc_tunables"] if t in present], "glibc_tunables": tunables,
            "malloc_tuned": all(t in present for t in MALLOC_TUNABLES)}


def describe(settings: Mapping[str, Any]) -> str:
    """One line for people: what `applied_settings()` says, e.g. for `jaxdistill --verbose`."""
    if settings["off"]:
        return f"cpu tuning: off ({OFF_ENV}=0)"
    parts = []
    if settings["xla_flags_added"]:
        parts.append("XLA_FLAGS += " + " ".join(settings["xla_flags_added"]))
    elif settings["xla_tuning_flags"]:
        parts.append("XLA_FLAGS already has " + " ".join(settings["xla_tuning_flags"]) + " (kept)")
    else:
        parts.append("no XLA flags")
    tunables = f"GLIBC_TUNABLES={settings['glibc_tunables']}"
    if settings["malloc_off"]:
        parts.append(f"allocator untuned ({MALLOC_OFF_ENV}=0)")
    elif settings["glibc_tunables_added"]:
        parts.append(tunables + " (restarted once to apply it)")
    elif settings["malloc_tuned"]:
        parts.append(tunables + " (already set)")
    else:
        parts.append("allocator untuned (no restart, or not glibc Linux)")
    return "cpu tuning: " + "; ".join(parts)


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the kernel (glibc `malloc_trim`); a no-op elsewhere.

    With trimming off (MALLOC_TUNABLES) the garbage of a one-off phase such as loading a dataset would otherwise
    stay resident and fragment the heap under the next large allocation; the runner calls this after loading.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
