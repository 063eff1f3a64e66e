"""ResNet50V2 and MobileNetV2 as Keras Applications builds them, layer for layer, as pure Flax modules.

Every layer that holds weights is a Flax submodule named as its Keras layer ('conv2_block1_preact_bn',
'block_3_depthwise', ...), so Keras weight files map onto the parameters by name (`jaxdistill.models.keras_weights`)
and a Keras user's layer indices mean the same here (`keras_layer_names`, `trainable_mask`).

- ResNet50V2 (He et al. 2016, identity mappings): a 7x7/2 stem with zero padding 3, zero padding 1 then a 3x3/2 max
  pool (the zeros take part in the max, as in Keras), four stages of pre-activation bottleneck blocks (3, 4, 6, 3),
  the stride in the *last* block of stages 2-4 with a 1x1/2 max-pool shortcut, a 1x1 projection shortcut from the
  pre-activation in each stage's first block, then batch norm and ReLU ('post_bn'). BN epsilon 1.001e-5, momentum 0.99.
- MobileNetV2 (Sandler et al. 2018): inverted residual blocks with ReLU6, depthwise 3x3 convolutions (stride 2 with
  Keras's asymmetric `correct_pad`), channels rounded to multiples of 8 for the width multiplier `alpha`, a final
  1x1 conv to 1280 channels (more when alpha > 1). BN epsilon 1e-3, momentum 0.999.

Both expect inputs scaled to [-1, 1] (Keras's `preprocess_input` for these two models: x / 127.5 - 1); see
`KERAS_INPUT_MEAN` / `KERAS_INPUT_STD`. Initialisers are Keras's (Glorot uniform kernels, zero biases).

The head: 'transfer' (the Keras transfer-learning guide's: global average pooling, dropout, a new dense layer named
'classifier'), 'imagenet' (global average pooling and the 1000-way 'predictions' layer of an ImageNet file with top;
logits, no softmax) or 'none' (the pooled features).

Batch norm: with `frozen_bn=True` every batch norm of the backbone runs in inference mode (running statistics, never
updated) whatever `train` says, as the Keras guide does by calling the base model with `training=False`, also once
its top blocks are unfrozen for fine-tuning: fine-tuning then adapts the BN scales and offsets of unfrozen layers but
not their statistics, which a small batch of 32 would estimate poorly. With `frozen_bn=False` (training from random
initialisation) batch norm uses batch statistics in training and updates its running averages. Dropout in the head
follows `train`.

Intermediate features are sown under 'intermediates' ('stem', each stage's output, 'features' = the backbone's
output) for tests and feature extraction: `model.apply(v, x, mutable=['intermediates'])`.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdistill.errors import ConfigError

HEADS = ("transfer", "imagenet", "none")
#: The normalisation that maps [0, 1] pixels to the [-1, 1] these models expect: (x - 0.5) / 0.5.
KERAS_INPUT_MEAN = (0.5, 0.5, 0.5)
KERAS_INPUT_STD = (0.5, 0.5, 0.5)

_glorot = nn.initializers.glorot_uniform()


def _pad(x: jax.Array, before: int, after: int | None = None) -> jax.Array:
    after = before if after is None else after
    return jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")


def _head(module: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    _check_head(module.head)
    x = jnp.mean(x, axis=(1, 2))
    if module.head == "none":
        return x
    if module.head == "imagenet":
        return nn.Dense(module.num_classes, kernel_init=_glorot, name="predictions")(x)
    x = nn.Dropout(module.dropout, deterministic=not train)(x)
    return nn.Dense(module.num_classes, kernel_init=_glorot, name="classifier")(x)


class ResNet50V2(nn.Module):
    """Keras's ResNet50V2 on NHWC inputs in [-1, 1]; see the module docstring for head and batch norm."""
    num_classes: int = 2
    head: str = "transfer"
    dropout: float = 0.2
    frozen_bn: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = functools.partial(nn.BatchNorm, use_running_average=self.frozen_bn or not train, momentum=0.99,
                                 epsilon=1.001e-5)
        conv = functools.partial(nn.Conv, kernel_init=_glorot, padding="VALID")
        x = conv(64, (7, 7), strides=2, name="conv1_conv")(_pad(x, 3))
        x = nn.max_pool(_pad(x, 1), (3, 3), strides=(2, 2))
        self.sow("intermediates", "stem", x)
        for stage, (filters, blocks, stride) in enumerate(RESNET50V2_STAGES, start=2):
            for b in range(1, blocks + 1):
                name = f"conv{stage}_block{b}"
                block_stride = stride if b == blocks else 1
                preact = nn.relu(norm(name=f"{name}_preact_bn")(x))
                if b == 1:
                    shortcut = conv(4 * filters, (1, 1), name=f"{name}_0_conv")(preact)
                elif block_stride > 1:
                    shortcut = x[:, ::block_stride, ::block_stride, :]  # Keras's MaxPooling2D(1, strides=2)
                else:
                    shortcut = x
                y = conv(filters, (1, 1), use_bias=False, name=f"{name}_1_conv")(preact)
                y = nn.relu(norm(name=f"{name}_1_bn")(y))
                y = conv(filters, (3, 3), strides=block_stride, use_bias=False, name=f"{name}_2_conv")(_pad(y, 1))
                y = nn.relu(norm(name=f"{name}_2_bn")(y))
                y = conv(4 * filters, (1, 1), name=f"{name}_3_conv")(y)
                x = shortcut + y
            self.sow("intermediates", f"conv{stage}", x)
        x = nn.relu(norm(name="post_bn")(x))
        self.sow("intermediates", "features", x)
        return _head(self, x, train)


