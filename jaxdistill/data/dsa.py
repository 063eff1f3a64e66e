"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021) as pure JAX functions.

DSA augments the real and the synthetic batch of a class with the *same* random transformation
while gradient matching, and keeps the transformation differentiable so that gradients reach the
synthetic images. This module follows the reference code (``utils.py`` of VICO-UoE/
DatasetCondensation: ``ParamDiffAug``, ``DiffAugment`` and the ``rand_*`` functions).

A *strategy* is operation names joined by ``'_'``; ``'none'``, ``'None'`` and ``''`` mean no
augmentation. The operation groups, with the magnitudes of :class:`DSAParams`, are

``color``
    brightness, then saturation, then contrast, each with its own ``u ~ U(0, 1)``:
    ``x + (u - 0.5) * brightness``; ``(x - m_c) * (u * saturation) + m_c`` with ``m_c`` the mean
    over channels of each pixel; ``(x - m) * (u + contrast) + m`` with ``m`` the mean of each image.
``crop``
    integer translation: ``out[i, j] = x[i + t_h, j + t_w]``, zero where that falls outside,
    ``t ~ randint(-s, s)`` inclusive with ``s = int(size * ratio_crop_pad + 0.5)`` per axis. (The
    reference clamps indices into a one-pixel zero-padded copy; both clamp targets are padding,
    so every shifted-in pixel is zero, whatever the shift.)
``cutout``
    zero a ``k_h x k_w`` block, ``k = int(size * ratio_cutout + 0.5)``, spanning
    ``o - k // 2 .. o - k // 2 + k - 1`` per axis clipped to the image, ``o ~ randint(0,
    size + 1 - k % 2)`` exclusive: the reference's clamped block.
``flip``
    reverse the width axis where ``u < prob_flip``.
``scale``
    ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zero padding, ``align_corners=False``) with
    ``theta = [[s_x, 0, 0], [0, s_y, 0]]``, ``s_x, s_y ~ U(1 / ratio_scale, ratio_scale)``
    independently; ``s_x`` scales the normalised width coordinate, ``s_y`` the height coordinate.
