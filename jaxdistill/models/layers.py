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
import numpy as np

from jaxdistill import policy
from jaxdistill.errors import ConfigError
from jaxdistill.policy import MATMUL_MIN_BATCH, WINOGRAD_MIN_CHANNELS  # noqa: F401  (re-exported)

# PyTorch's kaiming_uniform_(a=sqrt(5)) is uniform with bound sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in).
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Callable:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias init for Linear and Conv2d."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def default_conv_impl(batch_size: int, in_channels: int | None = None, kernel_size: int = 3) -> str:
    """The convolution kernel the policy in force picks for a layer of this shape (`policy.Policy.conv_impl_for`)."""
    return policy.current().conv_impl_for(batch_size, in_channels, kernel_size)


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


# Winograd F(4x4, 3x3) (Lavin and Gray, CVPR 2016; interpolation points 0, +-1, +-2): a 6x6 input tile gives a 4x4
# output tile with 36 multiplications per (input, output) channel pair instead of 144.
_WINO_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                     [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
_WINO_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                    [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
_WINO_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float32)
_WINO_IN = np.kron(_WINO_BT, _WINO_BT).reshape(36, 6, 6)  # tile (a, b) -> transformed position p
_WINO_OUT = np.kron(_WINO_AT, _WINO_AT).reshape(4, 4, 36)  # position p -> output pixel (q, k) of the tile


def _tiles(xp: jax.Array, th: int, tw: int) -> jax.Array:
    """(N, 4(th+1), 4(tw+1), C) -> the overlapping 6x6 tiles at stride 4, (N, th, 6, tw, 6, C).

    Built from contiguous blocks of 4 rows (columns) plus the next block's first 2, so the transpose in the gradient
    is block-wise adds rather than 36 strided scatters."""
    n, _, _, c = xp.shape
    rows = xp.reshape(n, th + 1, 4, 4 * (tw + 1), c)
    rows = jnp.concatenate([rows[:, :th], rows[:, 1:, :2]], axis=2).reshape(n, th, 6, tw + 1, 4, c)
    return jnp.concatenate([rows[:, :, :, :tw], rows[:, :, :, 1:, :2]], axis=4)


def conv_winograd(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """Stride-1 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3); equal to `conv_xla` up to float32
    rounding (relative error ~1e-5).

    The work is 36 matmuls of (tiles, Cin) x (Cin, Cout), 4x fewer multiply-adds than the direct convolution, plus
    linear tile transforms written as small dense contractions. Everything is plain jnp, so the weight and input
    gradients (and the second-order gradients gradient matching takes) are matmuls of the same reduced size; on a
    2-core CPU a DC ipc-1 iteration runs 1.36x faster than with `conv_fastgrad` (scripts/bench_dc.py, README
    "Performance"). Any height and width: the output is computed in whole 4x4 tiles and cropped.
    """
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"conv_winograd computes 3x3 convolutions, got a {kh}x{kw} kernel")
    n, h, w, _ = x.shape
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    th, tw = -(-out_h // 4), -(-out_w // 4)
    xp = jnp.pad(x, ((0, 0), (padding, 4 * (th + 1) - h - padding), (padding, 4 * (tw + 1) - w - padding), (0, 0)))
    # The transforms are plain matmuls over a leading tile-position axis: the tiles are transposed position-major
    # once (XLA fuses that into building them), so neither transform's operands nor results need another transpose.
    tiles = jnp.transpose(_tiles(xp, th, tw), (2, 4, 0, 1, 3, 5)).reshape(36, n * th * tw * cin)
    v = (jnp.asarray(_WINO_IN.reshape(36, 36)) @ tiles).reshape(36, n * th * tw, cin)
    u = jnp.einsum("ka,abio,lb->klio", _WINO_G, kernel, _WINO_G).reshape(36, cin, cout)
    m = jnp.matmul(v, u).reshape(36, n * th * tw * cout)
    y = (jnp.asarray(_WINO_OUT.reshape(16, 36)) @ m).reshape(4, 4, n, th, tw, cout)
    y = jnp.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(n, 4 * th, 4 * tw, cout)
    return y[:, :out_h, :out_w]


CONV_IMPLS = {"matmul": conv_matmul, "xla": conv_xla, "fastgrad": conv_fastgrad, "winograd": conv_winograd}


class Conv(nn.Module):
    """3x3 (by default) stride-1 conv with PyTorch init; `impl` picks the kernel: 'auto' (the policy's choice for the
    layer's shape, `default_conv_impl`) or a name in CONV_IMPLS.

    `bias_cancels`: the next layer subtracts every per-image, per-channel constant (instance norm), so adding the
    bias changes nothing but float rounding. The parameter is kept (same parameters as the reference network) but not
    added, which saves a pass over the activations forward and a reduction over them backward (the first layer's are
    the largest tensors of a real-data gradient); its gradient is then exactly zero, where adding it gives rounding
    noise.
    """
    features: int
    kernel_size: int = 3
    padding: int = 1
    impl: str = "auto"
    bias_cancels: bool = False
    stride: int = 1  # > 1: XLA's strided convolution (the other kernels are stride 1)
    use_bias: bool = True  # False: no bias parameter (PyTorch's bias=False, as ResNet's convolutions)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        fan_in = cin * self.kernel_size * self.kernel_size
        kernel = self.param("kernel", torch_kernel_init,
                            (self.kernel_size, self.kernel_size, cin, self.features))
        bias = self.param("bias", torch_bias_init(fan_in), (self.features,)) if self.use_bias else None
        if self.stride != 1:
            p = self.padding
            y = jax.lax.conv_general_dilated(x, kernel, (self.stride, self.stride), [(p, p), (p, p)],
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        else:
            impl = default_conv_impl(x.shape[0], cin, self.kernel_size) if self.impl == "auto" else self.impl
            if impl not in CONV_IMPLS:
                raise ConfigError(f"unknown conv_impl {self.impl!r}; choose 'auto' or one of {', '.join(CONV_IMPLS)}")
            y = CONV_IMPLS[impl](x, kernel, self.padding)
        return y if self.bias_cancels or bias is None else y + bias


class Dense(nn.Module):
    """Fully connected layer with PyTorch init."""
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(self.features, kernel_init=torch_kernel_init,
                        bias_init=torch_bias_init(x.shape[-1]))(x)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 average pooling at stride 2 over NHWC, an odd last row or column dropped: PyTorch's AvgPool2d(2, 2) and
    `flax.linen.avg_pool(x, (2, 2), (2, 2))`.

    Written as the mean of four strided slices rather than a reduce-window: XLA:CPU fuses the slices into the pass
    that produces x, and their gradient (four strided pads) into the ReLU's gradient, where a reduce-window and its
    gradient are separate passes over the activations. A DC ipc-1 MNIST iteration on a 2-core CPU went from 6.89 to
    5.93 s with it (README "Performance"). ConvNet uses it on CPU; on GPU/TPU, where it has not been timed, it keeps
    `flax.linen.avg_pool`.
    """
    h, w = x.shape[1] - x.shape[1] % 2, x.shape[2] - x.shape[2] % 2
    corners = [x[:, i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]
    return 0.25 * ((corners[0] + corners[2]) + (corners[1] + corners[3]))


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
