"""Matching Training Trajectories (MTT; Cazenavette, Wang, Torralba, Efros, Zhu, CVPR 2022).

Per outer iteration (reference code: GeorgeCazenavette/mtt-distillation, `distill.py`): an expert trajectory and a
start epoch t < max_start_epoch are drawn; a student network starts from the expert's parameters theta*_t and takes
`syn_steps` SGD steps on minibatches of the synthetic set (DSA augmentation with per-image draws) with the learnable
learning rate `syn_lr`; the loss is

    ||theta_student - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2,        M = expert_epochs,

and the images and `syn_lr` take one SGD step each (momentum 0.5; lr_img and lr_lr). Minibatches walk through random
permutations of the synthetic set in chunks of `batch_syn` (all images by default), as the reference does.

The student trajectory is a `lax.scan` over the steps whose body is wrapped in `jax.checkpoint`: the backward pass
keeps only the parameters between steps and recomputes each step's activations, so memory grows by one parameter
vector per step instead of a whole step's activations (`remat=False` keeps them, for comparison; see
scripts/bench_mtt.py).

The expert window is host data: the driver calls `Method.host_data(seed, iteration)` before each step, which reads
two snapshots from the buffer (`jaxdistill.experts.ExpertBuffer`), and passes them to `step` as `inputs.host`.
Deviation from the reference: experts are drawn uniformly at random (seeded by seed and iteration, so a resumed run
draws the same windows) instead of walking shuffled buffer files.

Option beyond the reference (off by default): `clip_to_real` clamps the synthetic pixels to the range of the real
training images after every update (projected gradient descent), which the reference leaves unbounded; DATM has it too.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdistill.data.dsa import DSAParams, default_dsa_strategy, dsa_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill import policy
from jaxdistill.methods.base import (INIT_ITERATION, Method, RunPlan, StepInputs, check_minimums, method,
                                     register_method)
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import SyntheticSet, init_synthetic
from jaxdistill.train import apply_model, cross_entropy, epoch_batch_indices

PyTree = Any


@dataclasses.dataclass(frozen=True)
class MTTConfig:
    """Defaults: the reference's flag defaults (its CIFAR-10 settings per ipc are in experiments/)."""
    ipc: int = 1
    buffer_dir: str = ""  # a folder made by `jaxdistill experts` (required)
    syn_steps: int = 20
    expert_epochs: int = 3
    max_start_epoch: int = 25
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01  # the initial syn_lr
    momentum: float = 0.5
    batch_syn: int | None = None  # None: all synthetic images every step
    init: str = "real"
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    model: ModelConfig = ModelConfig("convnet")  # must be the experts'
    remat: bool = True
    unroll: int = 1
    clip_to_real: bool = False  # clamp the pixels to the real training images' range after each update (not in the
    # reference, whose sets drift far outside it: a network with no normalisation layer then trains unstably on them)

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        check_minimums(self, ipc=1, syn_steps=1, expert_epochs=1, max_start_epoch=1, unroll=1)
        if self.batch_syn is not None and self.batch_syn < 1:
            raise ConfigError(f"batch_syn must be >= 1 (or None for all images), got {self.batch_syn}")
        parse_dsa_strategy(self.dsa_strategy)
        if not isinstance(self.clip_to_real, bool):
            raise ConfigError(f"clip_to_real must be true or false, got {self.clip_to_real!r}")


class MTTState(NamedTuple):
    synthetic: SyntheticSet
    syn_lr: jax.Array  # scalar, learned
    opt_images: PyTree
    opt_lr: PyTree


class ExpertWindow(NamedTuple):
    """One matching target: the expert's parameters at the start epoch and expert_epochs later."""
    start: PyTree
    target: PyTree


def squared_norm(tree: PyTree) -> jax.Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def trajectory_loss(student: PyTree, start: PyTree, target: PyTree) -> jax.Array:
    """||student - target||^2 / ||start - target||^2 over all parameters."""
    diff = jax.tree.map(jnp.subtract, student, target)
    span = jax.tree.map(jnp.subtract, start, target)
    return squared_norm(diff) / squared_norm(span)


