"""Expert trajectories for trajectory matching (MTT, DATM): train networks on the real data, keep every epoch.

Protocol of the MTT reference (`buffer.py`): ConvNets trained from scratch on the whole training set with SGD (lr 0.01,
no momentum, no weight decay, batch 256) for 50 epochs with DSA augmentation (per-image draws), the parameters kept at
initialisation and after every epoch (51 snapshots per expert). On digits the DSA strategy omits flips, as for DSA.

A buffer is a folder:
    manifest.json            the expert config, the dataset, and per expert its seed, the epochs saved so far with a
                             checksum of each snapshot, and whether it is complete
    expert_<seed>/<epoch>/   one Orbax checkpoint per snapshot (the network's params pytree)
    expert_<seed>/train/     the training state for resuming an interrupted expert
Loading draws one complete expert and a window (start epoch, start epoch + expert_epochs) and reads exactly those two
snapshots, so memory does not grow with the buffer. A snapshot that is missing or whose checksum differs from the
manifest is reported as corrupt, naming the file and the fix.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdistill.checkpoint import RunDir, restore_pytree, save_pytree
from jaxdistill.data.dsa import default_dsa_strategy
from jaxdistill.errors import ConfigError, WorkdirError, positive_finite
from jaxdistill.models import make_model
from jaxdistill.records import arrays_checksum, read_json, write_json
from jaxdistill.train import Trainer, TrainConfig, resolve_parallel

MANIFEST = "manifest.json"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ExpertConfig:
    """How experts are trained (MTT defaults). `augment` None means DSA with the dataset's default strategy."""
    model: str = "convnet"
    model_kwargs: tuple = ()  # ((name, value), ...)
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    augment: str | None = None
    parallel: str = "auto"  # experts as one vmapped program, or one after another (the CPU default)
    zca: bool = False  # trained on ZCA-whitened data (runner.load_real(zca=True)); recorded so distillation matches

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"expert epochs must be >= 1, got {self.epochs}")
        if not positive_finite(self.lr):  # checked here, before any data is loaded
            raise ConfigError(f"expert lr must be a finite number > 0, got {self.lr}")

    def train_config(self, dataset: str) -> TrainConfig:
        augment = self.augment if self.augment is not None else f"dsa:{default_dsa_strategy(dataset)}"
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, lr_drop_fraction=1.0, augment=augment,
                           parallel=self.parallel)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "model_kwargs": dict(self.model_kwargs)}


def _expert_dir(buffer: Path, seed: int) -> Path:
    return buffer / f"expert_{seed:04d}"


def _snapshot_dir(buffer: Path, seed: int, epoch: int) -> Path:
    return _expert_dir(buffer, seed) / f"{epoch:04d}"


def _new_manifest(config: ExpertConfig, dataset: str, num_classes: int, image_shape) -> dict[str, Any]:
    return {"format": FORMAT, "dataset": dataset, "num_classes": num_classes, "image_shape": list(image_shape),
            "config": config.to_dict(), "experts": {}}


def train_experts(buffer_dir: str | Path, images: np.ndarray, labels: np.ndarray, dataset: str, num_classes: int,
                  seeds: Sequence[int], config: ExpertConfig = ExpertConfig(), progress: bool = True
                  ) -> dict[str, Any]:
    """Train one expert per seed on (images (N, H, W, C) normalised, labels (N,)) and store its trajectory.

    Resumable: finished experts are skipped, an interrupted one continues from its last epoch. A buffer made with
    another config or dataset is refused. Returns the manifest.
    """
    buffer = Path(buffer_dir)
    buffer.mkdir(parents=True, exist_ok=True)
    fresh = _new_manifest(config, dataset, num_classes, images.shape[1:])
    manifest = read_json(buffer / MANIFEST) if (buffer / MANIFEST).exists() else fresh
    for key in ("format", "dataset", "num_classes", "image_shape", "config"):
        if manifest.get(key) != fresh[key]:
            raise ConfigError(f"buffer {buffer} holds experts with another {key} ({manifest.get(key)} vs "
                              f"{fresh[key]}); use a new buffer folder")
    write_json(buffer / MANIFEST, manifest)
    train_cfg = config.train_config(dataset)
    model = make_model(config.model, num_classes, **dict(config.model_kwargs))
    trainer = Trainer(model, train_cfg, int(labels.shape[0]))
    todo = [int(s) for s in seeds if not manifest["experts"].get(str(int(s)), {}).get("complete")]
    groups = [todo] if resolve_parallel(config.parallel) == "vmap" else [[s] for s in todo]
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    with tqdm(total=len(todo) * trainer.total_steps, desc="experts", disable=not progress, unit="step",
              dynamic_ncols=True) as bar:
        for group in filter(None, groups):
            _train_group(buffer, manifest, trainer, group, images, labels, bar)
    return manifest


