"""Shared plumbing of the experiment scripts: run a config variant, write its record under results/."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jaxdistill.compilation_cache import enable_compilation_cache
from jaxdistill.cpu_tuning import reexec_with_malloc_tuning
from jaxdistill.records import device_info, versions, write_json

ROOT = Path(__file__).resolve().parents[1]


def prepare_process() -> None:
    """First thing in every experiment: restart with the tuned allocator (CPU), keep compiled programs on disk."""
    reexec_with_malloc_tuning()
    enable_compilation_cache()


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_record(out: Path, experiment: str, variant: str, config: dict[str, Any], result: dict[str, Any],
                 reduced: bool, full_command: str, started: float) -> None:
    """The record every accuracy claim points to: config, seeds, versions, device, wall time, command."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"experiment": experiment, "variant": variant, "reduced_protocol": reduced,
                     "command": command_line(), "full_protocol_command": full_command, "config": config,
                     "result": result, "versions": versions(), "device": device_info(),
                     "wall_time_s": time.time() - started})
    print(f"wrote {out}")