``rot90``
    turn each image by ``k`` quarter turns, ``k ~ randint(0, 4)``, like ``np.rot90(x, k, axes=(1, 2))``
    (anticlockwise); exact (a permutation of pixels), for square images. Not in the reference: added for
    histology, whose label does not depend on orientation (MHIST's strategy, ``DSA_HISTOLOGY_STRATEGY``).
``rotate``
    the same sampling with ``theta = [[cos a, -sin a, 0], [sin a, cos a, 0]]``,
    ``a ~ U(-ratio_rotate, ratio_rotate)`` degrees; ``a = 90`` turns an image like ``np.rot90``
    (anticlockwise).

With ``aug_mode='S'`` (the reference default) each call draws ONE group uniformly from the
strategy's list (repeats weigh more) and applies it to the whole batch; ``'M'`` applies every
group in order. ``siamese=True`` draws every random value once, as a scalar, and shares it across
the batch (the reference computes per-image values and overwrites them with the first image's),
so the same key transforms batches of any size identically: use it for the real and synthetic
batch of a class. ``siamese=False`` draws per-image values (the reference's ``seed=-1``, used when
training networks on the synthetic set), still one group per call.

Images are NHWC float batches (the reference's dim 2 is our axis 1, dim 3 our axis 2, its channel
dim 1 our axis 3). :func:`dsa_augment` is jit-able with ``strategy``, ``params`` and ``siamese``
static, vmap-able over keys and differentiable w.r.t. the images; in ``'S'`` mode it picks the
group with ``lax.switch``, so under ``jit`` only the chosen group runs (under ``vmap`` over keys
the switch becomes a select and every group runs).

Deviations from the reference: random numbers come from ``jax.random`` (streams differ from
torch's, and one key replaces its ``seed``/``latestseed`` counter); siamese draws are scalars
instead of the first of a per-image draw; the affine grid uses ``(2 j + 1 - W) / W`` for the base
coordinates, equal to torch's up to float32 rounding.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxdistill.data.registry import DSA_DIGIT_STRATEGY, DSA_STRATEGY, DatasetSpec, find_spec
from jaxdistill.errors import ConfigError

__all__ = [
    "DSA_OPS",
    "DSA_STRATEGY",
    "DSA_DIGIT_STRATEGY",
    "DSAParams",
    "affine_sample",
    "brightness",
    "contrast",
    "cutout",
    "default_dsa_strategy",
    "dsa_strategy_for",
    "dsa_augment",
    "dsa_augmentation",
    "flip_width",
    "parse_dsa_strategy",
    "rotate90",
    "rotate_theta",
    "saturation",
    "scale_theta",
    "translate",
]

#: Operation groups a strategy may combine (the reference's ``AUGMENT_FNS``).
DSA_OPS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate", "rot90")

# DSA_STRATEGY (the DSA paper's, for FashionMNIST and CIFAR-10/100) and DSA_DIGIT_STRATEGY (the reference readme's
# for the digit datasets MNIST and SVHN, without flip) are defined with the dataset defaults and re-exported here.

_NONE_STRATEGIES = ("none", "None", "")


@dataclasses.dataclass(frozen=True)
class DSAParams:
    """DSA magnitudes, defaulting to the reference's ``ParamDiffAug``.

    ``aug_mode`` is ``'S'`` (one group per call) or ``'M'`` (all groups in order). Hashable, so it
    can be a static argument of ``jax.jit``.
    """

    aug_mode: str = "S"
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        if self.aug_mode not in ("S", "M"):
            raise ConfigError(f"DSA aug_mode must be 'S' or 'M', got {self.aug_mode!r}")
        if not self.ratio_scale > 0:
            raise ConfigError(f"DSA ratio_scale must be positive, got {self.ratio_scale!r}")
        for name in ("ratio_crop_pad", "ratio_cutout"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"DSA {name} must be non-negative, got {getattr(self, name)!r}")


def parse_dsa_strategy(strategy: str | None) -> tuple[str, ...]:
    """The strategy's groups in order, repeats kept; ``()`` for ``'none'``, ``'None'``, ``''``.

    Raises ``ConfigError`` naming :data:`DSA_OPS` for an unknown group.
    """
    if strategy is None or strategy in _NONE_STRATEGIES:
        return ()
    if not isinstance(strategy, str):
        raise ConfigError(f"DSA strategy must be a string, got {strategy!r}")
    ops = tuple(strategy.split("_"))
    unknown = sorted({op for op in ops if op not in DSA_OPS})
    if unknown:
        raise ConfigError(
            f"unknown DSA operation(s) {', '.join(map(repr, unknown))} in strategy {strategy!r}: "
            f"known operations are {', '.join(DSA_OPS)} (joined by '_'), or 'none'"
        )
    return ops


# Unregistered names keep the rule this function had before the defaults moved onto the specs: the digit datasets
# (the reference readme names MNIST and SVHN) get the strategy without flip, every other name the paper's.
_DIGIT_DATASETS = ("mnist", "svhn")


def dsa_strategy_for(spec: DatasetSpec) -> str:
    """The DSA strategy a spec declares (``spec.defaults.dsa_strategy``)."""
    return spec.defaults.dsa_strategy


def default_dsa_strategy(dataset_name: str | DatasetSpec) -> str:
    """The reference's DSA strategy for a dataset (case-insensitive name, or a spec).

    A registered dataset's strategy is its spec's ``defaults.dsa_strategy``. The DatasetCondensation readme (DSA
    section) says to use ``color_crop_cutout_flip_scale_rotate`` for FashionMNIST and CIFAR-10/100 and
    ``color_crop_cutout_scale_rotate`` for the digit datasets MNIST and SVHN, "as flip augmentation is not good for
    digit datasets"; a name that is not registered gets :data:`DSA_DIGIT_STRATEGY` if it is ``'svhn'`` (or
    ``'mnist'``), else :data:`DSA_STRATEGY`.
    """
    spec = find_spec(dataset_name)
    if spec is not None:
        return dsa_strategy_for(spec)
    return DSA_DIGIT_STRATEGY if str(dataset_name).strip().lower() in _DIGIT_DATASETS else DSA_STRATEGY


# --------------------------------------------------------------------------------------------
# Operations with explicit random values. A value is a scalar (shared by the batch) or has one
# entry per image.
# --------------------------------------------------------------------------------------------


def _per_image(values, dtype) -> jax.Array:
    """Scalar -> scalar, ``(N,)`` -> ``(N, 1, 1, 1)``, for broadcasting against NHWC."""
    values = jnp.asarray(values, dtype)
    return values.reshape(values.shape + (1, 1, 1)) if values.ndim == 1 else values


def brightness(images, u, ratio: float = 1.0) -> jax.Array:
    """``images + (u - 0.5) * ratio``."""
    images = jnp.asarray(images)
    return images + (_per_image(u, images.dtype) - 0.5) * ratio


def saturation(images, u, ratio: float = 2.0) -> jax.Array:
    """``(images - m) * (u * ratio) + m`` with ``m`` each pixel's mean over channels."""
    images = jnp.asarray(images)
    mean = jnp.mean(images, axis=3, keepdims=True)
    return (images - mean) * (_per_image(u, images.dtype) * ratio) + mean


def contrast(images, u, ratio: float = 0.5) -> jax.Array:
    """``(images - m) * (u + ratio) + m`` with ``m`` each image's mean over H, W and C."""
    images = jnp.asarray(images)
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) * (_per_image(u, images.dtype) + ratio) + mean


def flip_width(images, u, prob: float = 0.5) -> jax.Array:
    """Reverse the width axis of the images whose ``u < prob``."""
    images = jnp.asarray(images)
    return jnp.where(_per_image(u, jnp.float32) < prob, images[:, :, ::-1, :], images)


def rotate90(images, k) -> jax.Array:
    """Turn square NHWC images by ``k`` quarter turns anticlockwise (``np.rot90(x, k, axes=(1, 2))``); ``k`` is a
    scalar or one int per image (taken mod 4)."""
    images = jnp.asarray(images)
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"rot90 needs square images, got {images.shape[1]}x{images.shape[2]}")
    k = jnp.mod(jnp.asarray(k, jnp.int32), 4)
    turned = jnp.stack([jnp.rot90(images, r, axes=(1, 2)) for r in range(4)])  # (4, N, H, W, C)
    if k.ndim == 0:
        return jnp.take(turned, k, axis=0)
    return jnp.take_along_axis(turned, k.reshape(1, -1, 1, 1, 1), axis=0)[0]


def _translate(images: jax.Array, shift_h, shift_w, pad_h: int, pad_w: int) -> jax.Array:
    """Integer translation with zero fill; shifts are clipped to ``[-pad, pad]``."""
    _, height, width, channels = images.shape
    shift_h = jnp.clip(jnp.asarray(shift_h, jnp.int32), -pad_h, pad_h)
    shift_w = jnp.clip(jnp.asarray(shift_w, jnp.int32), -pad_w, pad_w)
    padded = jnp.pad(images, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    if shift_h.ndim == 0 and shift_w.ndim == 0:
        zero = jnp.zeros((), jnp.int32)
        return jax.lax.dynamic_slice(
            padded, (zero, pad_h + shift_h, pad_w + shift_w, zero), images.shape
        )
    shift_h, shift_w = jnp.broadcast_arrays(shift_h, shift_w)

    def one(image, dh, dw):
        zero = jnp.zeros((), jnp.int32)
        return jax.lax.dynamic_slice(
            image, (pad_h + dh, pad_w + dw, zero), (height, width, channels)
        )

    return jax.vmap(one)(padded, shift_h, shift_w)


def translate(images, shift_h, shift_w) -> jax.Array:
    """DSA's crop with explicit shifts: ``out[n, i, j] = images[n, i + shift_h, j + shift_w]``.

    Zero where the source lies outside the image. Shifts are integers, scalars or one per image.
    """
    images = jnp.asarray(images)
    _, height, width, _ = images.shape
    return _translate(images, shift_h, shift_w, height, width)


def cutout(images, offset_h, offset_w, size_h: int, size_w: int) -> jax.Array:
    """Zero the block of rows ``offset_h - size_h // 2 + [0, size_h)`` (and likewise columns).

    The block is clipped to the image, which is what the reference's index clamping yields.
    Offsets are integers, scalars or one per image; sizes are static. Sizes below 1 zero nothing.
    """
    images = jnp.asarray(images)
    if size_h < 1 or size_w < 1:
        return images
    _, height, width, _ = images.shape

    def inside(offset, size: int, length: int) -> jax.Array:
        start = jnp.expand_dims(jnp.asarray(offset, jnp.int32), -1) - size // 2
        low = jnp.clip(start, 0, length - 1)
        high = jnp.clip(start + size - 1, 0, length - 1)
        index = jnp.arange(length, dtype=jnp.int32)
        return (index >= low) & (index <= high)

    rows = inside(offset_h, size_h, height)
    cols = inside(offset_w, size_w, width)
    block = rows[..., :, None] & cols[..., None, :]
    return images * jnp.logical_not(block).astype(images.dtype)[..., None]


def scale_theta(sx, sy) -> jax.Array:
    """The affine matrices ``[[sx, 0, 0], [0, sy, 0]]``: shape ``(2, 3)`` or ``(N, 2, 3)``."""
    sx, sy = jnp.broadcast_arrays(jnp.asarray(sx, jnp.float32), jnp.asarray(sy, jnp.float32))
    zero = jnp.zeros_like(sx)
    return jnp.stack([jnp.stack([sx, zero, zero], -1), jnp.stack([zero, sy, zero], -1)], -2)


def rotate_theta(radians) -> jax.Array:
    """The matrices ``[[cos a, sin(-a), 0], [sin a, cos a, 0]]``: ``(2, 3)`` or ``(N, 2, 3)``."""
    angle = jnp.asarray(radians, jnp.float32)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    zero = jnp.zeros_like(angle)
    return jnp.stack([jnp.stack([cos, -sin, zero], -1), jnp.stack([sin, cos, zero], -1)], -2)


def _bilinear_zeros(images: jax.Array, ix: jax.Array, iy: jax.Array) -> jax.Array:
    """Bilinear sampling at pixel coordinates, corners outside the image counting as zero.

    ``ix`` (width) and ``iy`` (height) are ``(H, W)``, shared by the batch, or ``(N, H, W)``.
    """
    n, height, width, _ = images.shape
    x0, y0 = jnp.floor(ix), jnp.floor(iy)
    x1, y1 = x0 + 1.0, y0 + 1.0
    batch = None if ix.ndim == 2 else jnp.arange(n)[:, None, None]
    out = None
    for yc, xc, weight in (
        (y0, x0, (x1 - ix) * (y1 - iy)),
        (y0, x1, (ix - x0) * (y1 - iy)),
        (y1, x0, (x1 - ix) * (iy - y0)),
        (y1, x1, (ix - x0) * (iy - y0)),
    ):
        valid = (xc >= 0) & (xc <= width - 1) & (yc >= 0) & (yc <= height - 1)
        yi = jnp.clip(yc, 0, height - 1).astype(jnp.int32)
        xi = jnp.clip(xc, 0, width - 1).astype(jnp.int32)
        values = images[:, yi, xi] if batch is None else images[batch, yi, xi]
        term = values * jnp.where(valid, weight, 0.0).astype(images.dtype)[..., None]
        out = term if out is None else out + term
    return out


def affine_sample(images, theta) -> jax.Array:
    """``F.grid_sample(x, F.affine_grid(theta, x.shape))`` with PyTorch's defaults, for NHWC.

    Bilinear, zero padding, ``align_corners=False``. ``theta`` is ``(2, 3)`` (shared by the batch)
    or ``(N, 2, 3)``; its first row gives the normalised width coordinate ``x`` sampled for each
    output pixel, its second row the height coordinate ``y``, both ``[-1, 1]`` across pixel edges.
    Differentiable w.r.t. ``images``.
    """
    images = jnp.asarray(images)
    _, height, width, _ = images.shape
    theta = jnp.asarray(theta, jnp.float32)
    xs = (2.0 * jnp.arange(width, dtype=jnp.float32) + (1 - width)) / width
    ys = (2.0 * jnp.arange(height, dtype=jnp.float32) + (1 - height)) / height
    t = theta[..., None, None]  # (..., 2, 3, 1, 1)
    gx = t[..., 0, 0, :, :] * xs[None, :] + t[..., 0, 1, :, :] * ys[:, None] + t[..., 0, 2, :, :]
    gy = t[..., 1, 0, :, :] * xs[None, :] + t[..., 1, 1, :, :] * ys[:, None] + t[..., 1, 2, :, :]
    ix = ((gx + 1.0) * width - 1.0) / 2.0
    iy = ((gy + 1.0) * height - 1.0) / 2.0
    return _bilinear_zeros(images, ix, iy).astype(images.dtype)


# --------------------------------------------------------------------------------------------
# Random groups
# --------------------------------------------------------------------------------------------

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]


def _group(op: str, params: DSAParams, siamese: bool) -> Augmentation:
    """``f(key, images)`` applying group ``op`` with freshly drawn values."""

    def uniform(key, images, dtype=jnp.float32):
        return jax.random.uniform(key, () if siamese else images.shape[:1], dtype)

    def randint(key, images, low: int, high: int):
        return jax.random.randint(key, () if siamese else images.shape[:1], low, high)

    def color(key, images):
        kb, ks, kc = jax.random.split(key, 3)
        dtype = images.dtype
        images = brightness(images, uniform(kb, images, dtype), params.brightness)
        images = saturation(images, uniform(ks, images, dtype), params.saturation)
        return contrast(images, uniform(kc, images, dtype), params.contrast)

    def crop(key, images):
        _, height, width, _ = images.shape
        pad_h = int(height * params.ratio_crop_pad + 0.5)
        pad_w = int(width * params.ratio_crop_pad + 0.5)
        kh, kw = jax.random.split(key)
        shift_h = randint(kh, images, -pad_h, pad_h + 1)
        shift_w = randint(kw, images, -pad_w, pad_w + 1)
        return _translate(images, shift_h, shift_w, pad_h, pad_w)

    def cut(key, images):
        _, height, width, _ = images.shape
        size_h = int(height * params.ratio_cutout + 0.5)
        size_w = int(width * params.ratio_cutout + 0.5)
        kh, kw = jax.random.split(key)
        offset_h = randint(kh, images, 0, height + (1 - size_h % 2))
        offset_w = randint(kw, images, 0, width + (1 - size_w % 2))
        return cutout(images, offset_h, offset_w, size_h, size_w)

    def flip(key, images):
        return flip_width(images, uniform(key, images), params.prob_flip)

    def scale(key, images):
        ratio = params.ratio_scale
        kx, ky = jax.random.split(key)
        sx = uniform(kx, images) * (ratio - 1.0 / ratio) + 1.0 / ratio
        sy = uniform(ky, images) * (ratio - 1.0 / ratio) + 1.0 / ratio
        return affine_sample(images, scale_theta(sx, sy))

    def rotate(key, images):
        angle = (uniform(key, images) - 0.5) * 2.0 * params.ratio_rotate / 180.0 * jnp.pi
        return affine_sample(images, rotate_theta(angle))

    def rot90(key, images):
        return rotate90(images, randint(key, images, 0, 4))

    return {
        "color": color,
        "crop": crop,
        "cutout": cut,
        "flip": flip,
        "scale": scale,
        "rotate": rotate,
        "rot90": rot90,
    }[op]


def dsa_augment(
    key: jax.Array,
    images,
    strategy: str = DSA_STRATEGY,
    params: DSAParams = DSAParams(),
    siamese: bool = False,
) -> jax.Array:
    """Apply the DSA ``strategy`` to an NHWC float batch (see the module docstring).

    Jit with ``static_argnames=('strategy', 'params', 'siamese')``. With ``siamese=True`` the
    drawn transformation depends on ``key`` only, not on the batch size. Raises ``ConfigError``
    for an unknown strategy and ``ValueError`` for a batch that is not NHWC float.
    """
    ops = parse_dsa_strategy(strategy)
    images = jnp.asarray(images)
    if not ops:
        return images
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(
            f"expected an NHWC float batch, got {images.dtype} of shape {images.shape}"
        )
    if params.aug_mode == "M":
        for op, op_key in zip(ops, jax.random.split(key, len(ops))):
            images = _group(op, params, siamese)(op_key, images)
        return images
    unique = tuple(dict.fromkeys(ops))
    choice_key, op_key = jax.random.split(key)
    if len(unique) == 1:
        return _group(unique[0], params, siamese)(op_key, images)
    drawn = jax.random.randint(choice_key, (), 0, len(ops))
    which = jnp.asarray([unique.index(op) for op in ops], jnp.int32)[drawn]
    branches = [_group(op, params, siamese) for op in unique]
    return jax.lax.switch(which, branches, op_key, images)


def dsa_augmentation(
    strategy: str = DSA_STRATEGY, params: DSAParams = DSAParams(), siamese: bool = False
) -> Augmentation:
    """A jitted ``f(key, images) -> images`` applying :func:`dsa_augment`.

    The same arguments give the same function object, so its compilations are shared.
    """
    parse_dsa_strategy(strategy)
    if not isinstance(params, DSAParams):
        raise ConfigError(f"DSA params must be a DSAParams, got {type(params).__name__}")
    return _jitted_augmentation(strategy, params, bool(siamese))


@functools.lru_cache(maxsize=None)
def _jitted_augmentation(strategy: str, params: DSAParams, siamese: bool) -> Augmentation:
    def augment(key: jax.Array, images) -> jax.Array:
        return dsa_augment(key, images, strategy, params, siamese)

    kind = "siamese" if siamese else "per-image"
    augment.__name__ = augment.__qualname__ = f"dsa_augment_{strategy or 'none'}"
    augment.__doc__ = f"DSA augmentation {strategy!r} ({kind} draws, {params})."
    return jax.jit(augment)


def idc_augment(key: jax.Array, images, strategy: str, siamese: bool = False, params: DSAParams = DSAParams()
                ) -> jax.Array:
    """IDC's composition of the DSA operations (snu-mllab/Efficient-Dataset-Condensation, `DiffAug`): 'color'
    always when the strategy has it, then ONE of the remaining geometric groups drawn uniformly (DSA's 'S' mode over
    them), then 'cutout' when the strategy has it. Same magnitudes as DSA (`DSAParams`); `siamese` as in
    `dsa_augment`."""
    ops = parse_dsa_strategy(strategy)
    k_color, k_geometric, k_cutout = jax.random.split(key, 3)
    if "color" in ops:
        images = dsa_augment(k_color, images, "color", params, siamese)
    geometric = [op for op in ops if op not in ("color", "cutout")]
    if geometric:
        images = dsa_augment(k_geometric, images, "_".join(geometric), dataclasses.replace(params, aug_mode="S"),
                             siamese)
    if "cutout" in ops:
        images = dsa_augment(k_cutout, images, "cutout", params, siamese)
    return images
