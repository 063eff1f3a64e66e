"""Random selection: the standard coreset baseline (ipc random real images per class), as a method.

It optimises nothing: `init` draws the images and `step` leaves them unchanged, so it runs through the same runner,
checkpoints and evaluation as every learned method and anchors the results table (MNIST 64.9 / 95.1 / 97.9 at ipc
1 / 10 / 50 in the DC paper).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdistill.errors import ConfigError
from jaxdistill.methods.base import Method, method, register_method
from jaxdistill.synthetic import SyntheticSet, init_synthetic


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    ipc: int = 1

    def __post_init__(self):
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")


class RandomState(NamedTuple):
    synthetic: SyntheticSet
    iteration: jax.Array


@register_method("random", RandomConfig, "random real images per class (coreset baseline)", iterations=0)
def random_selection(config: RandomConfig) -> Method:
    def init(key, inputs):
        return RandomState(init_synthetic(key, inputs.real, config.ipc, "real"), jnp.zeros((), jnp.int32))

    def step(state, key, inputs):
        del key, inputs
        return state._replace(iteration=state.iteration + 1), {}

    return method(init, lambda state: state.synthetic, step=step)