def student_trajectory(model, images: jax.Array, labels: jax.Array, syn_lr: jax.Array, start: PyTree,
                       key: jax.Array, syn_steps: int, batch_syn: int, augment, remat: bool = True,
                       unroll: int = 1) -> PyTree:
    """The student's parameters after `syn_steps` SGD steps (lr `syn_lr`) from `start` on (augmented) minibatches
    of (images, labels); differentiable w.r.t. images, labels (soft) and syn_lr."""
    shuffle_key, aug_key = jax.random.split(key)
    n = images.shape[0]

    def step(params, t):
        idx, mask = epoch_batch_indices(shuffle_key, t, n, batch_syn)
        x = augment(jax.random.fold_in(aug_key, t), images[idx])
        y = labels[idx]
        grad = jax.grad(lambda p: cross_entropy(apply_model(model, p, {}, x, True)[0], y, mask))(params)
        return jax.tree.map(lambda p, g: p - syn_lr * g, params, grad), None

    if remat:
        step = jax.checkpoint(step)
    final, _ = jax.lax.scan(step, start, jnp.arange(syn_steps, dtype=jnp.int32), unroll=unroll)
    return final


def student_network(config: MTTConfig, num_classes: int):
    """The student network. A ConvNet takes the policy's student kernel: its steps are differentiated twice, and on
    XLA:CPU its own convolution gradients are 9x (10 images) to 16x (100 images) slower than the im2col matmul
    (measured with scripts/bench_mtt.py's setting, README "Performance")."""
    impl = policy.current().student_conv_impl
    extra = {"conv_impl": impl} if config.model.name == "convnet" and impl != "auto" else {}
    return config.model.build(num_classes, **extra)


def matching_loss(config: MTTConfig, images: jax.Array, syn_lr: jax.Array, targets: jax.Array,
                  window: ExpertWindow, key: jax.Array, num_classes: int) -> jax.Array:
    """MTT's loss for one window: the student (from window.start, `syn_steps` steps of lr `syn_lr` on the
    DSA-augmented synthetic set with `targets`, int labels or probabilities) against window.target."""
    net = student_network(config, num_classes)
    use_dsa = bool(parse_dsa_strategy(config.dsa_strategy))

    def augment(k, x):
        return dsa_augment(k, x, config.dsa_strategy, DSAParams(), siamese=False) if use_dsa else x
    batch = min(config.batch_syn or images.shape[0], images.shape[0])
    final = student_trajectory(net, images, targets, syn_lr, window.start, key, config.syn_steps, batch, augment,
                               config.remat, config.unroll)
    return trajectory_loss(final, window.start, window.target)


def within_real(config: MTTConfig, images: jax.Array, real) -> jax.Array:
    """`images` clamped to [min, max] of the real training images when `config.clip_to_real`, else unchanged."""
    if not config.clip_to_real:
        return images
    return jnp.clip(images, jnp.min(real.images), jnp.max(real.images))


def window_sampler(config: MTTConfig, bounds=None) -> Callable[[int, int], ExpertWindow]:
    """host_data(seed, iteration) -> the iteration's expert window, drawn from (seed, iteration) alone (() for
    init). `bounds(iteration) -> (min_start, max_start)` narrows the start epochs (DATM); default
    [0, max_start_epoch)."""
    buffer = _LazyBuffer(config.buffer_dir)

    def host_data(seed: int, iteration: int) -> ExpertWindow | tuple:
        if iteration == INIT_ITERATION:
            return ()
        rng = np.random.default_rng([int(seed), int(iteration), 0x4D5454])
        low, high = bounds(iteration) if bounds is not None else (0, config.max_start_epoch)
        _, _, start, target = buffer.get().sample_window(rng, config.expert_epochs, high, low)
        return ExpertWindow(start, target)
    host_data.buffer = buffer
    return host_data