def _train_group(buffer: Path, manifest: dict, trainer: Trainer, seeds: list[int], images, labels, bar) -> None:
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    run = RunDir(_expert_dir(buffer, seeds[0]) / "train", max_to_keep=1)
    run.open({"kind": "experts", "seeds": seeds})
    states = jax.jit(jax.vmap(trainer.init_state, in_axes=(0, None)))(keys, images)
    restored = run.restore(states)
    if restored is not None:
        states = jax.tree.map(jnp.asarray, restored[1])
    else:
        _save_snapshots(buffer, manifest, seeds, 0, states, trainer.config.epochs)
    bar.update(int(states.step[0]) * len(seeds))
    start = time.time()

    def on_epoch(epoch, st):
        _save_snapshots(buffer, manifest, seeds, epoch, st, trainer.config.epochs)
        run.save(epoch, st)
        bar.set_postfix(epoch=epoch, s_per_epoch=f"{(time.time() - start) / max(epoch, 1):.1f}")

    trainer.run(keys, images, labels, states=states, progress=bar.update, on_epoch=on_epoch)
    run.close()


def _save_snapshots(buffer: Path, manifest: dict, seeds: list[int], epoch: int, states, epochs: int) -> None:
    for k, seed in enumerate(seeds):
        params = jax.tree.map(lambda a: np.asarray(a[k]), states.params)
        save_pytree(_snapshot_dir(buffer, seed, epoch), params)
        entry = manifest["experts"].setdefault(str(seed), {"seed": seed, "checksums": {}, "complete": False})
        entry["checksums"][str(epoch)] = arrays_checksum(params)
        entry["complete"] = all(str(e) in entry["checksums"] for e in range(epochs + 1))
    write_json(buffer / MANIFEST, manifest)  # after the snapshots: the manifest never names a missing one


class ExpertBuffer:
    """Read access to a buffer folder: which experts are complete, one snapshot, or a random window."""

    def __init__(self, buffer_dir: str | Path):
        self.path = Path(buffer_dir)
        if not (self.path / MANIFEST).exists():
            raise WorkdirError(f"{self.path} holds no expert buffer ({MANIFEST} missing); create one with "
                               f"`jaxdistill experts`")
        self.manifest = read_json(self.path / MANIFEST)
        self.epochs = int(self.manifest["config"]["epochs"])
        self.experts = sorted(int(s) for s, e in self.manifest["experts"].items() if e["complete"])
        if not self.experts:
            raise WorkdirError(f"buffer {self.path} has no complete expert yet; finish training with "
                               f"`jaxdistill experts` (it resumes)")

    def load(self, seed: int, epoch: int) -> Any:
        """The params of expert `seed` after `epoch` epochs (0 = initialisation), checked against the manifest."""
        entry = self.manifest["experts"].get(str(seed))
        if entry is None or str(epoch) not in entry["checksums"]:
            raise WorkdirError(f"buffer {self.path} has no snapshot of expert {seed} at epoch {epoch}")
        folder = _snapshot_dir(self.path, seed, epoch)
        try:
            params = restore_pytree(folder)
        except WorkdirError as e:
            raise WorkdirError(f"expert snapshot {folder} is missing or corrupt ({e}); delete expert_{seed:04d} "
                               f"and its manifest entry, or rerun `jaxdistill experts` on a new buffer") from None
        if arrays_checksum(params) != entry["checksums"][str(epoch)]:
            raise WorkdirError(f"expert snapshot {folder} is corrupt (its checksum differs from {MANIFEST}); "
                               f"delete expert_{seed:04d} and rerun `jaxdistill experts` to retrain it")
        return params

    def sample_window(self, rng: np.random.Generator, expert_epochs: int, max_start_epoch: int,
                      min_start_epoch: int = 0) -> tuple[int, int, Any, Any]:
        """(expert seed, start epoch, params at start, params at start + expert_epochs) for a random expert and a
        start epoch uniform in [min_start_epoch, max_start_epoch)."""
        if (expert_epochs < 1 or not 0 <= min_start_epoch < max_start_epoch
                or max_start_epoch - 1 + expert_epochs > self.epochs):
            raise ConfigError(f"a window of {expert_epochs} epochs starting in [{min_start_epoch}, {max_start_epoch}) "
                              f"does not fit experts of {self.epochs} epochs")
        seed = int(rng.choice(self.experts))
        start = int(rng.integers(min_start_epoch, max_start_epoch))
        return seed, start, self.load(seed, start), self.load(seed, start + expert_epochs)

    def verify(self) -> list[str]:
        """Every problem with the buffer (missing or corrupt snapshots, incomplete experts), one line each."""
        problems = []
        for seed, entry in sorted(self.manifest["experts"].items(), key=lambda kv: int(kv[0])):
            if not entry["complete"]:
                problems.append(f"expert {seed}: incomplete ({len(entry['checksums'])} of {self.epochs + 1} "
                                f"snapshots); rerun `jaxdistill experts` to finish it")
            for epoch in sorted(entry["checksums"], key=int):
                try:
                    self.load(int(seed), int(epoch))
                except WorkdirError as e:
                    problems.append(str(e))
        return problems
