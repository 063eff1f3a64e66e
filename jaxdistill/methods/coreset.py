"""Coreset baselines as methods: random selection (ipc random real images per class), herding and k-center.

They optimise nothing: `init` selects real images and `step` leaves them unchanged, so they run through the same
runner, checkpoints and evaluation as every learned method and anchor the results table (DC paper, MNIST ipc
1 / 10 / 50: random 64.9 / 95.1 / 97.9, herding 89.2 / 93.7 / 94.8, k-center 89.3 / 84.4 / 97.4).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdistill.data.arrays import RealData
from jaxdistill.errors import ConfigError, positive_finite
from jaxdistill.methods.base import Method, method, register_method
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import SyntheticSet, class_major_labels, init_synthetic


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    ipc: int = 1

    def __post_init__(self):
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")


class RandomState(NamedTuple):
    synthetic: SyntheticSet
    iteration: jax.Array


def _count_iteration(state, key, inputs):
    """A selection's step: the images stay as selected; only the iteration count moves."""
    del key, inputs
    return state._replace(iteration=state.iteration + 1), {}


@register_method("random", RandomConfig, "random real images per class (coreset baseline)", iterations=0)
def random_selection(config: RandomConfig) -> Method:
    def init(key, inputs):
        return RandomState(init_synthetic(key, inputs.real, config.ipc, "real"), jnp.zeros((), jnp.int32))

    return method(init, lambda state: state.synthetic, step=_count_iteration)


# ---- herding and k-center on a trained network's features -------------------------------------------------------
#
# The DC paper (Zhao et al., ICLR 2021, Table 1) reports two selection baselines beside random: herding (Welling
# 2009, as Rebuffi et al.'s iCaRL and Castro et al. use it: greedily add the image that keeps the mean of the chosen
# features closest to the class mean) and k-center (Sener & Savarese 2018: greedily add the image farthest from the
# chosen ones), both on the features of a ConvNet trained on the whole training set. The paper does not say how long
# that network trains; we train it for `feature_epochs` epochs of SGD (lr 0.01, momentum 0.9, batch 256, no
# augmentation) from the seed's key, which reaches about 98 % on MNIST after one epoch. The selection itself is
# deterministic given the features; k-center starts from the image nearest the class mean (Sener & Savarese start
# from an arbitrary point).

@dataclasses.dataclass(frozen=True)
class FeatureCoresetConfig:
    ipc: int = 1
    model: ModelConfig = ModelConfig("convnet")
    feature_epochs: float = 1.0  # training of the feature network, in passes over the training set
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    chunk: int = 500  # images embedded at once

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")
        if self.feature_epochs <= 0 or self.batch_size < 1 or self.chunk < 1 or not positive_finite(self.lr):
            raise ConfigError("feature_epochs and lr must be > 0 (lr finite), batch_size and chunk >= 1")
        if self.model.name != "convnet":
            raise ConfigError(f"the coreset baselines select on a ConvNet's features; got model {self.model}")


def train_feature_network(key: jax.Array, real: RealData, config: FeatureCoresetConfig):
    """(network, params, batch_stats) of `config.model` trained on all of `real` for `config.feature_epochs` epochs
    of shuffled minibatches (pure: one `lax.scan`)."""
    import optax

    from jaxdistill.methods.gradient_matching import epoch_batches, train_network
    init_key, data_key = jax.random.split(key)
    net = config.model.build(real.num_classes)
    variables = net.init(init_key, real.images[:1], train=True)
    params, stats = variables["params"], variables.get("batch_stats", {})
    tx = optax.sgd(config.lr, momentum=config.momentum)
    batch_at, per_epoch = epoch_batches(real.images, real.labels, data_key, config.batch_size, lambda k, x: x)
    steps = max(1, int(round(config.feature_epochs * per_epoch)))
    params, stats, _ = train_network(net, tx, params, stats, tx.init(params), batch_at, steps, unroll=False)
    return net, params, stats


