"""Run directories: config, metrics log, Orbax checkpoints, resume. The only module that imports Orbax.

A workdir holds:
    config.json       the run's config; a rerun with a different config is refused, never mixed in
    metrics.jsonl     one JSON object per logged step
    checkpoints/      Orbax checkpoints (written to a temporary name, then renamed: a killed run leaves none half-done)
    ...               the run's outputs (written atomically by `records.write_json` / `write_npz`)
Rerunning the same command on the same workdir resumes from the newest complete checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from jaxdistill.errors import ConfigError, WorkdirError
from jaxdistill.records import _to_jsonable, read_json, write_json

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


_ABSENT = "<absent>"


def _diff(a: Any, b: Any, path: str = "", defaults: dict[str, Any] | None = None) -> list[str]:
    """Differences between a stored config `a` and a command's `b`, as readable lines.

    `defaults` maps a dotted key path to the value a stored config that lacks the key is taken to have: a config field
    added in a later version, whose default reproduces what earlier versions did, does not block resuming their runs.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else k
            stored = a.get(k, _ABSENT)
            if k not in a and defaults and sub in defaults:
                stored = _to_jsonable(defaults[sub])
            out += _diff(stored, b.get(k, _ABSENT), sub, defaults)
        return out
    return [] if a == b else [f"{path}: workdir has {a!r}, this command has {b!r}"]


