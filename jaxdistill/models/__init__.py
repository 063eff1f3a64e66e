"""Flax models and a by-name factory."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

from jaxdistill.errors import ConfigError
from jaxdistill.models.convnet import ConvNet
from jaxdistill.models.applications import MobileNetV2, ResNet50V2
from jaxdistill.models.classic import VGG, AlexNet, LeNet, ResNet
from jaxdistill.models.mlp import MLP

MODELS = {"convnet": ConvNet, "mlp": MLP, "resnet50v2": ResNet50V2, "mobilenetv2": MobileNetV2,
          "lenet": LeNet, "alexnet": AlexNet, "vgg11": VGG, "resnet18": ResNet}
# The cross-architecture evaluation of the DC and DSA papers (Table 2): the reference's network names and ours
CROSS_ARCHITECTURES = {"MLP": "mlp:128,128", "ConvNet": "convnet", "LeNet": "lenet", "AlexNet": "alexnet",
                       "VGG11": "vgg11", "ResNet18": "resnet18"}


def make_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a model by name (a key of MODELS: 'convnet', 'mlp', 'lenet', 'alexnet', 'vgg11', 'resnet18',
    'resnet50v2', 'mobilenetv2') with its keyword settings."""
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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One network architecture: a model name and its settings, spelled one way everywhere (a method's config, a
    run's config.json, evaluation). Canonical: settings equal to the model's defaults are dropped and the rest
    sorted, so 'convnet:width=128' and 'convnet' are the same config; `str()` gives 'convnet:depth=4,width=64' and
    `ModelConfig.parse` reads it back. Backend choices (a conv kernel) are the policy's, not part of a model config.
    """
    name: str = "convnet"
    settings: tuple = ()  # ((name, value), ...)

    def __post_init__(self):
        name = self.name.strip().lower()
        if name not in MODELS:
            raise ConfigError(f"unknown model {self.name!r}; choose one of {', '.join(sorted(MODELS))}")
        fields = {f.name: f for f in dataclasses.fields(MODELS[name]) if f.name not in ("num_classes", "parent",
                                                                                           "name")}
        settings = dict(self.settings.items() if isinstance(self.settings, dict) else self.settings)
        unknown = set(settings) - set(fields)
        if unknown:
            raise ConfigError(f"model {name!r} has no setting(s) {', '.join(sorted(unknown))}; "
                              f"its settings are {', '.join(sorted(fields))}")
        kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items()
                if v != fields[k].default and not (isinstance(v, (list, tuple)) and tuple(v) == fields[k].default)}
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "settings", tuple(sorted(kept.items())))

    @classmethod
    def parse(cls, text: "str | ModelConfig") -> "ModelConfig":
        """'convnet', 'convnet:width=64,depth=4' or 'mlp:1200,1200,dropout=0.5' (see `parse_model`)."""
        if isinstance(text, ModelConfig):
            return text
        return cls(*parse_model(text))

    def build(self, num_classes: int, **extra: Any) -> nn.Module:
        """The Flax module for `num_classes` outputs; `extra` adds settings such as a policy's conv kernel."""
        return make_model(self.name, num_classes, **{**dict(self.settings), **extra})

    def get(self, setting: str) -> Any:
        """A setting's value, the model's default when not set."""
        return dict(self.settings).get(setting, {f.name: f.default for f in dataclasses.fields(MODELS[self.name])}
                                       .get(setting))

    def __str__(self) -> str:
        def spell(v):
            return "_".join(str(x) for x in v) if isinstance(v, tuple) else str(v)
        parts = [f"{k}={spell(v)}" for k, v in self.settings if k != "widths"]
        widths = [str(w) for w in dict(self.settings).get("widths", ())]
        return self.name + (":" + ",".join(widths + parts) if widths or parts else "")


__all__ = ["AlexNet", "CROSS_ARCHITECTURES", "ConvNet", "LeNet", "MLP", "MobileNetV2", "ResNet", "ResNet50V2", "VGG",
           "MODELS", "ModelConfig", "make_model", "parse_model"]
