"""The ConvNet of the dataset-distillation literature (DC, DSA, DM, MTT, DATM, IDC all evaluate on it).

depth x [conv 3x3 (width channels) -> norm -> ReLU -> 2x2 pool], then one linear layer. For 1-channel inputs
the first conv pads by 3 (as the reference does), so the network sees 32x32 as it does for CIFAR. Parameter counts equal the reference
PyTorch ConvNet's (317,706 for MNIST, 320,010 for CIFAR-10 at width 128, depth 3, instance norm). With instance norm
the conv biases are parameters that the network does not add (the norm removes them; `layers.Conv.bias_cancels`).
"""
from __future__ import annotations

import flax.linen as nn
import jax

from jaxdistill import policy
from jaxdistill.errors import ConfigError
from jaxdistill.models.layers import Conv, Dense, InstanceNorm, avg_pool_2x2

NORMS = ("instancenorm", "batchnorm", "layernorm", "none")
POOLINGS = ("avgpooling", "maxpooling", "none")


class ConvNet(nn.Module):
    """ConvNet(num_classes) on NHWC float inputs; `train` only matters for batch norm. `embed=True` returns the
    flattened features the classifier reads (the embedding the coreset baselines select on) instead of logits."""
    num_classes: int
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    pooling: str = "avgpooling"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True, embed: bool = False) -> jax.Array:
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        for d in range(self.depth):
            pad = 3 if (d == 0 and x.shape[-1] == 1) else 1  # as the reference: 1-channel nets pad 3
            x = Conv(self.width, padding=pad, impl=self.conv_impl, bias_cancels=self.norm == "instancenorm")(x)
            x = _norm(self.norm, self.width, train)(x)
            x = nn.relu(x)
            if self.pooling == "avgpooling":
                # the pooling form is the policy's (strided slices measured faster on XLA:CPU only)
                x = avg_pool_2x2(x) if policy.current().pooling == "slices" else nn.avg_pool(x, (2, 2), (2, 2))
            elif self.pooling == "maxpooling":
                x = nn.max_pool(x, (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        if embed:
            return x
        return Dense(self.num_classes)(x)


def _norm(kind: str, channels: int, train: bool):
    # PyTorch's eps 1e-5 everywhere; instance norm is GroupNorm with one group per channel (affine), as in the reference.
    if kind == "instancenorm":
        return InstanceNorm(epsilon=1e-5)
    if kind == "layernorm":
        return nn.GroupNorm(num_groups=1, epsilon=1e-5)
    if kind == "batchnorm":
        # PyTorch momentum 0.1 on the new value == Flax momentum 0.9 on the old one.
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
    return lambda x: x