def check_buffer(config: MTTConfig, plan: RunPlan) -> dict[str, Any]:
    """Before a run: the buffer exists, and its experts were trained with the method's network, on the run's
    preprocessing, for long enough for the method's windows."""
    from jaxdistill.experts import ExpertBuffer
    if not config.buffer_dir:
        raise ConfigError("trajectory matching needs buffer_dir: a folder of expert trajectories made by "
                          "`jaxdistill experts`")
    buffer = ExpertBuffer(config.buffer_dir)
    expert = buffer.manifest.get("config", {})
    model = ModelConfig(expert.get("model", "convnet"), dict(expert.get("model_kwargs", {})))
    if model != config.model:
        raise ConfigError(f"the experts in {config.buffer_dir} are {model}, the method's network is {config.model}; "
                          f"set model={model}")
    if bool(expert.get("zca", False)) != plan.zca:
        was = "with" if expert.get("zca") else "without"
        raise ConfigError(f"the experts in {config.buffer_dir} were trained {was} ZCA whitening; distil {was} it too")
    if config.max_start_epoch - 1 + config.expert_epochs > buffer.epochs:
        raise ConfigError(f"windows of {config.expert_epochs} epochs starting before epoch {config.max_start_epoch} "
                          f"do not fit the {buffer.epochs}-epoch experts in {config.buffer_dir}; lower max_start_epoch")
    return {"experts": len(buffer.experts), "expert_epochs_trained": buffer.epochs}


@register_method("mtt", MTTConfig, "matching training trajectories (Cazenavette et al., CVPR 2022)",
                 iterations=5000, dataset_defaults=lambda dataset: {"dsa_strategy": default_dsa_strategy(dataset)})
def mtt(config: MTTConfig) -> Method:
    opt_images = optax.sgd(config.lr_img, momentum=config.momentum)
    opt_lr = optax.sgd(config.lr_lr, momentum=config.momentum)

    def init(key: jax.Array, inputs: StepInputs) -> MTTState:
        syn = init_synthetic(key, inputs.real, config.ipc, config.init)
        syn = syn._replace(images=within_real(config, syn.images, inputs.real))
        syn_lr = jnp.asarray(config.lr_teacher, jnp.float32)
        return MTTState(syn, syn_lr, opt_images.init(syn.images), opt_lr.init(syn_lr))

    def step(state: MTTState, key: jax.Array, inputs: StepInputs):
        syn = state.synthetic
        loss, (g_images, g_lr) = jax.value_and_grad(
            lambda x, lr: matching_loss(config, x, lr, syn.labels, inputs.host, key, inputs.real.num_classes),
            argnums=(0, 1))(
            syn.images, state.syn_lr)
        upd, opt_i = opt_images.update(g_images, state.opt_images, syn.images)
        upd_lr, opt_l = opt_lr.update(g_lr, state.opt_lr, state.syn_lr)
        new = MTTState(syn._replace(images=within_real(config, optax.apply_updates(syn.images, upd), inputs.real)),
                       optax.apply_updates(state.syn_lr, upd_lr), opt_i, opt_l)
        return new, {"match_loss": loss, "syn_lr": new.syn_lr}

    return method(init, lambda state: state.synthetic._replace(lr=state.syn_lr), step=step,
                  host_data=window_sampler(config), check=lambda plan: check_buffer(config, plan))


class _LazyBuffer:
    """Opens the expert buffer on first use (building the method must not need the files)."""

    def __init__(self, path: str):
        self.path = path
        self._buffer = None

    def get(self):
        if self._buffer is None:
            if not self.path:
                raise ConfigError("MTT needs buffer_dir: a folder of expert trajectories made by `jaxdistill experts`")
            from jaxdistill.experts import ExpertBuffer
            self._buffer = ExpertBuffer(self.path)
        return self._buffer
