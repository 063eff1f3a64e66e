"""A persistent cache of compiled XLA programs, so a rerun (a resume after a crash, the next seed sweep, another
evaluation of the same shapes) skips compiles that cost tens of seconds each on a CPU.

`enable_compilation_cache()` points jax's persistent compilation cache at $JAXDISTILL_COMPILATION_CACHE, else at
<jaxdistill cache>/xla (~/.cache/jaxdistill/xla by default); JAXDISTILL_COMPILATION_CACHE=0 turns it off. The
`jaxdistill` command and the experiment scripts call it; library users opt in by calling it themselves. A cached
program is the same program: results do not change.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "JAXDISTILL_COMPILATION_CACHE"
MIN_COMPILE_SECONDS = 0.5  # cheaper programs are not worth a disk entry


def compilation_cache_dir(environ=os.environ) -> Path | None:
    """Where compiled programs are kept, or None when the user turned the cache off."""
    value = environ.get(ENV, "")
    if value == "0":
        return None
    if value:
        return Path(value).expanduser()
    from jaxdistill.data.sources import default_cache_dir
    return default_cache_dir() / "xla"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on jax's persistent compilation cache at `path` (default `compilation_cache_dir()`); returns the folder
    in use, or None when it is off or the folder cannot be created (the cache is an optimisation, never an error)."""
    folder = Path(path).expanduser() if path is not None else compilation_cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
