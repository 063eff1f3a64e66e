"""Process-level settings that make XLA:CPU fast and lean for this library's workloads.

Measured on a 2-core x86 CPU with jaxlib 0.10 (README "Performance"; `scripts/bench_dc.py`):

* XLA:CPU's default "concurrency-optimised" scheduler lets independent work overlap and so keeps every class's
  activations of a gradient-matching step alive at once (11 GB for the ten 256-image real-data gradients of one DC
  iteration on MNIST); the memory-minimising scheduler runs them one after another in 1.2 GB, at the same speed.
  `configure_xla()` turns it off through XLA_FLAGS. It runs when `jaxdistill` is imported and only takes effect if
  jax has not yet started its CPU backend; a flag the user already set is left alone.
* glibc returns every large buffer to the kernel when XLA frees it, so the next execution page-faults and the kernel
  zeroes the same gigabyte again (~0.3 s of system time per class-gradient). Allocating from a heap that is kept
  (`mmap_max=0`, no trimming) on transparent huge pages (`hugetlb=1`) removes that: one DC iteration at ipc 1 went
  from 14.6 s to 6.6 s. glibc reads these tunables only at process start, so `reexec_with_malloc_tuning()`
  restarts the current command once with them set; the `jaxdistill` command, the experiment and benchmark scripts
  call it first thing. Set JAXDISTILL_MALLOC_TUNING=0 to opt out. Other C libraries ignore the variable.
"""
from __future__ import annotations

import os
import sys

XLA_CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)
MALLOC_TUNABLES = ("glibc.malloc.hugetlb=1", "glibc.malloc.mmap_max=0", "glibc.malloc.trim_threshold=1099511627776")
_MIN_JAXLIB = (0, 5)  # the scheduler flag exists from here on; unknown XLA flags are fatal, so older ones skip it


def _jaxlib_version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return tuple(int(p) for p in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def configure_xla(environ=os.environ) -> None:
    """Add XLA_CPU_FLAGS to XLA_FLAGS unless the user set those flags (or the installed jaxlib predates them)."""
    if _jaxlib_version() < _MIN_JAXLIB:
        return
    current = environ.get("XLA_FLAGS", "")
    extra = [f for f in XLA_CPU_FLAGS if f.split("=")[0] not in current]
    if extra:
        environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()


def malloc_tuning_env(environ=os.environ) -> dict[str, str] | None:
    """The environment to re-execute with, or None if the tuning is already there, opted out, or not glibc Linux."""
    if environ.get("JAXDISTILL_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
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
    env["JAXDISTILL_MALLOC_TUNING"] = "0"  # never loop, whatever glibc makes of the variable
    return env


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


def reexec_with_malloc_tuning() -> None:
    """Restart this process (same interpreter and arguments) with MALLOC_TUNABLES in GLIBC_TUNABLES, once.

    Call it before any work: it does not return when it restarts. A no-op where `malloc_tuning_env` says so.
    """
    env = malloc_tuning_env()
    if env is None:
        return
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
