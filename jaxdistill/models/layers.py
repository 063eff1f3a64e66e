"""Layers shared by the models: PyTorch-default initialisation and a convolution with a selectable kernel.

The dataset-distillation literature's reference numbers come from PyTorch networks, whose default init draws weights
and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Gradient matching samples fresh random networks every iteration,
so the init distribution is part of the method: we reproduce it rather than use Flax's defaults.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch's kaiming_uniform_(a=sqrt(5)) is uniform with bound sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in).
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Callable:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias init for Linear and Conv2d."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# Measured on a 2-core XLA:CPU (scripts/bench_eval.py, README "Performance"): for a 10-image batch XLA's conv is
# faster (38 vs 54 ms per ConvNet training step); from a few dozen images on, its slow weight gradient dominates and
# the matmul form wins (575 vs 754 ms at 100 images).
MATMUL_MIN_BATCH = 32


def default_conv_impl(batch_size: int) -> str:
    """'fastgrad' on CPU for batches of MATMUL_MIN_BATCH or more; XLA's own conv otherwise and on GPU/TPU (cuDNN)."""
    return "fastgrad" if jax.default_backend() == "cpu" and batch_size >= MATMUL_MIN_BATCH else "xla"


def conv_matmul(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """Stride-1 2-D convolution as a sum of matmuls over kernel offsets.

    x: (N, H, W, Cin), kernel: (KH, KW, Cin, Cout) -> (N, H', W', Cout). Equal to `lax.conv_general_dilated`
    with the same padding. Written with plain slices and matmuls so that every derivative (weight gradient, input
    gradient, and the second-order gradients gradient matching needs) is a matmul too, and so that `vmap` over
    per-network kernels becomes a batched matmul instead of a grouped convolution; both are much faster on XLA:CPU.
    """
    kh, kw, cin, cout = kernel.shape
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out_h = x.shape[1] + 2 * padding - kh + 1
    out_w = x.shape[2] + 2 * padding - kw + 1
    if cin * kh * kw <= 64:
        # Few input channels (the first layer): one matmul over an explicit patch matrix.
        patches = jnp.concatenate(
            [xp[:, i:i + out_h, j:j + out_w, :] for i in range(kh) for j in range(kw)], axis=-1)
        return patches @ kernel.reshape(kh * kw * cin, cout)
    out = None
    for i in range(kh):
        for j in range(kw):
            term = xp[:, i:i + out_h, j:j + out_w, :] @ kernel[i, j]
            out = term if out is None else out + term
    return out


def conv_xla(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """Stride-1 2-D convolution by XLA's own conv op (NHWC, HWIO)."""
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), [(padding, padding), (padding, padding)],
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _patches(x: jax.Array, kh: int, kw: int, padding: int) -> jax.Array:
    """(N*H'*W', KH*KW*Cin) patch matrix of `x`, columns ordered as a (KH, KW, Cin) kernel is flattened."""
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out_h = x.shape[1] + 2 * padding - kh + 1
    out_w = x.shape[2] + 2 * padding - kw + 1
    cols = jnp.concatenate([xp[:, i:i + out_h, j:j + out_w, :] for i in range(kh) for j in range(kw)], axis=-1)
    return cols.reshape(-1, kh * kw * x.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_fastgrad(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """XLA's conv with the weight gradient computed as one patch-matrix matmul.

    Values, the input gradient (itself a conv, fast in XLA) and every higher derivative equal `conv_xla`'s; only
    the weight gradient is computed differently: XLA:CPU emits it as a convolution over the batch that runs at a
    fraction of the matmul rate (7x slower at 16x16x128, 100x for one input channel), where `patches^T @ dy` runs
    at the matmul rate. Used for large-batch gradients on CPU (the real-data gradients of gradient matching,
    network training); the derivative of the backward pass is differentiable again (reverse over reverse).
    """
    return conv_xla(x, kernel, padding)


def _conv_fastgrad_fwd(x, kernel, padding):
    return conv_xla(x, kernel, padding), (x, kernel)


def _conv_fastgrad_bwd(padding, residuals, dy):
    x, kernel = residuals
    kh, kw, cin, cout = kernel.shape
    _, input_vjp = jax.vjp(lambda x_: conv_xla(x_, kernel, padding), x)
    (dx,) = input_vjp(dy)
    dw = _patches(x, kh, kw, padding).T @ dy.reshape(-1, cout)
    return dx, dw.reshape(kernel.shape)


conv_fastgrad.defvjp(_conv_fastgrad_fwd, _conv_fastgrad_bwd)

CONV_IMPLS = {"matmul": conv_matmul, "xla": conv_xla, "fastgrad": conv_fastgrad}


class Conv(nn.Module):
    """3x3 (by default) stride-1 conv with PyTorch init; `impl` picks the kernel ('auto', 'xla', 'matmul')."""
    features: int
    kernel_size: int = 3
    padding: int = 1
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        fan_in = cin * self.kernel_size * self.kernel_size
        kernel = self.param("kernel", torch_kernel_init,
                            (self.kernel_size, self.kernel_size, cin, self.features))
        bias = self.param("bias", torch_bias_init(fan_in), (self.features,))
        impl = default_conv_impl(x.shape[0]) if self.impl == "auto" else self.impl
        return CONV_IMPLS[impl](x, kernel, self.padding) + bias


class Dense(nn.Module):
    """Fully connected layer with PyTorch init."""
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(self.features, kernel_init=torch_kernel_init,
                        bias_init=torch_bias_init(x.shape[-1]))(x)


class InstanceNorm(nn.Module):
    """Per-image, per-channel normalisation over the spatial axes with a learned scale and bias per channel.

    Equal to PyTorch's GroupNorm(C, C) (the reference ConvNet's 'instancenorm'; eps 1e-5) and to Flax's
    GroupNorm(num_groups=C). Written directly, with the variance as E[x^2] - E[x]^2 (clamped at 0) and the scale
    folded into the reciprocal standard deviation: its gradient runs about 1.7x faster than GroupNorm's on XLA:CPU,
    where these memory-bound passes over the first layer's activations are a large part of a real-data gradient.
    """
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,))
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        axes = tuple(range(1, x.ndim - 1))
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.maximum(jnp.mean(jnp.square(x), axes, keepdims=True) - jnp.square(mean), 0.0)
        return (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
