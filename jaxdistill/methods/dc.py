"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri, Bilen, ICLR 2021) and its augmented variant with
Differentiable Siamese Augmentation (DSA; Zhao, Bilen, ICML 2021), on the gradient-matching engine.

One outer iteration (`step`):
  1. a fresh randomly initialised network (PyTorch-default init, see models/layers.py);
  2. `outer_loop` times: for every class c, the gradient of the cross-entropy of `batch_real` random real images of
     class c (a constant) is matched against the gradient of the class-c synthetic images (differentiated through)
     with a gradient distance (`matching.py`); the synthetic images take one SGD step (lr 0.1, momentum 0.5) on the
     summed distance; then, except after the last match, the network trains `inner_loop` epochs of plain SGD
     (lr 0.01, batch 256) on the current synthetic set.
(outer_loop, inner_loop) follow the reference's table for ipc 1/10/20/30/40/50.

DSA (`dsa_strategy` other than 'none'; method name 'dsa' sets the paper's strategy): class c's real batch and its
synthetic images go through the same randomly drawn differentiable augmentation (one draw shared by both batches,
`jaxdistill.data.dsa`); the training between matches augments every batch with per-image draws, as the reference.

Batch norm (a model with norm=batchnorm), as the reference: before every match the network runs in training mode on
`batch_bn` real images per class to set its running statistics, frozen for the match; training runs in training mode.

Deviations from the reference (VICO-UoE/DatasetCondensation): synthetic images are initialised from real images by
default (the reference's flag default is noise; its paper results use real initialisation); DSA's random draws come
from `jax.random`, keyed per iteration and class, where the reference seeds PyTorch from the wall clock.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill import policy
from jaxdistill.data.arrays import sample_class
from jaxdistill.data.dsa import DSA_STRATEGY, DSAParams, default_dsa_strategy, dsa_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods.base import Method, RunPlan, StepLoop, method, register_method
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import INITS, SyntheticSet, init_synthetic
from jaxdistill.train import epoch_batch_indices, sgd_optimizer

LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}  # reference's get_loops


@dataclasses.dataclass(frozen=True)
class DCConfig:
    ipc: int = 1
    init: str = "real"
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    outer_loop: int | None = None  # None: from LOOPS by ipc
    inner_loop: int | None = None
    distance: str = "ours"
    model: ModelConfig = ModelConfig("convnet")  # width 128, depth 3, instance norm, average pooling
    dsa_strategy: str = "none"  # DSA: augmentation names joined by '_' (jaxdistill.data.dsa); 'none' is plain DC
    batch_bn: int = 16  # real images per class that set a batch-norm network's statistics before each match

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if (self.outer_loop is None or self.inner_loop is None) and self.ipc not in LOOPS:
            raise ConfigError(f"no (outer_loop, inner_loop) in the reference's table for ipc {self.ipc} "
                              f"(it has {sorted(LOOPS)}); set both outer_loop and inner_loop")
        for name, low in (("outer_loop", 1), ("inner_loop", 0), ("batch_real", 1), ("batch_train", 1),
                          ("batch_bn", 1)):
            if getattr(self, name) is not None and getattr(self, name) < low:
                raise ConfigError(f"{name} must be >= {low}, got {getattr(self, name)}")
        parse_dsa_strategy(self.dsa_strategy)
        get_gradient_distance(self.distance)

    @property
    def loops(self) -> tuple[int, int]:
        outer, inner = LOOPS.get(self.ipc, (None, None))
        return (self.outer_loop if self.outer_loop is not None else outer,
                self.inner_loop if self.inner_loop is not None else inner)


@dataclasses.dataclass(frozen=True)
class DSAConfig(DCConfig):
    """DC with the DSA paper's augmentation strategy."""
    dsa_strategy: str = DSA_STRATEGY


class DCState(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState  # of the synthetic images' SGD (momentum persists across iterations)
    iteration: jax.Array


def gradient_matching(config: DCConfig) -> Method:
    outer_loop, inner_loop = config.loops
    image_opt, net_opt = optax.sgd(config.lr_img, momentum=config.momentum_img), sgd_optimizer(config.lr_net)
    use_dsa = bool(parse_dsa_strategy(config.dsa_strategy))

    def augment(key, images, siamese):
        return dsa_augment(key, images, config.dsa_strategy, DSAParams(), siamese=siamese) if use_dsa else images

    def matching(real, syn_labels) -> gm.Matching:
        """Per class: batch_real augmented real images against the class's ipc synthetic images."""
        def real_batch(k_sample, k_aug, c):
            images = augment(k_aug, sample_class(k_sample, real, c, config.batch_real), True)
            return images, jnp.full((config.batch_real,), c, jnp.int32)

        def syn_batch(images, k_aug, c):
            own = jax.lax.dynamic_slice_in_dim(images, c * config.ipc, config.ipc)  # class-major (init_synthetic)
            return augment(k_aug, own, True), jnp.full((config.ipc,), c, jnp.int32)

        return gm.Matching(real.num_classes, real_batch, syn_batch, gm.mean_gradient, gm.mean_gradient,
                           get_gradient_distance(config.distance), lambda images: images,
                           policy.current().chunks_for(config.batch_real))

    def check(plan: RunPlan):
        for name in ("batch_real",) + (("batch_bn",) if config.model.get("norm") == "batchnorm" else ()):
            if getattr(config, name) > plan.min_class_count:
                raise ConfigError(f"{name} {getattr(config, name)} exceeds the smallest class "
                                  f"({plan.min_class_count} images); lower {name}")

    def init(key, inputs) -> DCState:
        syn = init_synthetic(key, inputs.real, config.ipc, config.init)
        return DCState(syn, image_opt.init(syn.images), jnp.zeros((), jnp.int32))

    def begin(state: DCState, key, inputs):
        net_key, loop_key = jax.random.split(key)
        variables = config.model.build(inputs.real.num_classes).init(net_key, state.synthetic.images[:1], train=True)
        params, stats = variables["params"], variables.get("batch_stats", {})
        return (state.synthetic, state.opt_state, params, stats, net_opt.init(params), jnp.zeros((), jnp.float32),
                loop_key, state.iteration)

    def match(carry, ol, inputs):
        """Match `ol`: batch-norm statistics, then real and synthetic gradients and one SGD step on the images."""
        syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration = carry
        real, net = inputs.real, config.model.build(inputs.real.num_classes)
        k_bn, k_match, _ = jax.random.split(jax.random.fold_in(loop_key, ol), 3)
        if stats:
            bn_images = jnp.concatenate([sample_class(jax.random.fold_in(k_bn, c), real, c, config.batch_bn)
                                         for c in range(real.num_classes)])
            stats = gm.batch_norm_statistics(net, params, stats, bn_images)
        images, opt_state, loss = gm.match(matching(real, syn.labels), syn.images, opt_state, image_opt, net, params,
                                           stats, k_match, policy.current().class_loop)
        return syn._replace(images=images), opt_state, params, stats, net_state, loss_sum + loss, loop_key, iteration

    def match_then_train(carry, ol, inputs):
        """Every match but the last is followed by `inner_loop` epochs of training on the synthetic set."""
        syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration = match(carry, ol, inputs)
        shuffle_key, aug_key = jax.random.split(jax.random.split(jax.random.fold_in(loop_key, ol), 3)[2])
        frozen, n = jax.lax.stop_gradient(syn), syn.images.shape[0]
        batch = min(config.batch_train, n)

        def batch_at(t):
            idx, mask = epoch_batch_indices(shuffle_key, t, n, batch)
            return augment(jax.random.fold_in(aug_key, t), frozen.images[idx], False), frozen.labels[idx], mask

        params, stats, net_state = gm.train_network(config.model.build(inputs.real.num_classes), net_opt, params,
                                                    stats, net_state, batch_at, inner_loop * -(-n // batch),
                                                    policy.current().unroll_inner)
        return syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration

    def end(carry, inputs):
        syn, opt_state, _, _, _, loss_sum, _, iteration = match(carry, outer_loop - 1, inputs)
        return DCState(syn, opt_state, iteration + 1), {
            "match_loss": loss_sum / (inputs.real.num_classes * outer_loop)}

    return method(init, lambda state: state.synthetic, check=check,
                  loop=StepLoop(begin, match_then_train, outer_loop - 1, end))


register_method("dc", DCConfig, "gradient matching (Zhao et al., ICLR 2021)", iterations=1000)(gradient_matching)
register_method("dsa", DSAConfig, "gradient matching with differentiable siamese augmentation (Zhao & Bilen, "
                                  "ICML 2021)", iterations=1000,
                dataset_defaults=lambda dataset: {"dsa_strategy": default_dsa_strategy(dataset)})(gradient_matching)
