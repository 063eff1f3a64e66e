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

from jaxdistill import metrics as metrics_lib
from jaxdistill import policy
from jaxdistill.errors import ConfigError
from jaxdistill.models import ModelConfig
from jaxdistill.records import device_info, versions
from jaxdistill.train import Trainer, TrainConfig, predict_logits_stacked


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Which network to train and how, and what to measure. Defaults: the DC protocol (ConvNet, 1000 epochs, 20
    networks, accuracy). `model` is a ModelConfig or its spelling ('convnet:width=64')."""
    model: ModelConfig = ModelConfig("convnet")
    num_models: int = 20
    train: TrainConfig = TrainConfig()
    seed: int = 0
    test_batch_size: int = 1000
    metrics: tuple = ("accuracy",)  # names in jaxdistill.metrics.METRICS, computed per network
    # None: the networks' keys come from `seed` alone, so every set evaluated with this config meets the same
    # networks (the seeding of records made before 2026-12); an int (the set's distillation seed): from `seed` folded
    # with it, so each set of a sweep meets its own networks
    set_seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if self.num_models < 1:
            raise ConfigError(f"number of evaluation models must be >= 1, got {self.num_models}")
        metrics_lib.check_names(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"], d["metrics"] = str(self.model), list(self.metrics)
        return d


EVAL_PROTOCOLS = ("dc", "idc")


def protocol_train_config(protocol: str, spec, epochs: int = 1000, augment: str | None = None,
                          factor: int = 1, **overrides: Any) -> TrainConfig:
    """How an evaluation network trains under a named protocol, for dataset `spec`:

    'dc'   DC's (and DSA's, MTT's): batch 256, SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr x0.1 at half the
           epochs; `augment` as given (the caller's default: DC's per-dataset setting, or DSA's for DSA sets).
    'idc'  IDC's (snu-mllab/Efficient-Dataset-Condensation, test.py): batch 64, the same SGD, lr x0.2 after 2/3 and
           5/6 of the epochs; per-image IDC augmentation of the dataset's DSA strategy without cutout
           (`idc:color_crop_scale_rotate` on MNIST), then CutMix with probability 0.5 per batch except on MNIST
           at `factor` > 1 (the set's multi-formation factor; 1 for sets of other methods), unless `augment` names
           one.
    """
    if protocol == "dc":
        return TrainConfig(epochs=epochs, augment=augment or "none", **overrides)
    if protocol == "idc":
        if augment is None:
            from jaxdistill.methods.idc import cutmix_probability
            ops = [op for op in spec.defaults.dsa_strategy.split("_") if op != "cutout"]
            prob = cutmix_probability(spec.name == "mnist", factor)
            augment = "idc:" + "_".join(ops) + (f"+cutmix:{prob:g}" if prob else "")
        return TrainConfig(**{"epochs": epochs, "batch_size": 64, "lr_milestones": (2 / 3, 5 / 6), "lr_gamma": 0.2,
                              "augment": augment, **overrides})
    raise ConfigError(f"unknown evaluation protocol {protocol!r}; choose one of {', '.join(EVAL_PROTOCOLS)}")


@functools.lru_cache(maxsize=8)
def _trainer(model, train: TrainConfig, num_examples: int) -> Trainer:
    """One Trainer (and so one set of compiled steps) per (model, config, size): the sets of a seed sweep share it."""
    return Trainer(model, train, num_examples)


def test_metrics(model, states, test_images, test_labels, names=("accuracy",), batch_size: int = 1000
                 ) -> list[dict[str, Any]]:
    """Per network in `states` (stacked on a leading axis): {metric: value} on the test set (`jaxdistill.metrics`;
    the number of classes is the logits' width).

    The networks' logits are predicted as the policy runs several networks (one vmapped program, or one network
    after another on XLA:CPU; `batch_size` bounds the test images of one call either way), and every metric of every
    network is then computed on device as one program (`metrics.compute_batch`)."""
    vmap = policy.current().seeds == "vmap"
    logits = predict_logits_stacked(model, states.params, states.batch_stats, test_images, batch_size, vmap=vmap)
    return metrics_lib.compute_batch(tuple(names), logits, test_labels, int(logits.shape[-1]))


def test_accuracies(model, states, test_images, test_labels, batch_size: int = 1000) -> np.ndarray:
    """Test accuracy of each network in `states` (stacked on a leading axis)."""
    return np.asarray([m["accuracy"] for m in test_metrics(model, states, test_images, test_labels, ("accuracy",),
                                                           batch_size)])


def network_keys(config: EvalConfig) -> jax.Array:
    """The num_models keys the evaluation networks train from: drawn from config.seed, folded first with
    config.set_seed when it is set."""
    base = jax.random.PRNGKey(config.seed)
    if config.set_seed is not None:
        base = jax.random.fold_in(base, config.set_seed)
    return jax.random.split(base, config.num_models)


def check_first_networks_reusable(config: EvalConfig, first: Sequence[dict[str, Any] | float],
                                  drawn: int | None = None) -> None:
    """Refuse networks evaluated before (`first`: each one's metrics, or its accuracy; their evaluation drew `drawn`
    keys, default as many as there are networks) as the first ones of an evaluation by `config` with another number
    of networks unless they are no more, have config's metrics and trained from the same keys: jax.random.split's
    keys do not depend on how many it draws only with jax_threefry_partitionable on (JAX's default since 0.5)."""
    n = len(first)
    if n == 0:
        return
    if n > config.num_models:
        raise ConfigError(f"{n} networks evaluated before, more than the {config.num_models} asked for")
    known = first[0] if isinstance(first[0], dict) else {"accuracy": None}  # (a bare number: the accuracy)
    missing = [m for m in config.metrics if m not in known]
    if missing:
        raise ConfigError(f"the networks evaluated before lack the metrics {', '.join(missing)} that this "
                          "evaluation records")
    before = network_keys(dataclasses.replace(config, num_models=drawn or n))[:n]
    if not np.array_equal(np.asarray(before), np.asarray(network_keys(config)[:n])):
        raise ConfigError(f"{n} networks evaluated before cannot be the first of {config.num_models}: this JAX "
                          "draws other network keys for another number of networks (jax_threefry_partitionable "
                          "is off)")


def evaluate_set(images, labels, test_images, test_labels, num_classes: int, config: EvalConfig = EvalConfig(),
                 progress: Callable[[int], None] | None = None, *, done: Sequence[dict[str, Any]] = (),
                 done_wall_time_s: float = 0.0,
                 on_network: Callable[[list[dict[str, Any]], float], None] | None = None) -> dict[str, Any]:
    """Train `config.num_models` fresh networks on (images, labels) and test them.

    images: (N, H, W, C) normalised float; labels: (N,) int or (N, num_classes) soft. Returns a record with every
    network's metrics (`config.metrics`, a dict per network), the accuracies with their mean and std (population
    std, ddof=0) and those of every scalar metric, the config, versions, device and wall time.

    Resuming: `done` holds the metrics of the first len(done) networks, known from an earlier call with the same
    config on the same set (their `done_wall_time_s` is added to this call's); only the others are trained.
    `on_network(metrics, wall_time_s)` is told of the metrics known so far after each network when networks train
    one after another (the CPU default), or after all of them when they train as one vmapped program. Network k is
    trained from the k-th of num_models keys drawn from config.seed (folded with config.set_seed when set) either
    way, so a resumed evaluation gives the metrics of an uninterrupted one.
    """
    start = time.time()
    per_network = [dict(m) if isinstance(m, dict) else {"accuracy": float(m)} for m in done]
    if len(per_network) > config.num_models:
        raise ConfigError(f"{len(per_network)} networks already evaluated, more than the {config.num_models} asked "
                          f"for")
    metrics_lib.check_names(config.metrics, num_classes)  # before any training: e.g. specificity on 10 classes
    model = config.model.build(num_classes)
    trainer = _trainer(model, config.train, int(images.shape[0]))
    keys = network_keys(config)
    images, labels = jnp.asarray(images, jnp.float32), jnp.asarray(labels)
    first = len(per_network)
    if trainer.parallel == "sequential":
        groups = [keys[k:k + 1] for k in range(first, config.num_models)]
    else:
        groups = [keys[first:]] if first < config.num_models else []
    for group in groups:
        states = trainer.run(group, images, labels, progress=progress)
        per_network.extend(test_metrics(model, states, test_images, test_labels, config.metrics,
                                        config.test_batch_size))
        if on_network is not None:
            on_network(list(per_network), done_wall_time_s + time.time() - start)
    return {**summarize_networks(per_network), "num_models": config.num_models,
            "num_train_images": int(images.shape[0]), "config": config.to_dict(), "versions": versions(),
            "device": device_info(), "wall_time_s": done_wall_time_s + time.time() - start}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and all(_is_number(v) for v in value)


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_vector(row) for row in value)


def summarize_networks(per_network: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-network metrics -> the record's summary: accuracies and their mean and std (population std), the mean
    and std of every scalar metric (by name), per element for list metrics such as recall_per_class (lists in metrics_mean /
    metrics_std), and for count tables such as the confusion matrix (kept per network) their sum over networks as
    `<name>_total`, e.g. `confusion_matrix_total`. NaN (an undefined metric, e.g. the AUC of a test set with one
    class) stays NaN in the mean."""
    first = per_network[0] if per_network else {}  # keys sorted: networks read back from JSON come sorted
    vectors = sorted(k for k, v in first.items() if _is_number(v) or _is_vector(v))
    tables = [k for k, v in first.items() if _is_table(v)]
    values = {k: np.asarray([m[k] for m in per_network], np.float64) for k in vectors}
    accs = values.get("accuracy", np.zeros(0))

    def listed(a: np.ndarray) -> float | list[float]:
        return a.tolist() if a.ndim else float(a)
    out = {"accuracies": accs.tolist(), "accuracy_mean": float(accs.mean()) if accs.size else float("nan"),
           "accuracy_std": float(accs.std()) if accs.size else float("nan"), "metrics": per_network,
           "metrics_mean": {k: listed(v.mean(0)) for k, v in values.items()},
           "metrics_std": {k: listed(v.std(0)) for k, v in values.items()}}
    for k in tables:
        out[f"{k}_total"] = np.sum([np.asarray(m[k], np.int64) for m in per_network], axis=0).tolist()
    return out


def summarize(per_set: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool several sets' evaluations (e.g. one per distillation seed): mean +- std over all networks, and the
    pooled metrics' summary (`summarize_networks`) when every set recorded per-network metrics."""
    accs = np.concatenate([np.asarray(r["accuracies"]) for r in per_set])
    out = {"accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
           "accuracies": accs.tolist(), "num_sets": len(per_set),
           "set_means": [r["accuracy_mean"] for r in per_set]}
    if all("metrics" in r for r in per_set):
        pooled = summarize_networks([m for r in per_set for m in r["metrics"]])
        out.update({k: v for k, v in pooled.items() if k.startswith("metrics_") or k.endswith("_total")})
    return out
