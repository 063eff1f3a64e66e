"""The other architectures of the dataset-distillation papers' cross-architecture tables (DC, Zhao et al. ICLR 2021,
Table 2; DSA): LeNet, AlexNet, VGG11 and ResNet-18, as the DC reference code defines them for 28x28 and 32x32 inputs
(MNIST's first layer pads more so the rest of the network sees 32x32), with PyTorch initialisation. The MLP of those
tables is `mlp:128,128` (models/mlp.py).

- LeNet: conv 5x5 (6) -> ReLU -> max-pool -> conv 5x5 (16) -> ReLU -> max-pool -> 120 -> 84 -> classes; no norm.
- AlexNet: conv 5x5 (128) -> pool -> conv 5x5 (192) -> pool -> 3x3 convs (256, 192, 192) -> pool -> linear; ReLU after
  every conv, max-pooling, no norm.
- VGG11: the VGG-11 configuration (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M) of 3x3 convs with instance
  norm (the reference's default; `norm="batchnorm"` is its VGG11BN) -> linear from 512.
- ResNet-18: a 3x3 stem (64) and four stages of two basic blocks (64, 128, 256, 512; stride 2 from the second stage,
  1x1 strided shortcuts), convolutions without bias, instance norm by default, 4x4 average pooling, linear from 512.

Every norm takes `norm` in ("instancenorm", "batchnorm", "none") where the reference offers it.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from jaxdistill.errors import ConfigError
from jaxdistill.models.layers import Conv, Dense, InstanceNorm

NORMS = ("instancenorm", "batchnorm", "none")


def _norm(kind: str, train: bool):
    if kind not in NORMS:
        raise ConfigError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")
    if kind == "instancenorm":
        return InstanceNorm(epsilon=1e-5)
    if kind == "batchnorm":
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
    return lambda x: x


def _max_pool(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), (2, 2))


def _first_pad(x: jax.Array, one_channel: int, three_channel: int) -> int:
    return one_channel if x.shape[-1] == 1 else three_channel


class LeNet(nn.Module):
    num_classes: int
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = _max_pool(nn.relu(Conv(6, 5, padding=_first_pad(x, 2, 0), impl=self.conv_impl)(x)))
        x = _max_pool(nn.relu(Conv(16, 5, padding=0, impl=self.conv_impl)(x)))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(Dense(120)(x))
        x = nn.relu(Dense(84)(x))
        return Dense(self.num_classes)(x)


class AlexNet(nn.Module):
    num_classes: int
    norm: str = "none"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        layers = ((128, 5, _first_pad(x, 4, 2), True), (192, 5, 2, True), (256, 3, 1, False), (192, 3, 1, False),
                  (192, 3, 1, True))
        for width, k, pad, pool in layers:
            x = nn.relu(_norm(self.norm, train)(Conv(width, k, padding=pad, impl=self.conv_impl)(x)))
            if pool:
                x = _max_pool(x)
        return Dense(self.num_classes)(x.reshape(x.shape[0], -1))


VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    num_classes: int
    layers: Sequence = VGG11_LAYERS
    norm: str = "instancenorm"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        one_channel = x.shape[-1] == 1
        for i, item in enumerate(self.layers):
            if item == "M":
                x = _max_pool(x)
                continue
            conv = Conv(int(item), padding=3 if one_channel and i == 0 else 1, impl=self.conv_impl,
                        bias_cancels=self.norm == "instancenorm")
            x = nn.relu(_norm(self.norm, train)(conv(x)))
        return Dense(self.num_classes)(x.reshape(x.shape[0], -1))


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1
    norm: str = "instancenorm"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out = Conv(self.planes, 3, padding=1, stride=self.stride, use_bias=False, impl=self.conv_impl)(x)
        out = nn.relu(_norm(self.norm, train)(out))
        out = _norm(self.norm, train)(Conv(self.planes, 3, padding=1, use_bias=False, impl=self.conv_impl)(out))
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.planes:
            shortcut = Conv(self.planes, 1, padding=0, stride=self.stride, use_bias=False, impl=self.conv_impl)(x)
            shortcut = _norm(self.norm, train)(shortcut)
        return nn.relu(out + shortcut)


class ResNet(nn.Module):
    num_classes: int
    blocks: Sequence[int] = (2, 2, 2, 2)  # ResNet-18
    norm: str = "instancenorm"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = nn.relu(_norm(self.norm, train)(Conv(64, 3, padding=1, use_bias=False, impl=self.conv_impl)(x)))
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), self.blocks)):
            for b in range(count):
                x = BasicBlock(planes, 2 if stage > 0 and b == 0 else 1, self.norm, self.conv_impl)(x, train)
        x = nn.avg_pool(x, (4, 4), (4, 4))  # the reference's avg_pool2d(out, 4): 4x4 -> 1x1 at 28 and 32 px
        return Dense(self.num_classes)(x.reshape(x.shape[0], -1))
