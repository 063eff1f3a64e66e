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
    # IDC: `images` are stored multi-formation images of this factor (an int array); training on the set means
    # training on decode_multi_formation(images, factor) with decode_labels(labels, factor). None: images as they are
    factor: jax.Array | None = None


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


# ---- multi-formation (IDC): one stored image holds factor x factor smaller ones -------------------------------------
def decode_multi_formation(images: jax.Array, factor: int, fill: float = 0.0) -> jax.Array:
    """IDC's decoder: (N, H, W, C) stored images -> (factor^2 N, H, W, C) training images. Each stored image is cut
    into factor x factor crops of side ceil(H / factor) (padded at the bottom and right with `fill` when H or W does
    not divide), and each crop is resized back to (H, W) bilinearly with half-pixel centres (PyTorch's
    `nn.Upsample(mode='bilinear')`, align_corners False). Crop-major order, as the reference: crop (0, 0) of every
    image, then (0, 1), ..., (f-1, f-1); `decode_labels` repeats the labels the same way. factor 1: unchanged."""
    if factor == 1:
        return images
    n, h, w, c = images.shape
    side_h, side_w = -(-h // factor), -(-w // factor)
    padded = jnp.pad(images, ((0, 0), (0, side_h * factor - h), (0, side_w * factor - w), (0, 0)),
                     constant_values=fill)
    crops = [padded[:, i * side_h:(i + 1) * side_h, j * side_w:(j + 1) * side_w]
             for i in range(factor) for j in range(factor)]
    return jax.image.resize(jnp.concatenate(crops), (factor * factor * n, h, w, c), "linear", antialias=False)


def decode_labels(labels: jax.Array, factor: int) -> jax.Array:
    """The labels of `decode_multi_formation`'s images: the stored labels repeated factor^2 times, crop-major."""
    return jnp.tile(labels, (factor * factor,) + (1,) * (labels.ndim - 1))


def encode_tiles(images: jax.Array, factor: int) -> jax.Array:
    """IDC's initialisation: (factor^2 n, H, W, C) real images -> (n, H, W, C) stored images; stored image m holds
    real images m, n + m, ..., (factor^2 - 1) n + m, each downsampled to (H / factor, W / factor) by nearest
    neighbour (the reference's `F.interpolate` default) and tiled row-major. Decoding it gives blurred versions of
    those real images in the same order."""
    if factor == 1:
        return images
    total, h, w, c = images.shape
    if total % (factor * factor) or h % factor or w % factor:
        raise ConfigError(f"encode_tiles needs a multiple of {factor * factor} images of a side divisible by "
                          f"{factor}, got {total} of {h}x{w}")
    n = total // (factor * factor)
    small = images[:, ::factor, ::factor]  # nearest: source index floor(dst * factor)
    rows = [jnp.concatenate([small[(i * factor + j) * n:(i * factor + j + 1) * n] for j in range(factor)], axis=2)
            for i in range(factor)]
    return jnp.concatenate(rows, axis=1)