def class_features(net, params, stats, real: RealData, chunk: int) -> tuple[jax.Array, jax.Array]:
    """(features (C, M, D), valid (C, M)): every training image's embedding, grouped by class and padded to the
    largest class M = real.max_class_count (padding rows are invalid)."""
    n = real.images.shape[0]
    pad = -n % chunk
    images = jnp.pad(real.images, ((0, pad),) + ((0, 0),) * (real.images.ndim - 1))

    def embed(x):
        variables = {"params": params, **({"batch_stats": stats} if stats else {})}
        return net.apply(variables, x, train=False, embed=True)
    feats = jax.lax.map(embed, images.reshape((-1, chunk) + real.image_shape)).reshape(n + pad, -1)[:n]
    slots = jnp.arange(real.max_class_count)
    valid = slots[None, :] < real.class_counts[:, None]
    index = jnp.where(valid, real.class_offsets[:, None] + slots[None, :], 0)
    return feats[index], valid


def _valid_mean(features: jax.Array, valid: jax.Array) -> jax.Array:
    """The mean of the valid rows of `features` (M, D): the class mean the selections start from."""
    return jnp.sum(jnp.where(valid[:, None], features, 0.0), 0) / jnp.maximum(valid.sum(), 1)


def herding_select(features: jax.Array, valid: jax.Array, k: int) -> jax.Array:
    """Herding in one class: `k` distinct row indices of `features` (M, D), chosen greedily so that the mean of the
    chosen rows stays closest to the mean of the valid rows."""
    mu = _valid_mean(features, valid)

    def pick(carry, i):
        total, free = carry
        gap = jnp.sum((mu - (total + features) / (i + 1.0)) ** 2, axis=1)
        j = jnp.argmin(jnp.where(free, gap, jnp.inf))
        return (total + features[j], free.at[j].set(False)), j
    _, chosen = jax.lax.scan(pick, (jnp.zeros_like(mu), valid), jnp.arange(k))
    return chosen


def kcenter_select(features: jax.Array, valid: jax.Array, k: int) -> jax.Array:
    """Greedy k-center in one class: the row nearest the class mean, then repeatedly the row farthest (Euclidean)
    from every row chosen so far."""
    mu = _valid_mean(features, valid)
    first = jnp.argmin(jnp.where(valid, jnp.sum((features - mu) ** 2, 1), jnp.inf))

    def dist(j):
        return jnp.sum((features - features[j]) ** 2, 1)

    def pick(nearest, _):
        j = jnp.argmax(jnp.where(valid, nearest, -jnp.inf))
        return jnp.minimum(nearest, dist(j)), j
    _, rest = jax.lax.scan(pick, dist(first), None, length=k - 1)
    return jnp.concatenate([first[None], rest])


SELECTORS = {"herding": herding_select, "kcenter": kcenter_select}


def feature_coreset(kind: str):
    select = SELECTORS[kind]

    def build(config: FeatureCoresetConfig) -> Method:
        def check(plan):
            if config.ipc > plan.min_class_count:
                raise ConfigError(f"ipc {config.ipc} exceeds the smallest class ({plan.min_class_count} images)")
            return {"selection": kind, "feature_network": str(config.model), "feature_epochs": config.feature_epochs}

        def init(key, inputs):
            real = inputs.real
            net, params, stats = train_feature_network(key, real, config)
            feats, valid = class_features(net, params, stats, real, config.chunk)
            chosen = jax.vmap(lambda f, v: select(f, v, config.ipc))(feats, valid)  # (C, ipc) slots in each class
            images = real.images[(real.class_offsets[:, None] + chosen).reshape(-1)]
            return RandomState(SyntheticSet(images, class_major_labels(real.num_classes, config.ipc)),
                               jnp.zeros((), jnp.int32))

        return method(init, lambda state: state.synthetic, step=_count_iteration, check=check)
    return build


register_method("herding", FeatureCoresetConfig, "herding on trained ConvNet features (coreset baseline)",
                iterations=0)(feature_coreset("herding"))
register_method("kcenter", FeatureCoresetConfig, "greedy k-center on trained ConvNet features (coreset baseline)",
                iterations=0)(feature_coreset("kcenter"))
