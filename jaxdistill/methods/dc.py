"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri, Bilen, ICLR 2021) and its augmented variant with
Differentiable Siamese Augmentation (DSA; Zhao, Bilen, ICML 2021), on the gradient-matching engine.

One outer iteration (`step`): a fresh randomly initialised network (PyTorch-default init); then `outer_loop` times:
for every class c, the gradient of the cross-entropy of `batch_real` random real images of class c (a constant) is
matched against the gradient of the class-c synthetic images (differentiated through) with a gradient distance
(`matching.py`); the images take one SGD step (lr 0.1, momentum 0.5) on the summed distance; then, except after the
last match, the network trains `inner_loop` epochs of plain SGD (lr 0.01, batch 256) on the current synthetic set.
(outer_loop, inner_loop) follow the reference's table for ipc 1/10/20/30/40/50.

DSA (`dsa_strategy` other than 'none'; method name 'dsa' sets the paper's strategy): class c's real batch and its
synthetic images go through the same randomly drawn differentiable augmentation (one draw shared by both batches,
`jaxdistill.data.dsa`); the training between matches augments every batch with per-image draws, as the reference.

Deviations from the reference (VICO-UoE/DatasetCondensation): images start from real ones by default (its flag
default is noise; its paper results use real images); DSA draws come from `jax.random`, keyed per iteration and class
(the reference seeds PyTorch from the wall clock).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill import policy
from jaxdistill.data.dsa import DSA_STRATEGY, DSAParams, default_dsa_strategy, dsa_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods.base import Method, RunPlan, StepLoop, check_minimums, method, register_method
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import INITS, SyntheticSet, init_synthetic
from jaxdistill.train import sgd_optimizer

LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}  # reference's get_loops


def reference_loops(ipc: int, outer_loop: int | None, inner_loop: int | None) -> tuple[int, int]:
    """(outer_loop, inner_loop): each as given, else from the reference's table by ipc (ConfigError when the table
    has no row for ipc and one is not given)."""
    if (outer_loop is None or inner_loop is None) and ipc not in LOOPS:
        raise ConfigError(f"no (outer_loop, inner_loop) in the reference's table for ipc {ipc} "
                          f"(it has {sorted(LOOPS)}); set both outer_loop and inner_loop")
    outer, inner = LOOPS.get(ipc, (None, None))
    return (outer_loop if outer_loop is not None else outer, inner_loop if inner_loop is not None else inner)


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
        check_minimums(self, ipc=1, outer_loop=1, inner_loop=0, batch_real=1, batch_train=1, batch_bn=1)
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        reference_loops(self.ipc, self.outer_loop, self.inner_loop)
        parse_dsa_strategy(self.dsa_strategy)
        get_gradient_distance(self.distance)

    @property
    def loops(self) -> tuple[int, int]:
        return reference_loops(self.ipc, self.outer_loop, self.inner_loop)


@dataclasses.dataclass(frozen=True)
class DSAConfig(DCConfig):
    dsa_strategy: str = DSA_STRATEGY  # DC with the DSA paper's augmentation strategy


