"""Difficulty-Aligned Trajectory Matching (DATM; Guo, Wang, Zhou, You, ICLR 2024, "Towards lossless dataset
distillation via difficulty-aligned trajectory matching"), built on MTT's pieces (`methods/mtt.py`).

What DATM adds to MTT (reference code: NUS-HPC-AI-Lab/DATM, `distill/DATM.py`, CIFAR configs):
- Initialisation: per class, real images that a label expert (an expert's final parameters) classifies correctly
  (the first `ipc` of a random candidate pool of the class); their soft labels are the label experts' logits,
  averaged over the experts that classify the image correctly.
- Soft labels are learned: the synthetic set carries logits, the student trains on softmax(logits) with soft
  cross-entropy, and the logits take SGD steps (lr_y, momentum 0.9). The evaluation trains on the same softmax.
- Sequential generation: start epochs are drawn from [min_start_epoch, upper) where the upper bound grows linearly
  from current_max_start_epoch to max_start_epoch over expansion_end_epoch iterations.
- An update is applied only when the matching loss is at most `threshold` (images, lr and labels alike).
With hard frozen labels (`soft_labels=False`), a fixed window and no threshold, a DATM update is MTT's (tested).

Deviations: the label experts are the first `label_experts` complete experts of the buffer (the reference uses every
expert of its buffer files), and candidate images come from one pool of min(256, class size) per class; when fewer
than ipc candidates are classified correctly the rest of the pool fills in (the reference keeps searching).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill.data.arrays import sample_per_class
from jaxdistill.data.dsa import default_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods.base import INIT_ITERATION, Method, StepInputs, check_minimums, method, register_method
from jaxdistill.methods.mtt import MTTConfig, check_buffer, matching_loss, window_sampler, within_real
from jaxdistill.synthetic import SyntheticSet, class_major_labels
from jaxdistill.train import apply_model

PyTree = Any


@dataclasses.dataclass(frozen=True)
class DATMConfig(MTTConfig):
    """Defaults: the reference's CIFAR-10 ipc-10 config (syn_steps 80, expert_epochs 2, lr_img 100, ...)."""
    syn_steps: int = 80
    expert_epochs: int = 2
    lr_img: float = 100.0
    max_start_epoch: int = 20
    min_start_epoch: int = 0
    sequential_generation: bool = True
    current_max_start_epoch: int = 10
    expansion_end_epoch: int = 1000
    soft_labels: bool = True
    lr_y: float = 2.0
    momentum_y: float = 0.9
    threshold: float = 1.0
    label_experts: int = 10
    candidate_pool: int = 256
    init: str = "correct"  # real images the label expert classifies correctly

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.min_start_epoch < self.max_start_epoch:
            raise ConfigError(f"need 0 <= min_start_epoch < max_start_epoch, got {self.min_start_epoch} and "
                              f"{self.max_start_epoch}")
        if self.sequential_generation and not self.min_start_epoch < self.current_max_start_epoch <= \
                self.max_start_epoch:
            raise ConfigError("need min_start_epoch < current_max_start_epoch <= max_start_epoch for sequential "
                              "generation")
        if self.init not in ("correct", "real"):
            raise ConfigError(f"DATM init must be 'correct' or 'real', got {self.init!r}")
        check_minimums(self, label_experts=1, candidate_pool=1)


class DATMState(NamedTuple):
    images: jax.Array
    label_logits: jax.Array  # (N, C) learned soft labels (or one-hot * 0 placeholder when hard)
    hard_labels: jax.Array  # (N,) class-major
    syn_lr: jax.Array
    opt_images: PyTree
    opt_lr: PyTree
    opt_y: PyTree


def start_epoch_bounds(config: DATMConfig, iteration: int) -> tuple[int, int]:
    """[low, high) of the start epoch at `iteration`: the sequential-generation schedule, or fixed."""
    if not config.sequential_generation:
        return config.min_start_epoch, config.max_start_epoch
    grown = config.current_max_start_epoch + int(
        (config.max_start_epoch - config.current_max_start_epoch) * iteration / config.expansion_end_epoch)
    return config.min_start_epoch, min(grown, config.max_start_epoch)


def select_correct(key: jax.Array, candidates: jax.Array, candidate_labels: jax.Array, logits: jax.Array,
                   num_classes: int, pool: int, ipc: int) -> jax.Array:
    """Indices (class-major, ipc per class) into class-major `candidates` (pool per class): per class the first
    ipc candidates in a random order that `logits` classify correctly, then (if too few) the others."""
    correct = (jnp.argmax(logits, -1) == candidate_labels).reshape(num_classes, pool)
    order = jax.vmap(lambda k: jax.random.permutation(k, pool))(jax.random.split(key, num_classes))
    rank = jnp.empty_like(order).at[jnp.arange(num_classes)[:, None], order].set(jnp.arange(pool)[None])
    priority = jnp.where(correct, rank, rank + pool)
    chosen = jnp.argsort(priority, axis=1)[:, :ipc]
    return (chosen + jnp.arange(num_classes)[:, None] * pool).reshape(-1)


