"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri, Bilen, ICLR 2021).

One outer iteration (`step`):
  1. a fresh randomly initialised network (PyTorch-default init, see models/layers.py);
  2. `outer_loop` times: for every class c, the gradient of the cross-entropy of `batch_real` random real images of
     class c (a constant) is matched against the gradient of the class-c synthetic images (differentiated through)
     with a gradient distance (`matching.py`); the synthetic images take one SGD step (lr 0.1, momentum 0.5) on the
     summed distance; then, except after the last match, the network trains `inner_loop` epochs of plain SGD
     (lr 0.01, batch 256) on the current synthetic set.
(outer_loop, inner_loop) follow the reference's table for ipc 1/10/20/30/40/50.

Deviations from the reference (VICO-UoE/DatasetCondensation): synthetic images are initialised from real images by
default (the reference's flag default is noise; its paper results use real initialisation); batch-norm networks
are refused for now (the reference re-estimates their running statistics on a real batch before matching).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill.data.arrays import RealData, sample_class
from jaxdistill.errors import ConfigError
from jaxdistill.methods.base import Method, register_method
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ConvNet
from jaxdistill.synthetic import INITS, SyntheticSet, init_synthetic
from jaxdistill.train import apply_model, cross_entropy, epoch_batch_indices, sgd_optimizer

# The reference's get_loops: ipc -> (outer_loop, inner_loop).
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclasses.dataclass(frozen=True)
class DCConfig:
    ipc: int = 1
    iterations: int = 1000
    init: str = "real"
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    outer_loop: int | None = None  # None: from LOOPS by ipc
    inner_loop: int | None = None
    distance: str = "ours"
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    pooling: str = "avgpooling"
    conv_impl: str = "auto"  # models/layers.py: 'auto' (per backend and batch), 'xla' or 'matmul'

    TEST_OVERRIDES: ClassVar[dict] = {"batch_real": 2, "width": 8, "depth": 2, "outer_loop": 2, "inner_loop": 1}

    def __post_init__(self):
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.norm == "batchnorm":
            raise ConfigError("DC with a batch-norm network is not supported; use norm='instancenorm' (the default)")
        if (self.outer_loop is None or self.inner_loop is None) and self.ipc not in LOOPS:
            raise ConfigError(f"no (outer_loop, inner_loop) in the reference's table for ipc {self.ipc} "
                              f"(it has {sorted(LOOPS)}); set both outer_loop and inner_loop")
        if self.outer_loop is not None and self.outer_loop < 1:
            raise ConfigError(f"outer_loop must be >= 1, got {self.outer_loop}")
        if self.inner_loop is not None and self.inner_loop < 0:
            raise ConfigError(f"inner_loop must be >= 0, got {self.inner_loop}")
        for name in ("iterations", "batch_real", "batch_train"):
            if getattr(self, name) < (0 if name == "iterations" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        get_gradient_distance(self.distance)

    @property
    def loops(self) -> tuple[int, int]:
        outer, inner = LOOPS.get(self.ipc, (None, None))
        return (self.outer_loop if self.outer_loop is not None else outer,
                self.inner_loop if self.inner_loop is not None else inner)


class DCState(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState  # of the synthetic images' SGD (momentum persists across iterations)
    iteration: jax.Array


@register_method("dc", DCConfig, "gradient matching (Zhao et al., ICLR 2021)")
def dc(config: DCConfig) -> Method:
    outer_loop, inner_loop = config.loops
    distance = get_gradient_distance(config.distance)
    image_opt = optax.sgd(config.lr_img, momentum=config.momentum_img)
    net_opt = sgd_optimizer(config.lr_net)

    def network(real: RealData) -> ConvNet:
        return ConvNet(real.num_classes, width=config.width, depth=config.depth, norm=config.norm,
                       pooling=config.pooling, conv_impl=config.conv_impl)

    def init(key: jax.Array, real: RealData) -> DCState:
        if config.batch_real > real.min_class_count:
            raise ConfigError(f"batch_real {config.batch_real} exceeds the smallest class "
                              f"({real.min_class_count} images); lower batch_real")
        syn = init_synthetic(key, real, config.ipc, config.init)
        return DCState(syn, image_opt.init(syn.images), jnp.zeros((), jnp.int32))

    def class_gradient(net, params, images, label):
        labels = jnp.full((images.shape[0],), label, jnp.int32)
        return jax.grad(lambda p: cross_entropy(apply_model(net, p, {}, images, True)[0], labels))(params)

    def matching_loss(images, params, key, real, net):
        total = jnp.zeros((), jnp.float32)
        # A Python loop over classes inside one program: on XLA:CPU this measured faster than vmapping over
        # classes (whose per-class weight gradients become batched convolutions).
        for c in range(real.num_classes):
            real_c = sample_class(jax.random.fold_in(key, c), real, c, config.batch_real)
            g_real = jax.lax.stop_gradient(class_gradient(net, params, real_c, c))
            syn_c = jax.lax.dynamic_slice_in_dim(images, c * config.ipc, config.ipc)
            total = total + distance(class_gradient(net, params, syn_c, c), g_real)
        return total

    def train_network(params, opt_state, key, syn: SyntheticSet, net):
        n = syn.images.shape[0]
        batch = min(config.batch_train, n)
        steps = inner_loop * -(-n // batch)

        def body(carry, t):
            params, opt_state = carry
            idx, mask = epoch_batch_indices(key, t, n, batch)
            grads = jax.grad(lambda p: cross_entropy(apply_model(net, p, {}, syn.images[idx], True)[0],
                                                     syn.labels[idx], mask))(params)
            updates, opt_state = net_opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), jnp.arange(steps))
        return params, opt_state

    def step(state: DCState, key: jax.Array, real: RealData):
        net = network(real)
        net_key, loop_key = jax.random.split(key)
        params = net.init(net_key, state.synthetic.images[:1], train=True)["params"]
        carry = (state.synthetic, state.opt_state, params, net_opt.init(params), jnp.zeros((), jnp.float32))

        def outer(carry, ol):
            syn, opt_state, params, net_state, loss_sum = carry
            k_match, k_train = jax.random.split(jax.random.fold_in(loop_key, ol))
            loss, grads = jax.value_and_grad(matching_loss)(syn.images, params, k_match, real, net)
            updates, opt_state = image_opt.update(grads, opt_state, syn.images)
            syn = syn._replace(images=optax.apply_updates(syn.images, updates))
            if outer_loop > 1:  # the network trains between matches, never after the last one
                params, net_state = jax.lax.cond(
                    ol < outer_loop - 1,
                    lambda: train_network(params, net_state, k_train, jax.lax.stop_gradient(syn), net),
                    lambda: (params, net_state))
            return (syn, opt_state, params, net_state, loss_sum + loss), None

        if outer_loop == 1:
            carry, _ = outer(carry, 0)
        else:
            carry, _ = jax.lax.scan(outer, carry, jnp.arange(outer_loop))
        syn, opt_state, _, _, loss_sum = carry
        metrics = {"match_loss": loss_sum / (real.num_classes * outer_loop)}
        return DCState(syn, opt_state, state.iteration + 1), metrics

    return Method(init, step, lambda state: state.synthetic)