class DCState(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState  # of the synthetic images' SGD (momentum persists across iterations)
    iteration: jax.Array


class Carry(NamedTuple):  # what one iteration's matches pass along: the images, the fresh network and its training
    synthetic: SyntheticSet
    opt_state: optax.OptState
    params: Any
    batch_stats: Any
    net_opt_state: optax.OptState
    loss_sum: jax.Array
    loop_key: jax.Array
    iteration: jax.Array


def gradient_matching(config: DCConfig) -> Method:
    outer_loop, inner_loop = config.loops
    image_opt, net_opt = optax.sgd(config.lr_img, momentum=config.momentum_img), sgd_optimizer(config.lr_net)
    use_dsa = bool(parse_dsa_strategy(config.dsa_strategy))

    def augment(key, images, siamese):
        return dsa_augment(key, images, config.dsa_strategy, DSAParams(), siamese=siamese) if use_dsa else images

    def check(plan: RunPlan):
        for name in ("batch_real",) + (("batch_bn",) if config.model.get("norm") == "batchnorm" else ()):
            if getattr(config, name) > plan.min_class_count:
                raise ConfigError(f"{name} {getattr(config, name)} exceeds the smallest class "
                                  f"({plan.min_class_count} images); lower {name}")

    def init(key, inputs) -> DCState:
        syn = init_synthetic(key, inputs.real, config.ipc, config.init)
        return DCState(syn, image_opt.init(syn.images), jnp.zeros((), jnp.int32))

    def begin(state: DCState, key, inputs) -> Carry:
        net_key, loop_key = jax.random.split(key)
        variables = config.model.build(inputs.real.num_classes).init(net_key, state.synthetic.images[:1], train=True)
        params = variables["params"]
        return Carry(state.synthetic, state.opt_state, params, variables.get("batch_stats", {}), net_opt.init(params),
                     jnp.zeros((), jnp.float32), loop_key, state.iteration)

    def match(c: Carry, ol, inputs) -> Carry:
        """Match `ol`: batch-norm statistics from real data, then real and synthetic gradients, one image step."""
        real, net = inputs.real, config.model.build(inputs.real.num_classes)
        k_bn, k_match, _ = jax.random.split(jax.random.fold_in(c.loop_key, ol), 3)
        stats = c.batch_stats  # batch norm, as the reference: statistics of batch_bn real images per class, frozen
        if stats:
            stats = gm.batch_norm_statistics(net, c.params, stats, gm.per_class_images(k_bn, real, config.batch_bn))
        matching = gm.class_matching(real, config.batch_real, config.ipc, augment,
                                     get_gradient_distance(config.distance),
                                     real_chunks=policy.current().chunks_for(config.batch_real))
        images, opt_state, loss = gm.match(matching, c.synthetic.images, c.opt_state, image_opt, net, c.params, stats,
                                           k_match, policy.current().class_loop)
        return c._replace(synthetic=c.synthetic._replace(images=images), opt_state=opt_state, batch_stats=stats,
                          loss_sum=c.loss_sum + loss)

    def match_then_train(c: Carry, ol, inputs) -> Carry:
        """Every match but the last is followed by `inner_loop` epochs of training on the synthetic set."""
        c = match(c, ol, inputs)
        syn, train_key = jax.lax.stop_gradient(c.synthetic), jax.random.split(jax.random.fold_in(c.loop_key, ol), 3)[2]
        batch_at, per_epoch = gm.epoch_batches(syn.images, syn.labels, train_key, config.batch_train,
                                               lambda key, images: augment(key, images, False))
        params, stats, net_state = gm.train_network(config.model.build(inputs.real.num_classes), net_opt, c.params,
                                                    c.batch_stats, c.net_opt_state, batch_at, inner_loop * per_epoch,
                                                    policy.current().unroll_inner)
        return c._replace(params=params, batch_stats=stats, net_opt_state=net_state)

    def end(c: Carry, inputs):
        c = match(c, outer_loop - 1, inputs)
        return DCState(c.synthetic, c.opt_state, c.iteration + 1), {
            "match_loss": c.loss_sum / (inputs.real.num_classes * outer_loop)}

    return method(init, lambda state: state.synthetic, check=check,
                  loop=StepLoop(begin, match_then_train, outer_loop - 1, end))


register_method("dc", DCConfig, "gradient matching (Zhao et al., ICLR 2021)", iterations=1000)(gradient_matching)
register_method("dsa", DSAConfig, "gradient matching with differentiable siamese augmentation (Zhao & Bilen, "
                                  "ICML 2021)", iterations=1000,
                dataset_defaults=lambda dataset: {"dsa_strategy": default_dsa_strategy(dataset)})(gradient_matching)
