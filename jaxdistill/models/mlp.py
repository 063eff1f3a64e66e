"""Multi-layer perceptron on flattened images (Hinton et al.'s MNIST teacher and student nets)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from jaxdistill.models.layers import Dense


class MLP(nn.Module):
    """Flatten -> [Dense(w) -> ReLU -> Dropout] per width -> Dense(num_classes).

    Dropout (rate `dropout`, on hidden activations; `input_dropout` on the input) is active only with train=True and
    needs a 'dropout' PRNG stream.
    """
    num_classes: int
    widths: Sequence[int] = (800, 800)
    dropout: float = 0.0
    input_dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        if self.input_dropout > 0:
            x = nn.Dropout(self.input_dropout, deterministic=not train)(x)
        for width in self.widths:
            x = nn.relu(Dense(width)(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return Dense(self.num_classes)(x)