class RunDir:
    """A workdir for one run. `open(config)` creates it or checks it belongs to the same config."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 2):
        self.path = Path(workdir)
        self.max_to_keep = max_to_keep
        self._manager = None

    # ---- config -----------------------------------------------------------------------------------------------
    def check_config(self, config: dict[str, Any], defaults: dict[str, Any] | None = None,
                     upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bool:
        """Raise ConfigError when the workdir holds a run with another config; True when it holds this one.

        `defaults`: dotted key path -> the value a stored config without that key had (see `_diff`); `upgrade` maps
        a config.json of an older version to today's form first. Reads only; `open` rewrites config.json in today's
        form.
        """
        config = _to_jsonable(config)
        if self.path.exists() and not self.path.is_dir():
            raise WorkdirError(f"workdir {self.path} is a file, not a folder; choose another --workdir")
        cfg_path = self.path / CONFIG_FILE
        if not cfg_path.exists():
            return False
        try:
            existing = read_json(cfg_path)
        except (OSError, ValueError) as e:
            raise WorkdirError(f"{cfg_path} is unreadable ({e}); delete the workdir or choose another") from None
        if upgrade is not None:
            existing = upgrade(existing)
        diffs = _diff(existing, config, defaults=defaults)
        if diffs:
            raise ConfigError(
                f"workdir {self.path} holds a run with a different config ({'; '.join(diffs[:3])}"
                f"{'; ...' if len(diffs) > 3 else ''}); use a new --workdir or rerun with the same settings")
        return True

    def open(self, config: dict[str, Any], defaults: dict[str, Any] | None = None,
             upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bool:
        """Create the workdir (or check the existing one's config, see `check_config`). Returns True when it already
        held this run."""
        config = _to_jsonable(config)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkdirError(f"cannot create workdir {self.path}: {e.strerror}; choose another --workdir") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise WorkdirError(f"workdir {self.path} is not writable; fix its permissions or choose another --workdir")
        held = self.check_config(config, defaults, upgrade)
        try:  # for a held run, the same config (completed where `defaults` filled in fields it predates)
            write_json(self.path / CONFIG_FILE, config)
        except OSError as e:
            raise WorkdirError(f"cannot write to workdir {self.path}: {e.strerror}; choose another --workdir") from None
        return held

    # ---- metrics ------------------------------------------------------------------------------------------------
    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one line {"step": step, **metrics} to metrics.jsonl."""
        record = {"step": int(step), **_to_jsonable(metrics)}
        with open(self.path / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """Drop logged lines past `after_step` (work a crash lost and a resume will redo)."""
        path = self.path / METRICS_FILE
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= after_step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        write_json_lines(path, kept)

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / METRICS_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ---- checkpoints --------------------------------------------------------------------------------------------
    @property
    def manager(self):
        if self._manager is None:
            import orbax.checkpoint as ocp
            options = ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True,
                                                   enable_async_checkpointing=False)
            self._manager = ocp.CheckpointManager((self.path / "checkpoints").absolute(), options=options)
        return self._manager

    def latest_step(self) -> int | None:
        if not (self.path / "checkpoints").exists():
            return None
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Checkpoint `state` (any pytree of arrays) at `step`, synchronously."""
        import orbax.checkpoint as ocp
        state = _checkpoint_form(jax.tree.map(np.asarray, state))
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any] | None:
        """(step, state) of the newest checkpoint (or `step`), shaped like `template`; None when there is none."""
        import orbax.checkpoint as ocp
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = _checkpoint_form(jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype),
                                                 template))
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # Orbax raises many types; all mean the same thing to the user
            raise WorkdirError(f"checkpoint {step} in {self.path / 'checkpoints'} cannot be restored ({e}); "
                               f"delete that checkpoint folder to resume from an earlier one") from None
        return step, _from_checkpoint_form(template, restored)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None


def _checkpoint_form(tree: Any) -> Any:
    """The tree as Orbax stores it: named tuples as dicts of their fields, with empty fields (None, such as a
    synthetic set's unset learned lr) left out, so that adding an optional field to a state changes no checkpoint
    and checkpoints written before it still restore."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return {k: _checkpoint_form(v) for k, v in zip(tree._fields, tree) if v is not None}
    if isinstance(tree, dict):
        return {k: _checkpoint_form(v) for k, v in tree.items() if v is not None}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_checkpoint_form(v) for v in tree)
    return tree


def _from_checkpoint_form(template: Any, stored: Any) -> Any:
    """`stored` (as Orbax gives it back: dicts and lists) in the tree structure of `template`, matched by field name
    and position (never by the order of a dict's keys)."""
    if template is None:
        return None
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(*(_from_checkpoint_form(t, stored.get(k) if t is not None else None)
                                for k, t in zip(template._fields, template)))
    if isinstance(template, dict):
        return {k: _from_checkpoint_form(t, stored.get(k) if t is not None else None) for k, t in template.items()}
    if isinstance(template, (list, tuple)):
        items = stored.values() if isinstance(stored, dict) else stored
        if isinstance(stored, dict):  # Orbax may give a sequence back as a dict keyed '0', '1', ...
            items = [stored[str(i)] if str(i) in stored else stored[i] for i in range(len(template))]
        return type(template)(_from_checkpoint_form(t, v) for t, v in zip(template, items))
    return stored


def save_pytree(path: str | os.PathLike, tree: Any) -> None:
    """Save a pytree of arrays as one Orbax checkpoint folder at `path` (replacing one that is there); Orbax writes
    to a temporary name and renames, so a killed save leaves no half-written `path`."""
    import orbax.checkpoint as ocp
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, jax.tree.map(np.asarray, tree), force=True)
        ckpt.wait_until_finished()


def restore_pytree(path: str | os.PathLike, template: Any | None = None) -> Any:
    """Load what `save_pytree` wrote at `path` (as numpy arrays, shaped like `template` when given). Raises
    WorkdirError naming the folder when it is missing or unreadable."""
    import orbax.checkpoint as ocp
    path = Path(path).absolute()
    if not path.is_dir():
        raise WorkdirError(f"checkpoint {path} does not exist")
    abstract = None if template is None else jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), template)
    try:
        with ocp.StandardCheckpointer() as ckpt:
            restored = ckpt.restore(path, abstract) if abstract is not None else ckpt.restore(path)
    except Exception as e:  # Orbax raises many types; all mean the same thing to the user
        raise WorkdirError(f"checkpoint {path} cannot be restored ({type(e).__name__}: {e})") from None
    return jax.tree.map(np.asarray, restored)


def write_json_lines(path: Path, lines: list[str]) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


__all__ = ["RunDir", "restore_pytree", "save_pytree", "write_json", "read_json"]
