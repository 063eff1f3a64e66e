"""Flax models and a by-name factory."""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxdistill.errors import ConfigError
from jaxdistill.models.convnet import ConvNet
from jaxdistill.models.mlp import MLP

MODELS = {"convnet": ConvNet, "mlp": MLP}


def make_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a model by name ('convnet', 'mlp') with its keyword settings."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    return cls(num_classes=num_classes, **kwargs)


__all__ = ["ConvNet", "MLP", "MODELS", "make_model"]
