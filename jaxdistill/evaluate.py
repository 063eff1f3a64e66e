"""The evaluation protocol: train K fresh networks on a (synthetic) training set, test each on the real test set.

The number reported is mean +- std over networks (and over distillation seeds, when several), never the max.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.errors import ConfigError
from jaxdistill.models import make_model
from jaxdistill.records import device_info, versions
from jaxdistill.train import Trainer, TrainConfig, accuracy, predict_logits


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Which network to train and how. Defaults: the DC protocol (ConvNet, 1000 epochs, 20 networks)."""
    model: str = "convnet"
    model_kwargs: tuple = ()  # ((name, value), ...) so the config stays hashable
    num_models: int = 20
    train: TrainConfig = TrainConfig()
    seed: int = 0
    test_batch_size: int = 1000

    def __post_init__(self):
        if self.num_models < 1:
            raise ConfigError(f"number of evaluation models must be >= 1, got {self.num_models}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_kwargs"] = dict(self.model_kwargs)
        return d


@functools.lru_cache(maxsize=8)
def _trainer(model, train: TrainConfig, num_examples: int) -> Trainer:
    """One Trainer (and so one set of compiled steps) per (model, config, size): the sets of a seed sweep share it."""
    return Trainer(model, train, num_examples)


def test_accuracies(model, states, test_images, test_labels, batch_size: int = 1000) -> np.ndarray:
    """Test accuracy of each network in `states` (stacked on a leading axis)."""
    test_images = jnp.asarray(test_images)
    test_labels = jnp.asarray(test_labels)
    accs = []
    for i in range(states.step.shape[0]):
        one = jax.tree.map(lambda a: a[i], states)
        logits = predict_logits(model, one.params, one.batch_stats, test_images, batch_size)
        accs.append(accuracy(logits, test_labels))
    return np.asarray(accs)


def evaluate_set(images, labels, test_images, test_labels, num_classes: int, config: EvalConfig = EvalConfig(),
                 progress: Callable[[int], None] | None = None, *, done: Sequence[float] = (),
                 done_wall_time_s: float = 0.0,
                 on_network: Callable[[list[float], float], None] | None = None) -> dict[str, Any]:
    """Train `config.num_models` fresh networks on (images, labels) and test them.

    images: (N, H, W, C) normalised float; labels: (N,) int or (N, num_classes) soft. Returns a record with every
    network's accuracy, their mean and std (population std, ddof=0), the config, versions, device and wall time.

    Resuming: `done` holds the test accuracies of the first len(done) networks, known from an earlier call with the
    same config on the same set (their `done_wall_time_s` is added to this call's); only the others are trained.
    `on_network(accuracies, wall_time_s)` is told of the accuracies known so far after each network when networks
    train one after another (the CPU default), or after all of them when they train as one vmapped program. Network
    k is trained from the k-th of num_models keys drawn from config.seed either way, so a resumed evaluation gives
    the accuracies of an uninterrupted one.
    """
    start = time.time()
    accs = [float(a) for a in done]
    if len(accs) > config.num_models:
        raise ConfigError(f"{len(accs)} networks already evaluated, more than the {config.num_models} asked for")
    model = make_model(config.model, num_classes, **dict(config.model_kwargs))
    trainer = _trainer(model, config.train, int(images.shape[0]))
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_models)
    images, labels = jnp.asarray(images, jnp.float32), jnp.asarray(labels)
    first = len(accs)
    if trainer.parallel == "sequential":
        groups = [keys[k:k + 1] for k in range(first, config.num_models)]
    else:
        groups = [keys[first:]] if first < config.num_models else []
    for group in groups:
        states = trainer.run(group, images, labels, progress=progress)
        accs.extend(test_accuracies(model, states, test_images, test_labels, config.test_batch_size).tolist())
        if on_network is not None:
            on_network(list(accs), done_wall_time_s + time.time() - start)
    accs = np.asarray(accs)
    return {
        "accuracies": accs.tolist(),
        "accuracy_mean": float(accs.mean()),
        "accuracy_std": float(accs.std()),
        "num_models": config.num_models,
        "num_train_images": int(images.shape[0]),
        "config": config.to_dict(),
        "versions": versions(),
        "device": device_info(),
        "wall_time_s": done_wall_time_s + time.time() - start,
    }


def summarize(per_set: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool several sets' evaluations (e.g. one per distillation seed): mean +- std over all networks."""
    accs = np.concatenate([np.asarray(r["accuracies"]) for r in per_set])
    return {"accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
            "accuracies": accs.tolist(), "num_sets": len(per_set),
            "set_means": [r["accuracy_mean"] for r in per_set]}
