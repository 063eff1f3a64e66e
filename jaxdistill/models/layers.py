"""Layers shared by the models: PyTorch-default initialisation and a convolution with a selectable kernel.

The dataset-distillation literature's reference numbers come from PyTorch networks, whose default init draws weights
and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Gradient matching samples fresh random networks every iteration,
so the init distribution is part of the method: we reproduce it rather than use Flax's defaults.
"""
from __future__ import annotations

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
    """'matmul' on CPU for batches of MATMUL_MIN_BATCH or more; XLA's own conv otherwise and on GPU/TPU (cuDNN)."""
    return "matmul" if jax.default_backend() == "cpu" and batch_size >= MATMUL_MIN_BATCH else "xla"


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


CONV_IMPLS = {"matmul": conv_matmul, "xla": conv_xla}


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
