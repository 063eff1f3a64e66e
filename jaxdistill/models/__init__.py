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


def parse_model(text: str) -> tuple[str, tuple]:
    """'mlp:1200,1200,dropout=0.5' or 'convnet:width=32,depth=3' -> (model name, model_kwargs).

    Bare integers are an MLP's hidden widths; key=value pairs are the model's settings (ints, floats or strings).
    """
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r} in {text!r}; choose one of {', '.join(sorted(MODELS))}")
    widths, kwargs = [], {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            if not key.isdigit() or name != "mlp":
                raise ConfigError(f"{part!r} in {text!r}: bare numbers are MLP widths; give other settings as key=value")
            widths.append(int(key))
            continue
        for cast in (int, float, str):
            try:
                kwargs[key.strip()] = cast(value.strip())
                break
            except ValueError:
                continue
    if widths:
        kwargs["widths"] = tuple(widths)
    return name, tuple(sorted(kwargs.items()))


__all__ = ["ConvNet", "MLP", "MODELS", "make_model", "parse_model"]
