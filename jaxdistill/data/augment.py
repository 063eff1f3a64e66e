"""Evaluation-time augmentation of Dataset Condensation (DC), as pure JAX functions.

When DC trains a fresh network on a synthetic set it augments each batch: every image gets exactly
one operation, drawn uniformly from the operations of a *strategy* (operation names joined by
``'_'``, e.g. ``'crop_scale_rotate'``). The four operations, with the DC defaults
(:data:`DC_AUG_DEFAULTS`), are

``crop``
    Pad by ``crop`` pixels on every side with the per-channel mean of the whole batch and cut an
    ``H x W`` window whose top-left corner ``(r, c)`` is drawn from ``{0, ..., 2*crop - 1}`` each
    (the shift by the full ``+crop`` never occurs, as in DC).
``scale``
    Resize to ``h = int(u_h * H)``, ``w = int(u_w * H)`` with ``u ~ U(1 - scale, 1 + scale)``
    (both sizes derive from the height, as in DC) with PyTorch's ``'nearest'`` rule, paste the
    result centred on a zero canvas of side ``max(h, w, H, W)`` and cut the centred ``H x W``
    window.
``rotate``
    Rotate by an integer angle drawn from ``{-rotate, ..., rotate - 1}`` degrees on an enlarged
    canvas (``scipy.ndimage.rotate`` with ``reshape=True``), filling with the mean of the
    per-channel batch means, and cut the centred ``H x W`` window.
``noise``
    Add ``noise * N(0, 1)`` per pixel.

The registry also has ``'jitter'`` (``'jitter:<k>'``): every image shifted by an integer offset drawn uniformly
from ``{-k, ..., k}`` per axis (k = 2 by default), the vacated border repeating the edge pixels: the "input jitter"
of Hinton et al.'s MNIST teacher (:func:`jitter_augment`).

The registry (:func:`get_augment`) also serves Differentiable Siamese Augmentation
(:mod:`jaxdistill.data.dsa`) with per-image draws, as DSA trains evaluation networks: ``'dsa'``
is the DSA paper's strategy ``color_crop_cutout_flip_scale_rotate`` and ``'dsa:<strategy>'`` any
DSA strategy, e.g. ``'dsa:crop_scale'``.

Images are NHWC batches (single images HWC), already normalised. Everything here is jit-able and
draws randomness from ``jax.random`` only; :func:`dc_augment` builds one source-coordinate map per
image and samples all images with a single bilinear gather, which is exact for ``crop``,
``scale`` and ``noise`` because their coordinates are integers.

Deviations from the DC code, all deliberate:

* ``rotate`` interpolates bilinearly (order 1) instead of with scipy's cubic spline (order 3);
  the geometry (enlarged canvas, centres, centred crop, constant fill outside the input) is
  scipy's, computed in float32, so the result equals ``scipy.ndimage.rotate(..., order=1)``
  followed by DC's crop up to float32 rounding. Sample points within ``1e-4`` pixels outside the
  image count as inside.
* Random numbers come from ``jax.random`` (so streams differ from NumPy's), the scale factor and
  the resulting sizes are computed in float32, and the batch means are float32 reductions.
* Degenerate settings on which DC fails are given their natural meaning: ``crop=0`` and
  ``rotate=0`` leave the image unchanged, and resized sizes are at least 1. For a non-square
  image rotated so far that the enlarged canvas is shorter than the image along one axis (DC's
  slicing breaks there) the window is still centred, with the offset truncated toward zero.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from numbers import Real

import jax
import jax.numpy as jnp

from jaxdistill.data.dsa import DSA_STRATEGY, dsa_augmentation, parse_dsa_strategy
from jaxdistill.data.registry import DatasetSpec, find_spec
from jaxdistill.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "DC_AUG_DEFAULTS",
    "OPS",
    "crop_image",
    "cutmix",
    "dc_augment",
    "default_eval_augmentation",
    "eval_augmentation_for",
    "get_augment",
    "jitter_augment",
    "label_mixing",
    "mixes_labels",
    "register_augmentation",
    "noise_image",
    "rotate_image",
    "scale_image",
]

#: Operations a strategy may combine (joined by ``'_'``).
OPS: tuple[str, ...] = ("crop", "scale", "rotate", "noise")

#: DC's augmentation magnitudes (``get_daparam``).
DC_AUG_DEFAULTS: Mapping[str, float] = types.MappingProxyType(
    {"crop": 4, "scale": 0.2, "rotate": 45, "noise": 0.001}
)

# Sample points this far (in pixels) outside the image still count as inside for rotations, so
# that float32 rounding does not turn border pixels into fill.
_EDGE_TOL = 1e-4

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]
#: A label-mixing augmentation (CutMix, MixUp): ``f(key, images, targets) -> (images, targets)``, targets as
#: probabilities (N, C); it carries ``mixes_labels = True`` (see :func:`label_mixing`), and a Trainer then passes
#: it the batch's targets (hard labels one-hot) and trains on what it returns.
LabelMixing = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

_REGISTERED: dict[str, Callable] = {}


def label_mixing(fn: LabelMixing) -> LabelMixing:
    """Mark ``fn(key, images, targets) -> (images, targets)`` as a label-mixing augmentation."""
    fn.mixes_labels = True
    return fn


def mixes_labels(augmentation: Callable) -> bool:
    """Whether an augmentation takes and returns targets (:data:`LabelMixing`) rather than images alone."""
    return bool(getattr(augmentation, "mixes_labels", False))


def register_augmentation(name: str, fn: Callable) -> Callable:
    """Make ``get_augment(name)`` return ``fn`` (an :data:`Augmentation`, or a :data:`LabelMixing` marked by
    :func:`label_mixing`); a name that is already taken is refused."""
    if name in _REGISTERED or name in AUGMENTATIONS:
        raise ConfigError(f"an augmentation called {name!r} is already registered")
    _REGISTERED[name] = fn
    return fn


# --------------------------------------------------------------------------------------------
# Source-coordinate maps: for every output pixel, where to read in the input image.
# Each returns (rows, cols, valid) of shape (H, W); invalid pixels take the fill value.
# --------------------------------------------------------------------------------------------


def _crop_coords(height: int, width: int, offset_rc, crop):
    offset = jnp.asarray(offset_rc, jnp.int32)
    rows = jnp.arange(height, dtype=jnp.int32) + (offset[0] - crop)
    cols = jnp.arange(width, dtype=jnp.int32) + (offset[1] - crop)
    valid = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    rows, cols = jnp.broadcast_arrays(rows[:, None], cols[None, :])
    return rows, cols, valid


def _nearest_source(dst, in_size: int, out_size):
    """PyTorch 'nearest': ``min(floor(dst * (float32(in) / float32(out))), in - 1)``."""
    ratio = jnp.float32(in_size) / out_size.astype(jnp.float32)
    src = jnp.floor(dst.astype(jnp.float32) * ratio).astype(jnp.int32)
    return jnp.clip(src, 0, in_size - 1)


def _scale_coords(height: int, width: int, hw):
    hw = jnp.maximum(jnp.asarray(hw, jnp.int32), 1)
    h, w = hw[0], hw[1]
    side = jnp.maximum(jnp.maximum(h, w), max(height, width))
    # All differences are non-negative, so floor division equals DC's int() truncation.
    paste_r, paste_c = (side - h) // 2, (side - w) // 2
    cut_r, cut_c = (side - height) // 2, (side - width) // 2
    # Position of each output pixel inside the resized (h x w) image.
    res_r = jnp.arange(height, dtype=jnp.int32) + (cut_r - paste_r)
    res_c = jnp.arange(width, dtype=jnp.int32) + (cut_c - paste_c)
    valid = ((res_r >= 0) & (res_r < h))[:, None] & ((res_c >= 0) & (res_c < w))[None, :]
    rows = _nearest_source(res_r, height, h)
    cols = _nearest_source(res_c, width, w)
    rows, cols = jnp.broadcast_arrays(rows[:, None], cols[None, :])
    return rows, cols, valid


def _cos_sin_degrees(angle):
    """cos and sin of an angle in degrees, exact for multiples of 90 degrees."""
    angle = jnp.asarray(angle, jnp.float32)
    quarter = jnp.round(angle / 90.0)
    rest = jnp.deg2rad(angle - 90.0 * quarter)
    cos_r, sin_r = jnp.cos(rest), jnp.sin(rest)
    q = jnp.mod(quarter.astype(jnp.int32), 4)
    cos = jax.lax.select_n(q, cos_r, -sin_r, -cos_r, sin_r)
    sin = jax.lax.select_n(q, sin_r, cos_r, -sin_r, -cos_r)
    return cos, sin


def _rotate_coords(height: int, width: int, angle, reshape: bool):
    cos, sin = _cos_sin_degrees(angle)
    h_f, w_f = jnp.float32(height), jnp.float32(width)
    if reshape:
        # scipy: the rotated canvas is the rounded extent of the rotated input box ...
        out_h = jnp.floor(jnp.abs(cos) * h_f + jnp.abs(sin) * w_f + 0.5)
        out_w = jnp.floor(jnp.abs(sin) * h_f + jnp.abs(cos) * w_f + 0.5)
        # ... and DC cuts its centred H x W window with int() truncation.
        cut_r = jnp.trunc((out_h - h_f) / 2.0)
        cut_c = jnp.trunc((out_w - w_f) / 2.0)
    else:
        out_h, out_w = h_f, w_f
        cut_r = cut_c = jnp.float32(0.0)
    # Output pixel relative to the canvas centre, mapped back into the input about its centre.
    dy = (jnp.arange(height, dtype=jnp.float32) + (cut_r - (out_h - 1.0) / 2.0))[:, None]
    dx = (jnp.arange(width, dtype=jnp.float32) + (cut_c - (out_w - 1.0) / 2.0))[None, :]
    rows = cos * dy + sin * dx + (h_f - 1.0) / 2.0
    cols = -sin * dy + cos * dx + (w_f - 1.0) / 2.0
    valid = (
        (rows >= -_EDGE_TOL)
        & (rows <= h_f - 1.0 + _EDGE_TOL)
        & (cols >= -_EDGE_TOL)
        & (cols <= w_f - 1.0 + _EDGE_TOL)
    )
    return rows, cols, valid


def _identity_coords(height: int, width: int):
    rows, cols = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.int32), jnp.arange(width, dtype=jnp.int32), indexing="ij"
    )
    return rows, cols, jnp.ones((height, width), bool)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def _gather(image, rows, cols, valid, fill):
    """Integer gather; ``fill`` (shape (C,)) where ``valid`` is False."""
    height, width, _ = image.shape
    values = image[jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)]
    return jnp.where(valid[..., None], values, fill)


def _bilinear(image, rows, cols, valid, fill):
    """Bilinear sampling at float coordinates; exact (a plain gather) at integer coordinates."""
    height, width, _ = image.shape
    rows = rows.astype(jnp.float32)
    cols = cols.astype(jnp.float32)
    r0, c0 = jnp.floor(rows), jnp.floor(cols)
    fr = (rows - r0)[..., None].astype(image.dtype)
    fc = (cols - c0)[..., None].astype(image.dtype)
    r0i = jnp.clip(r0, 0, height - 1).astype(jnp.int32)
    r1i = jnp.clip(r0 + 1, 0, height - 1).astype(jnp.int32)
    c0i = jnp.clip(c0, 0, width - 1).astype(jnp.int32)
    c1i = jnp.clip(c0 + 1, 0, width - 1).astype(jnp.int32)
    top = image[r0i, c0i] * (1 - fc) + image[r0i, c1i] * fc
    bottom = image[r1i, c0i] * (1 - fc) + image[r1i, c1i] * fc
    values = top * (1 - fr) + bottom * fr
    return jnp.where(valid[..., None], values, fill)


def _check_image(image) -> jax.Array:
    image = jnp.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected one HWC image, got shape {image.shape}")
    return image


def _fill_vector(fill, channels: int, dtype) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(fill, dtype), (channels,))


# --------------------------------------------------------------------------------------------
# Single-image operations with explicit parameters
# --------------------------------------------------------------------------------------------


def crop_image(image, offset_rc, fill, crop: int) -> jax.Array:
    """DC's crop of one HWC image: pad by ``crop`` with ``fill``, cut the window at ``offset_rc``.

    ``offset_rc`` is the window's top-left corner ``(r, c)`` in the padded image (DC draws each
    from ``0 .. 2*crop - 1``); ``fill`` is a scalar or one value per channel (DC: the batch's
    per-channel means). Exact.
    """
    image = _check_image(image)
    height, width, channels = image.shape
    rows, cols, valid = _crop_coords(height, width, offset_rc, crop)
    return _gather(image, rows, cols, valid, _fill_vector(fill, channels, image.dtype))


def scale_image(image, hw) -> jax.Array:
    """DC's scale of one HWC image to size ``hw = (h, w)``, then the centred ``H x W`` window.

    Nearest-neighbour resize with PyTorch's ``F.interpolate`` default rule
    (``src = min(floor(dst * float32(in / out)), in - 1)``), pasted centred on a zero canvas of side
    ``max(h, w, H, W)`` at offsets ``int((side - h) / 2)``, ``int((side - w) / 2)``, from which the
    window at ``int((side - H) / 2)``, ``int((side - W) / 2)`` is cut. Exact; ``hw`` may be traced.
    Sizes below 1 are taken as 1.
    """
    image = _check_image(image)
    height, width, channels = image.shape
    rows, cols, valid = _scale_coords(height, width, hw)
    return _gather(image, rows, cols, valid, _fill_vector(0, channels, image.dtype))


def rotate_image(image, angle_degrees, fill, reshape: bool = True) -> jax.Array:
    """DC's rotation of one HWC image by ``angle_degrees`` about its centre, constant ``fill``.

    Same geometry and sign as ``scipy.ndimage.rotate(chw, angle, axes=(-2, -1), cval=fill)``
    (a positive angle turns the image like ``np.rot90(image, 1, axes=(0, 1))`` does for 90).
    With ``reshape=True`` (DC's setting) the rotation is taken on scipy's enlarged canvas and the
    centred ``H x W`` window is cut with DC's ``int()`` truncation, which shifts by half a pixel
    when the canvas and image sizes differ by an odd number; ``reshape=False`` rotates in place.

    Deviation from DC: interpolation is bilinear (scipy ``order=1``), not scipy's cubic spline
    (``order=3``); points outside the input (beyond a ``1e-4`` pixel tolerance) take ``fill``.
    """
    image = _check_image(image)
    height, width, channels = image.shape
    rows, cols, valid = _rotate_coords(height, width, angle_degrees, reshape)
    return _bilinear(image, rows, cols, valid, _fill_vector(fill, channels, image.dtype))


def noise_image(image, standard_normal, noise=DC_AUG_DEFAULTS["noise"]) -> jax.Array:
    """DC's noise: ``image + noise * standard_normal`` (``standard_normal`` shaped as ``image``)."""
    image = _check_image(image)
    return image + noise * jnp.asarray(standard_normal, image.dtype)


# --------------------------------------------------------------------------------------------
# Batched random augmentation
# --------------------------------------------------------------------------------------------


def _known_names() -> str:
    return ", ".join(sorted(_REGISTRY_NAMES))


def _parse_strategy(strategy: str | None) -> tuple[str, ...]:
    """The strategy's operations, in order and with repeats; () for 'none' (or None)."""
    if strategy is None or strategy == "none":
        return ()
    if not isinstance(strategy, str):
        raise ConfigError(f"augmentation strategy must be a string, got {strategy!r}")
    ops = tuple(strategy.split("_"))
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ConfigError(
            f"unknown augmentation {strategy!r}: known augmentations are {_known_names()}, "
            f"or any of the operations {', '.join(OPS)} joined by '_'"
        )
    return ops


def _check_magnitudes(crop, scale, rotate, noise) -> None:
    """Reject impossible magnitudes given as Python numbers (traced values are not checked)."""

    def concrete(x) -> bool:
        return isinstance(x, Real)

    if concrete(crop) and (crop < 0 or int(crop) != crop):
        raise ConfigError(f"crop must be a non-negative integer number of pixels, got {crop!r}")
    if concrete(rotate) and (rotate < 0 or int(rotate) != rotate):
        raise ConfigError(f"rotate must be a non-negative integer (degrees), got {rotate!r}")
    if concrete(scale) and not 0 <= scale <= 1:
        raise ConfigError(f"scale must lie in [0, 1], got {scale!r}")
    if concrete(noise) and noise < 0:
        raise ConfigError(f"noise must be non-negative, got {noise!r}")


def dc_augment(
    key: jax.Array,
    images,
    strategy: str = "crop_scale_rotate",
    crop=DC_AUG_DEFAULTS["crop"],
    scale=DC_AUG_DEFAULTS["scale"],
    rotate=DC_AUG_DEFAULTS["rotate"],
    noise=DC_AUG_DEFAULTS["noise"],
) -> jax.Array:
    """DC's evaluation-time augmentation of an NHWC batch: one random operation per image.

    Each image independently gets one operation drawn uniformly from ``strategy.split('_')``
    (repeats weigh more, as in DC) with its own random parameters (see the module docstring).
    Fills use the statistics of the whole input batch: per-channel means for ``crop``, their
    mean for ``rotate``. ``strategy='none'`` returns ``images`` unchanged.

    Pure and jit-able with ``strategy`` static
    (``jax.jit(dc_augment, static_argnames='strategy')``); the magnitudes may be Python numbers
    or traced scalars. Raises ``ConfigError`` for an unknown strategy or an impossible magnitude.
    """
    ops = _parse_strategy(strategy)
    _check_magnitudes(crop, scale, rotate, noise)
    images = jnp.asarray(images)
    if not ops:
        return images
    if images.ndim != 4:
        raise ValueError(f"expected an NHWC batch, got shape {images.shape}")
    n, height, width, channels = images.shape
    dtype = images.dtype

    unique = tuple(dict.fromkeys(ops))
    k_choice, k_crop, k_scale, k_rotate, k_noise = jax.random.split(key, 5)
    choice = jax.random.randint(k_choice, (n,), 0, len(ops))
    which = jnp.asarray([unique.index(op) for op in ops], jnp.int32)[choice]

    channel_mean = jnp.mean(images, axis=(0, 1, 2))
    fills = {
        "crop": channel_mean.astype(dtype),
        "scale": jnp.zeros((channels,), dtype),
        "rotate": jnp.broadcast_to(jnp.mean(channel_mean), (channels,)).astype(dtype),
        "noise": jnp.zeros((channels,), dtype),
    }

    zeros_i = jnp.zeros((n,), jnp.int32)
    offsets = jnp.zeros((n, 2), jnp.int32)
    sizes = jnp.zeros((n, 2), jnp.int32)
    angles = zeros_i
    normal = None
    if "crop" in unique:
        offsets = jax.random.randint(k_crop, (n, 2), 0, jnp.maximum(2 * crop, 1))
    if "scale" in unique:
        factors = jax.random.uniform(k_scale, (n, 2), jnp.float32, 1.0 - scale, 1.0 + scale)
        # Both sizes scale the height, as DC does.
        sizes = jnp.floor(factors * jnp.float32(height)).astype(jnp.int32)
    if "rotate" in unique:
        drawn = jax.random.randint(k_rotate, (n,), -rotate, jnp.maximum(rotate, 1))
        angles = jnp.where(rotate > 0, drawn, 0)
    if "noise" in unique:
        normal = jax.random.normal(k_noise, images.shape, dtype)

    def one(image, op, offset, size, angle):
        maps = []
        for name in unique:
            if name == "crop":
                maps.append(_crop_coords(height, width, offset, crop))
            elif name == "scale":
                maps.append(_scale_coords(height, width, size))
            elif name == "rotate":
                maps.append(_rotate_coords(height, width, angle, reshape=True))
            else:
                maps.append(_identity_coords(height, width))
        maps = [
            (rows.astype(jnp.float32), cols.astype(jnp.float32), valid)
            for rows, cols, valid in maps
        ]
        if len(unique) == 1:
            (rows, cols, valid), fill = maps[0], fills[unique[0]]
        else:
            rows = jax.lax.select_n(op, *(m[0] for m in maps))
            cols = jax.lax.select_n(op, *(m[1] for m in maps))
            valid = jax.lax.select_n(op, *(m[2] for m in maps))
            fill = jax.lax.select_n(op, *(fills[name] for name in unique))
        return _bilinear(image, rows, cols, valid, fill)

    out = jax.vmap(one)(images, which, offsets, sizes, angles)
    if normal is not None:
        is_noise = (which == unique.index("noise"))[:, None, None, None]
        out = jnp.where(is_noise, out + noise * normal, out)
    return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _identity(key: jax.Array, images) -> jax.Array:
    del key
    return jnp.asarray(images)


def _make_augment(strategy: str, crop, scale, rotate, noise) -> Augmentation:
    if not _parse_strategy(strategy):
        return _identity

    def augment(key: jax.Array, images) -> jax.Array:
        return dc_augment(key, images, strategy, crop, scale, rotate, noise)

    augment.__name__ = augment.__qualname__ = f"dc_augment_{strategy}"
    augment.__doc__ = (
        f"DC augmentation {strategy!r} "
        f"(crop={crop}, scale={scale}, rotate={rotate}, noise={noise})."
    )
    return jax.jit(augment)


_REGISTRY_NAMES: tuple[str, ...] = (
    "none",
    "crop",
    "scale",
    "rotate",
    "noise",
    "crop_scale_rotate",
    "crop_noise",
)

#: Named augmentations with DC's magnitudes: ``name -> f(key, images) -> images`` (jitted).
AUGMENTATIONS: Mapping[str, Augmentation] = types.MappingProxyType(
    {name: _make_augment(name, **DC_AUG_DEFAULTS) for name in _REGISTRY_NAMES}
)


def get_augment(
    name: str,
    *,
    crop=DC_AUG_DEFAULTS["crop"],
    scale=DC_AUG_DEFAULTS["scale"],
    rotate=DC_AUG_DEFAULTS["rotate"],
    noise=DC_AUG_DEFAULTS["noise"],
) -> Augmentation:
    """The augmentation ``f(key, images) -> images`` called ``name``.

    ``name`` is a key of :data:`AUGMENTATIONS` or any of :data:`OPS` joined by ``'_'``, with
    magnitudes defaulting to DC's; or ``'dsa'`` / ``'dsa:<strategy>'``, DSA with per-image draws
    and the reference's magnitudes (see :mod:`jaxdistill.data.dsa`; the DC magnitudes must then
    keep their defaults); or ``'idc:<strategy>'``, IDC's composition of the same operations; any of them followed by
    ``'+cutmix'`` or ``'+cutmix:<p>'`` adds CutMix (a label-mixing augmentation). Raises ``ConfigError`` naming the known augmentations otherwise.
    """
    params = {"crop": crop, "scale": scale, "rotate": rotate, "noise": noise}
    if name in _REGISTERED:
        return _REGISTERED[name]
    if isinstance(name, str) and "+" in name:
        return _with_cutmix(name, params)
    if isinstance(name, str) and (name == _DSA or name.startswith(_DSA + ":")):
        return _get_dsa_augment(name, params)
    if isinstance(name, str) and name.startswith(_IDC + ":"):
        return _get_idc_augment(name, params)
    if isinstance(name, str) and (name == _JITTER or name.startswith(_JITTER + ":")):
        return _get_jitter_augment(name, params)
    try:
        _parse_strategy(name)
    except ConfigError as err:
        raise ConfigError(
            f"{err}; or {_DSA!r} (DSA strategy {DSA_STRATEGY}) or '{_DSA}:<strategy>' with "
            f"DSA operations (jaxdistill.data.dsa); or {_JITTER!r} / '{_JITTER}:<pixels>' (random shifts)"
        ) from None
    _check_magnitudes(crop, scale, rotate, noise)
    if name in AUGMENTATIONS and params == dict(DC_AUG_DEFAULTS):
        return AUGMENTATIONS[name]
    return _make_augment(name, **params)


_DSA = "dsa"
_IDC = "idc"
_JITTER = "jitter"
JITTER_DEFAULT_SHIFT = 2


def jitter_augment(key: jax.Array, images, max_shift: int = JITTER_DEFAULT_SHIFT) -> jax.Array:
    """Shift each image of an NHWC batch by (dy, dx), each uniform in {-max_shift..max_shift}; edges repeat."""
    images = jnp.asarray(images)
    if max_shift == 0:
        return images
    n, h, w, _ = images.shape
    offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")

    def one(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(one)(padded, offsets)


def _get_jitter_augment(name: str, magnitudes: dict) -> Augmentation:
    if magnitudes != dict(DC_AUG_DEFAULTS):
        raise ConfigError(f"augmentation {name!r} takes its shift in the name ('jitter:<pixels>'), not DC magnitudes")
    text = name[len(_JITTER) + 1:] if name != _JITTER else str(JITTER_DEFAULT_SHIFT)
    try:
        max_shift = int(text)
    except ValueError:
        max_shift = -1
    if max_shift < 0:
        raise ConfigError(f"augmentation {name!r}: the jitter shift must be a non-negative integer, e.g. 'jitter:2'")
    return jax.jit(lambda key, images: jitter_augment(key, images, max_shift))


def _get_dsa_augment(name: str, magnitudes: dict) -> Augmentation:
    """DSA registry entries: ``'dsa'`` and ``'dsa:<strategy>'``, with per-image draws."""
    if magnitudes != dict(DC_AUG_DEFAULTS):
        raise ConfigError(
            f"augmentation {name!r} is DSA, which takes no DC magnitudes (crop, scale, rotate, "
            "noise); leave them at their defaults"
        )
    strategy = DSA_STRATEGY if name == _DSA else name[len(_DSA) + 1 :]
    if not strategy:
        raise ConfigError(
            f"augmentation {name!r} names no DSA strategy: use {_DSA!r}, '{_DSA}:<ops>' "
            "(e.g. 'dsa:crop_scale') or 'none'"
        )
    parse_dsa_strategy(strategy)
    return dsa_augmentation(strategy)


def cutmix(key: jax.Array, images: jax.Array, targets: jax.Array, prob: float = 1.0, beta: float = 1.0
           ) -> tuple[jax.Array, jax.Array]:
    """CutMix (Yun et al., ICCV 2019) as the IDC reference applies it: with probability `prob` per batch, draw
    lam ~ Beta(beta, beta) and a box of sides int(side x sqrt(1 - lam)) centred on a uniform pixel (clipped to the
    image), paste that box from a random permutation of the batch, and mix the targets (N, C) by the pasted area."""
    k_apply, k_lam, k_perm, k_row, k_col = jax.random.split(key, 5)
    n, h, w = images.shape[:3]
    cut = jnp.sqrt(1.0 - jax.random.beta(k_lam, beta, beta))
    half_h, half_w = jnp.floor(h * cut).astype(jnp.int32) // 2, jnp.floor(w * cut).astype(jnp.int32) // 2
    row, col = jax.random.randint(k_row, (), 0, h), jax.random.randint(k_col, (), 0, w)
    rows, cols = jnp.arange(h), jnp.arange(w)
    box = (((rows >= jnp.clip(row - half_h, 0, h)) & (rows < jnp.clip(row + half_h, 0, h)))[:, None]
           & ((cols >= jnp.clip(col - half_w, 0, w)) & (cols < jnp.clip(col + half_w, 0, w)))[None, :])
    box = box & (jax.random.uniform(k_apply) < prob)
    perm = jax.random.permutation(k_perm, n)
    mixed = jnp.where(box[None, :, :, None], images[perm], images)
    area = jnp.sum(box) / (h * w)
    return mixed, (1.0 - area) * targets + area * targets[perm]


def _with_cutmix(name: str, magnitudes: dict) -> Callable:
    """``'<augmentation>+cutmix[:<prob>]'``: the augmentation per image, then CutMix with that probability per batch
    (default 1), a label-mixing augmentation."""
    base_name, _, mix = name.partition("+")
    _, _, prob_text = mix.partition(":")
    try:
        prob = float(prob_text) if prob_text else 1.0
    except ValueError:
        raise ConfigError(f"augmentation {name!r}: the CutMix probability must be a number, got {prob_text!r}") \
            from None
    if mix.split(":")[0] != "cutmix" or not 0 <= prob <= 1:
        raise ConfigError(f"augmentation {name!r}: expected '<augmentation>+cutmix' or '+cutmix:<p>' with p in [0, 1]")
    base = get_augment(base_name, **magnitudes)

    @label_mixing
    def augment(key, images, targets):
        k_base, k_mix = jax.random.split(key)
        return cutmix(k_mix, base(k_base, images), targets, prob)
    return augment


def _get_idc_augment(name: str, magnitudes: dict) -> Augmentation:
    """``'idc:<strategy>'``: IDC's composition of the DSA operations (``dsa.idc_augment``: colour, one geometric
    group, cutout), with per-image draws, as IDC trains its evaluation networks."""
    if magnitudes != dict(DC_AUG_DEFAULTS):
        raise ConfigError(f"augmentation {name!r} takes no DC magnitudes (crop, scale, rotate, noise)")
    strategy = name[len(_IDC) + 1:]
    if not parse_dsa_strategy(strategy):
        raise ConfigError(f"augmentation {name!r} names no DSA operations, e.g. 'idc:color_crop_scale_rotate'")
    return _idc_augmentation(strategy)


@functools.lru_cache(maxsize=None)
def _idc_augmentation(strategy: str) -> Augmentation:
    from jaxdistill.data.dsa import idc_augment

    @jax.jit
    def augment(key: jax.Array, images: jax.Array) -> jax.Array:
        return idc_augment(key, images, strategy, siamese=False)
    return augment


def eval_augmentation_for(spec: DatasetSpec, model_eval: str = "ConvNet") -> str:
    """DC's evaluation augmentation for a spec: ``spec.defaults.eval_augmentation``, or ``'crop_noise'`` for a
    batch-norm ConvNet (``model_eval='ConvNetBN'``), as DC's ``get_daparam`` gives it whatever the dataset."""
    if model_eval == "ConvNetBN":
        return "crop_noise"
    return spec.defaults.eval_augmentation


def default_eval_augmentation(dataset_name: str | DatasetSpec, model_eval: str = "ConvNet") -> str:
    """DC's evaluation augmentation strategy (``get_daparam``) for a dataset (case-insensitive name, or a spec).

    A registered dataset's is its spec's ``defaults.eval_augmentation`` (``'crop_scale_rotate'`` for MNIST,
    ``'none'`` for the others); a name that is not registered gets ``'none'`` (``'crop_scale_rotate'`` if it is
    ``'mnist'``), as ``get_daparam`` does. A batch-norm ConvNet (``model_eval='ConvNetBN'``) always gets
    ``'crop_noise'``.
    """
    spec = find_spec(dataset_name)
    if spec is not None:
        return eval_augmentation_for(spec, model_eval)
    if model_eval == "ConvNetBN":
        return "crop_noise"
    return "crop_scale_rotate" if str(dataset_name).strip().lower() == "mnist" else "none"
