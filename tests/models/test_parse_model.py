import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.models import parse_model


@pytest.mark.parametrize("text,expected", [
    ("mlp:800,800", ("mlp", (("widths", (800, 800)),))),
    ("MLP:1200,1200,dropout=0.5,input_dropout=0.2",
     ("mlp", (("dropout", 0.5), ("input_dropout", 0.2), ("widths", (1200, 1200))))),
    ("convnet:width=32,depth=3,norm=batchnorm", ("convnet", (("depth", 3), ("norm", "batchnorm"), ("width", 32)))),
    ("convnet", ("convnet", ())),
])
def test_parse_model(text, expected):
    assert parse_model(text) == expected


@pytest.mark.parametrize("text", ["resnet:1", "convnet:32", "mlp:x"])
def test_parse_model_refuses_bad_specs(text):
    with pytest.raises(ConfigError):
        parse_model(text)
