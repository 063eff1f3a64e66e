"""What a network costs: parameters, and floating-point operations per image from XLA's cost analysis.

`forward_flops` lowers one inference forward pass for a batch of one image and reads XLA's own count (multiply-adds
count as two operations), so it counts what the compiled program does, not a hand formula. Training is estimated as
3x the forward pass per image per epoch (forward, plus a backward pass of about twice its cost: the usual rule,
`TRAIN_FLOPS_FACTOR`), and records that use it say so.
"""
from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.models import ModelConfig

#: Training FLOPs per image and epoch, as a multiple of one forward pass (forward + backward ~ 1 + 2).
TRAIN_FLOPS_FACTOR = 3.0


def _init(model, image_shape):
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32), train=False)
    return variables


def param_count(model_config: ModelConfig | str, num_classes: int, image_shape: tuple[int, ...]) -> int:
    """Trainable parameters of the network for images of `image_shape` (H, W, C)."""
    model = ModelConfig.parse(model_config).build(num_classes)
    variables = jax.eval_shape(lambda: _init(model, image_shape))
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(variables.get("params", {}))))


def forward_flops(model_config: ModelConfig | str, num_classes: int, image_shape: tuple[int, ...]) -> float:
    """XLA's FLOP count of one inference forward pass on one image of `image_shape`."""
    model = ModelConfig.parse(model_config).build(num_classes)
    variables = _init(model, image_shape)
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
        variables, jnp.zeros((1, *image_shape), jnp.float32))
    analysis = lowered.cost_analysis()
    if not analysis:  # some backends only analyse the compiled program
        analysis = lowered.compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", float("nan")))


def training_cost(model_config: ModelConfig | str, num_classes: int, image_shape: tuple[int, ...],
                  num_images: int, epochs: int) -> dict[str, Any]:
    """Parameters, forward FLOPs per image and the estimated FLOPs of training on `num_images` for `epochs`."""
    flops = forward_flops(model_config, num_classes, image_shape)
    return {"model": str(ModelConfig.parse(model_config)), "params": param_count(model_config, num_classes,
                                                                                 image_shape),
            "forward_flops_per_image": flops, "train_flops_estimate": TRAIN_FLOPS_FACTOR * flops * num_images * epochs,
            "train_flops_rule": f"{TRAIN_FLOPS_FACTOR:g} x forward FLOPs x images x epochs"}


def inference_latency(model, variables: Any, image_shape: tuple[int, ...], batch_size: int, repeats: int = 10
                      ) -> float:
    """Median wall seconds per image of a compiled inference forward pass on a batch of `batch_size` images on the
    default device (after one warm-up call; each call waits for its result)."""
    fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
    x = jnp.zeros((batch_size, *image_shape), jnp.float32)
    fn(variables, x).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(variables, x).block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch_size


__all__ = ["TRAIN_FLOPS_FACTOR", "forward_flops", "inference_latency", "param_count", "training_cost"]