#: (filters, blocks, stride of the last block) of ResNet50V2's stages conv2..conv5.
RESNET50V2_STAGES = ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))

#: (expansion, output channels before alpha, stride) of MobileNetV2's inverted residual blocks 0..16.
MOBILENETV2_BLOCKS = ((1, 16, 1),
                      (6, 24, 2), (6, 24, 1),
                      (6, 32, 2), (6, 32, 1), (6, 32, 1),
                      (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
                      (6, 96, 1), (6, 96, 1), (6, 96, 1),
                      (6, 160, 2), (6, 160, 1), (6, 160, 1),
                      (6, 320, 1))
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # the widths Keras publishes ImageNet weights for


def make_divisible(value: float, divisor: int = 8) -> int:
    """Keras's (and the MobileNet paper's) channel rounding: nearest multiple of `divisor`, never below 90 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _mobilenet_widths(alpha: float) -> tuple[int, list[int], int]:
    first = make_divisible(32 * alpha)
    blocks = [make_divisible(int(channels * alpha)) for _, channels, _ in MOBILENETV2_BLOCKS]
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    return first, blocks, last


class MobileNetV2(nn.Module):
    """Keras's MobileNetV2 on NHWC inputs in [-1, 1], width multiplier `alpha`; see the module docstring."""
    num_classes: int = 2
    alpha: float = 1.0
    head: str = "transfer"
    dropout: float = 0.2
    frozen_bn: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if not self.alpha > 0:
            raise ConfigError(f"MobileNetV2 alpha must be > 0, got {self.alpha}")
        norm = functools.partial(nn.BatchNorm, use_running_average=self.frozen_bn or not train, momentum=0.999,
                                 epsilon=1e-3)
        conv = functools.partial(nn.Conv, kernel_init=_glorot, use_bias=False)
        first, widths, last = _mobilenet_widths(self.alpha)
        x = conv(first, (3, 3), strides=2, padding="SAME", name="Conv1")(x)
        x = nn.relu6(norm(name="bn_Conv1")(x))
        self.sow("intermediates", "stem", x)
        for block_id, ((expansion, _, stride), out_channels) in enumerate(zip(MOBILENETV2_BLOCKS, widths)):
            in_channels = x.shape[-1]
            prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
            y = x
            if block_id:
                y = conv(expansion * in_channels, (1, 1), name=f"{prefix}expand")(y)
                y = nn.relu6(norm(name=f"{prefix}expand_BN")(y))
            if stride == 2:  # Keras's correct_pad: for even sizes one pixel after only
                h, w = y.shape[1:3]
                y = jnp.pad(y, ((0, 0), (h % 2, 1), (w % 2, 1), (0, 0)))
            channels = y.shape[-1]
            y = conv(channels, (3, 3), strides=stride, padding="SAME" if stride == 1 else "VALID",
                     feature_group_count=channels, name=f"{prefix}depthwise")(y)
            y = nn.relu6(norm(name=f"{prefix}depthwise_BN")(y))
            y = conv(out_channels, (1, 1), name=f"{prefix}project")(y)
            y = norm(name=f"{prefix}project_BN")(y)
            x = x + y if (in_channels == out_channels and stride == 1) else y
            self.sow("intermediates", f"block_{block_id}", x)
        x = conv(last, (1, 1), name="Conv_1")(x)
        x = nn.relu6(norm(name="Conv_1_bn")(x))
        self.sow("intermediates", "features", x)
        return _head(self, x, train)


APPLICATIONS = {"resnet50v2": ResNet50V2, "mobilenetv2": MobileNetV2}


# ---- Keras's layer list: what a Keras user's layer indices mean ----------------------------------------------------
def keras_layer_names(model: nn.Module) -> list[str | None]:
    """The names of Keras's `model.layers` for this backbone, in Keras's order, from the input layer to the last
    backbone layer (no head): ResNet50V2 has 190, MobileNetV2 154. Layers Keras names automatically (ResNet50V2's
    1x1 max-pool shortcuts) are None. `base_model.layers[100:]` in the Keras guide is `keras_layer_names(m)[100:]`."""
    if isinstance(model, ResNet50V2):
        names: list[str | None] = ["input_layer", "conv1_pad", "conv1_conv", "pool1_pad", "pool1_pool"]
        for stage, (_, blocks, stride) in enumerate(RESNET50V2_STAGES, start=2):
            for b in range(1, blocks + 1):
                n = f"conv{stage}_block{b}"
                names += [f"{n}_preact_bn", f"{n}_preact_relu", f"{n}_1_conv", f"{n}_1_bn", f"{n}_1_relu",
                          f"{n}_2_pad", f"{n}_2_conv", f"{n}_2_bn", f"{n}_2_relu"]
                if b == 1:
                    names.append(f"{n}_0_conv")
                elif b == blocks and stride > 1:
                    names.append(None)
                names += [f"{n}_3_conv", f"{n}_out"]
        return names + ["post_bn", "post_relu"]
    if isinstance(model, MobileNetV2):
        names = ["input_layer", "Conv1", "bn_Conv1", "Conv1_relu"]
        for block_id, (_, _, stride) in enumerate(MOBILENETV2_BLOCKS):
            p = f"block_{block_id}_" if block_id else "expanded_conv_"
            if block_id:
                names += [f"{p}expand", f"{p}expand_BN", f"{p}expand_relu"]
            if stride == 2:
                names.append(f"{p}pad")
            names += [f"{p}depthwise", f"{p}depthwise_BN", f"{p}depthwise_relu", f"{p}project", f"{p}project_BN"]
            widths = _mobilenet_widths(model.alpha)[1]
            in_channels = _mobilenet_widths(model.alpha)[0] if block_id == 0 else widths[block_id - 1]
            if stride == 1 and in_channels == widths[block_id]:
                names.append(f"{p}add")
        return names + ["Conv_1", "Conv_1_bn", "out_relu"]
    raise ConfigError(f"{type(model).__name__} is not a Keras Applications backbone")


HEAD_LAYERS = ("classifier", "predictions")

#: Where fine-tuning starts by default: ResNet50V2's last stage (conv5), MobileNetV2 from Keras layer 100 (the Keras
#: transfer-learning guide's `fine_tune_at`).
DEFAULT_FINE_TUNE_FROM = {"resnet50v2": "conv5_block1_preact_bn", "mobilenetv2": 100}


def first_trainable_index(model: nn.Module, fine_tune_from: str | int) -> int:
    """The Keras layer index from which layers train: an index (Keras's `fine_tune_at`) or a layer's name."""
    names = keras_layer_names(model)
    if isinstance(fine_tune_from, int) or str(fine_tune_from).isdigit():
        index = int(fine_tune_from)
        if not 0 <= index <= len(names):
            raise ConfigError(f"fine_tune_from={index} is outside the {len(names)} Keras layers of "
                              f"{type(model).__name__} (0 trains the whole backbone, {len(names)} only the head)")
        return index
    if fine_tune_from not in names:
        raise ConfigError(f"{type(model).__name__} has no Keras layer {fine_tune_from!r}; give a layer name such as "
                          f"{names[2]!r} or an index 0..{len(names)}")
    return names.index(fine_tune_from)


def trainable_mask(model: nn.Module, params: Any, fine_tune_from: str | int | None) -> Any:
    """A pytree of bools shaped like `params`: True where a parameter trains. None: only the head (feature
    extraction); otherwise the head and every backbone layer at or after `fine_tune_from` in Keras's order."""
    names = keras_layer_names(model)
    start = len(names) if fine_tune_from is None else first_trainable_index(model, fine_tune_from)
    trainable = {n for n in names[start:] if n is not None} | set(HEAD_LAYERS)
    unknown = set(params) - set(n for n in names if n) - set(HEAD_LAYERS)
    if unknown:
        raise ConfigError(f"parameters {sorted(unknown)} are not layers of {type(model).__name__}")
    return {layer: jax.tree.map(lambda _: layer in trainable, sub) for layer, sub in params.items()}


__all__ = ["ResNet50V2", "MobileNetV2", "APPLICATIONS", "HEADS", "KERAS_INPUT_MEAN", "KERAS_INPUT_STD",
           "keras_layer_names", "trainable_mask", "first_trainable_index", "DEFAULT_FINE_TUNE_FROM",
           "make_divisible", "MOBILENETV2_ALPHAS"]
