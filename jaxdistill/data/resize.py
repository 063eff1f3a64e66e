"""Resizing a dataset's images on the host, in numpy: antialiased linear (triangle-filter) resampling.

The filter is the one of `jax.image.resize(..., method='linear', antialias=True)` (and of PIL's bilinear resize):
half-pixel centres, a triangle kernel widened by the downscaling factor when shrinking (so every input pixel
contributes: antialiasing, close to area averaging), weights renormalised at the borders. It is separable, so an
image is resized by one weight matrix per axis. uint8 in, uint8 out: values are rounded to the nearest integer
and clipped to [0, 255], so a resized dataset is stored and normalised exactly like a native one.
"""

from __future__ import annotations

import numpy as np

from jaxdistill.errors import ConfigError

__all__ = ["linear_resize_weights", "resize_images"]

# Images resized per block: bounds the float32 temporaries (4096 x 32 x 32 x 3 x 4 B = 50 MB) on large datasets.
_BLOCK = 4096


def linear_resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of an antialiased linear resize along one axis; rows sum to 1."""
    if in_size < 1 or out_size < 1:
        raise ConfigError(f"resize sizes must be positive, got {in_size} -> {out_size}")
    scale = out_size / in_size
    kernel_scale = max(1.0 / scale, 1.0)  # widen the triangle when shrinking: antialiasing
    centres = (np.arange(out_size) + 0.5) / scale - 0.5  # output pixel centres in input coordinates
    distance = np.abs(centres[:, None] - np.arange(in_size)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - distance)
    return weights / weights.sum(axis=1, keepdims=True)


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 images (N, H, W, C) to (N, height, width, C), uint8 (see the module docstring).

    The same size returns the input unchanged (the very array, not a copy).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ConfigError(f"resize_images takes uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    rows = linear_resize_weights(h, height).astype(np.float32)
    cols = linear_resize_weights(w, width).astype(np.float32)
    out = np.empty((n, height, width, c), np.uint8)
    for start in range(0, n, _BLOCK):
        block = images[start : start + _BLOCK].astype(np.float32)
        resized = np.einsum("oh,nhwc,pw->nopc", rows, block, cols, optimize=True)
        out[start : start + _BLOCK] = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return out
