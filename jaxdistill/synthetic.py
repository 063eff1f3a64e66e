"""The synthetic set: a pytree of images and labels, initialised from real samples or noise."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdistill.data.arrays import RealData, sample_per_class
from jaxdistill.errors import ConfigError

INITS = ("real", "noise")


class SyntheticSet(NamedTuple):
    """images: (num_classes * ipc, H, W, C) normalised float32; labels: (N,) int32 (hard) or (N, C) float (soft).

    Class-major order: images [c * ipc, (c + 1) * ipc) belong to class c. Evaluation trains with `lr` when it is
    set, as the trajectory-matching papers evaluate their sets.
    """
    images: jax.Array
    labels: jax.Array
    lr: jax.Array | None = None  # the training lr the method learned for this set (MTT, DATM); None: the protocol's


def class_major_labels(num_classes: int, ipc: int) -> jax.Array:
    return jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), ipc)


def init_synthetic(key: jax.Array, real: RealData, ipc: int, init: str = "real") -> SyntheticSet:
    """ipc images per class: random distinct real images ('real') or standard-normal noise ('noise')."""
    if init not in INITS:
        raise ConfigError(f"unknown synthetic init {init!r}; choose one of {', '.join(INITS)}")
    if ipc < 1:
        raise ConfigError(f"ipc (images per class) must be >= 1, got {ipc}")
    if init == "real":
        images, labels = sample_per_class(key, real, ipc)
        return SyntheticSet(images, labels)
    shape = (real.num_classes * ipc,) + real.image_shape
    return SyntheticSet(jax.random.normal(key, shape, jnp.float32), class_major_labels(real.num_classes, ipc))