@register_method("datm", DATMConfig, "difficulty-aligned trajectory matching (Guo et al., ICLR 2024)",
                 iterations=10000, dataset_defaults=lambda dataset: {"dsa_strategy": default_dsa_strategy(dataset)})
def datm(config: DATMConfig) -> Method:
    opt_images = optax.sgd(config.lr_img, momentum=config.momentum)
    opt_lr = optax.sgd(config.lr_lr, momentum=config.momentum)
    opt_y = optax.sgd(config.lr_y, momentum=config.momentum_y)
    windows = window_sampler(config, lambda it: start_epoch_bounds(config, it))

    def host_data(seed: int, iteration: int):
        """The iteration's expert window; for init, the label experts' final parameters (read on the host)."""
        if iteration != INIT_ITERATION:
            return windows(seed, iteration)
        if not (config.init == "correct" or config.soft_labels):
            return []
        buf = windows.buffer.get()
        return [buf.load(s, buf.epochs) for s in buf.experts[:config.label_experts]]

    def init(key: jax.Array, inputs: StepInputs) -> DATMState:
        experts, real = inputs.host, inputs.real
        num_classes = real.num_classes
        pool = min(config.candidate_pool, real.min_class_count)
        if pool < config.ipc:
            raise ConfigError(f"a class has only {real.min_class_count} images, fewer than ipc = {config.ipc}")
        pool_key, pick_key = jax.random.split(key)
        if config.init == "correct":
            candidates, cand_labels = sample_per_class(pool_key, real, pool)
        else:
            candidates, cand_labels = sample_per_class(pool_key, real, config.ipc)
        hard = class_major_labels(num_classes, config.ipc)
        if experts:
            net = config.model.build(num_classes)
            logits = jnp.stack([apply_model(net, p, {}, candidates, False)[0] for p in experts])  # (E, M, C)
        if config.init == "correct":
            idx = select_correct(pick_key, candidates, cand_labels, logits[0], num_classes, pool, config.ipc)
            images = candidates[idx]
            logits = logits[:, idx]
        else:
            images = candidates
        images = within_real(config, images, real)
        if config.soft_labels:
            right = (jnp.argmax(logits, -1) == hard[None]).astype(jnp.float32)[..., None]  # (E, N, 1)
            averaged = jnp.sum(logits * right, 0) / jnp.maximum(jnp.sum(right, 0), 1.0)
            label_logits = jnp.where(jnp.sum(right, 0) > 0, averaged, logits[0])
        else:
            label_logits = jnp.zeros((hard.shape[0], num_classes), jnp.float32)
        syn_lr = jnp.asarray(config.lr_teacher, jnp.float32)
        return DATMState(images, label_logits, hard, syn_lr, opt_images.init(images), opt_lr.init(syn_lr),
                         opt_y.init(label_logits))

    def targets(state_labels, hard):
        return jax.nn.softmax(state_labels, -1) if config.soft_labels else hard

    def step(state: DATMState, key: jax.Array, inputs: StepInputs):
        def loss_fn(images, syn_lr, label_logits):
            return matching_loss(config, images, syn_lr, targets(label_logits, state.hard_labels), inputs.host, key,
                                 inputs.real.num_classes)
        loss, (g_images, g_lr, g_y) = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(
            state.images, state.syn_lr, state.label_logits)
        upd_i, opt_i = opt_images.update(g_images, state.opt_images, state.images)
        upd_l, opt_l = opt_lr.update(g_lr, state.opt_lr, state.syn_lr)
        if config.soft_labels:
            upd_y, opt_yy = opt_y.update(g_y, state.opt_y, state.label_logits)
            new_y = optax.apply_updates(state.label_logits, upd_y)
        else:
            new_y, opt_yy = state.label_logits, state.opt_y
        images = within_real(config, optax.apply_updates(state.images, upd_i), inputs.real)
        new = DATMState(images, new_y, state.hard_labels, optax.apply_updates(state.syn_lr, upd_l), opt_i, opt_l,
                        opt_yy)
        accept = loss <= config.threshold  # the reference skips the whole update above the threshold
        new = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state)
        return new, {"match_loss": loss, "syn_lr": new.syn_lr, "accepted": accept.astype(jnp.float32)}

    def synthetic(state: DATMState) -> SyntheticSet:
        labels = jax.nn.softmax(state.label_logits, -1) if config.soft_labels else state.hard_labels
        return SyntheticSet(state.images, labels, state.syn_lr)

    return method(init, synthetic, step=step, host_data=host_data, check=lambda plan: check_buffer(config, plan))


__all__ = ["DATMConfig", "DATMState", "datm", "select_correct", "start_epoch_bounds"]
