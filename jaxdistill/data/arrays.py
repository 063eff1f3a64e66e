"""Datasets as device arrays with a per-class index, and jitted per-class sampling.

Images are stored normalised (float32, NHWC) and sorted by class, so class c occupies rows
[class_offsets[c], class_offsets[c] + class_counts[c]). Drawing n images of every class is one jitted gather.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdistill.errors import ConfigError


@struct.dataclass
class RealData:
    """A labelled image set on device, sorted by class (a pytree; pass it into jitted functions)."""
    images: jax.Array  # (N, H, W, C) float32, normalised
    labels: jax.Array  # (N,) int32, sorted
    class_offsets: jax.Array  # (num_classes,) int32
    class_counts: jax.Array  # (num_classes,) int32
    num_classes: int = struct.field(pytree_node=False)
    max_class_count: int = struct.field(pytree_node=False)
    min_class_count: int = struct.field(pytree_node=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


def normalize(images_uint8: np.ndarray, mean, std) -> np.ndarray:
    """uint8 NHWC in [0, 255] -> float32 (x/255 - mean) / std per channel."""
    x = np.asarray(images_uint8, np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def denormalize(images: np.ndarray, mean, std) -> np.ndarray:
    """Inverse of `normalize`, to [0, 1] (clipped), for saving pictures."""
    x = np.asarray(images, np.float32) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(x, 0.0, 1.0)


@partial(jax.jit, static_argnames=("mean", "std"))
def _normalize_device(images_uint8: jax.Array, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
    """`normalize` on device, in the same float32 operations."""
    x = images_uint8.astype(jnp.float32) / jnp.float32(255.0)
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def make_real_data(images: np.ndarray, labels: np.ndarray, num_classes: int, mean=None, std=None) -> RealData:
    """Sort by class, normalise (when mean/std are given; uint8 input assumed then) and put on device."""
    labels = np.asarray(labels).astype(np.int32)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ConfigError(f"labels must be (N,) with N = {images.shape[0]}, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"labels must lie in [0, {num_classes - 1}], found {labels.min()}..{labels.max()}")
    order = np.argsort(labels, kind="stable")
    # Sorted on the host in the input dtype, converted on device: no float32 copies of the whole set on the host.
    x = jnp.asarray(images[order])
    x = _normalize_device(x, tuple(mean), tuple(std)) if mean is not None else x.astype(jnp.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return RealData(images=x, labels=jnp.asarray(labels[order]),
                    class_offsets=jnp.asarray(offsets), class_counts=jnp.asarray(counts),
                    num_classes=num_classes, max_class_count=int(counts.max(initial=0)),
                    min_class_count=int(counts.min()) if counts.size else 0)


def _check_n(real: RealData, n: int) -> None:
    if n < 1:
        raise ConfigError(f"images per class must be >= 1, got {n}")
    if n > real.min_class_count:
        raise ConfigError(f"asked for {n} images per class but the smallest class has {real.min_class_count}")


def class_indices(key: jax.Array, real: RealData, n: int) -> jax.Array:
    """(num_classes, n) row indices: n distinct random images of each class (uniform, without replacement)."""
    u = jax.random.uniform(key, (real.num_classes, real.max_class_count))
    valid = jnp.arange(real.max_class_count)[None, :] < real.class_counts[:, None]
    _, idx = jax.lax.top_k(jnp.where(valid, u, -1.0), n)
    return real.class_offsets[:, None] + idx


@partial(jax.jit, static_argnames="n")
def _sample_per_class(key, real, n):
    idx = class_indices(key, real, n).reshape(-1)
    return real.images[idx], real.labels[idx]


def sample_per_class(key: jax.Array, real: RealData, n: int) -> tuple[jax.Array, jax.Array]:
    """n random images of every class: images (num_classes * n, H, W, C), labels class-major (0,..,0,1,..)."""
    _check_n(real, n)
    return _sample_per_class(key, real, n)


def sample_class(key: jax.Array, real: RealData, c: jax.Array | int, n: int) -> jax.Array:
    """n distinct random images of class c (jit-able; c may be traced). (n, H, W, C)."""
    u = jax.random.uniform(key, (real.max_class_count,))
    valid = jnp.arange(real.max_class_count) < real.class_counts[c]
    _, idx = jax.lax.top_k(jnp.where(valid, u, -1.0), n)
    return real.images[real.class_offsets[c] + idx]
