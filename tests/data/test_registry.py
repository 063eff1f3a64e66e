import dataclasses
from pathlib import Path

import pytest

from jaxdistill.data import registry
from jaxdistill.data.registry import FORMATS, REGISTRY, DatasetSpec, FileSpec, get_spec, register
from jaxdistill.errors import ConfigError

SHA = "0" * 64
_ROOT = Path(__file__).resolve().parents[2]
MNIST_SUMS = next(
    (p for p in (_ROOT / "shared", _ROOT.parent / "shared") if (p / "data/mnist/SHA256SUMS").is_file()), _ROOT / "shared"
) / "data" / "mnist" / "SHA256SUMS"


def make_spec(**overrides):
    fields = dict(
        name="toy", image_shape=(8, 8, 3), num_classes=2, class_names=("x", "y"), mean=(0.5, 0.5, 0.5),
        std=(0.2, 0.2, 0.2), files=(FileSpec("a.bin", ("http://h/a.bin",), SHA, 3),), format="idx",
        train_size=4, test_size=2, tfds_name=None, homepage="http://h/",
    )
    fields.update(overrides)
    return DatasetSpec(**fields)


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(REGISTRY))
    return registry.REGISTRY


def test_builtins():
    assert {"mnist", "fashion_mnist", "cifar10"} <= set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert name == spec.name.lower()
        assert len(spec.class_names) == spec.num_classes
        assert len(spec.mean) == len(spec.std) == spec.image_shape[2]
        for f in spec.files:
            assert len(f.sha256) == 64 and f.urls and f.size
    mnist, fashion, cifar = get_spec("mnist"), get_spec("fashion_mnist"), get_spec("cifar10")
    assert (mnist.image_shape, mnist.mean, mnist.std) == ((28, 28, 1), (0.1307,), (0.3081,))
    assert (fashion.mean, fashion.std) == ((0.2860,), (0.3530,))
    assert cifar.format == "cifar10_python" and cifar.image_shape == (32, 32, 3)
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2023, 0.1994, 0.2010)
    assert [f.filename for f in cifar.files] == ["cifar-10-python.tar.gz"]
    assert cifar.files[0].urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert (mnist.train_size, mnist.test_size, cifar.train_size, cifar.test_size) == (60000, 10000, 50000, 10000)


def test_mnist_mirror_order():
    for f in get_spec("mnist").files:
        assert f.urls[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/" + f.filename
        assert f.urls[1] == "http://yann.lecun.com/exdb/mnist/" + f.filename
    for f in get_spec("fashion_mnist").files:
        assert f.urls[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" + f.filename


def test_mnist_hashes_match_shared_sums():
    if not MNIST_SUMS.is_file():
        pytest.skip(f"{MNIST_SUMS} is not present")
    sums = dict(reversed(line.split()) for line in MNIST_SUMS.read_text().splitlines() if line.strip())
    assert {f.filename: f.sha256 for f in get_spec("mnist").files} == sums


def test_get_spec_case_insensitive_and_passthrough():
    assert get_spec("MNIST") is get_spec("mnist") is get_spec(" Mnist ")
    spec = make_spec()
    assert get_spec(spec) is spec


def test_unknown_name_lists_known():
    with pytest.raises(ConfigError) as excinfo:
        get_spec("imagenet")
    msg = str(excinfo.value)
    assert "imagenet" in msg and "mnist" in msg and "cifar10" in msg and "fashion_mnist" in msg


def test_register_and_refuse_duplicates(scratch_registry):
    spec = register(make_spec(name="Toy"))
    assert get_spec("toy") is spec
    with pytest.raises(ConfigError, match="already registered"):
        register(make_spec(name="TOY"))
    with pytest.raises(ConfigError, match="already registered"):
        register(get_spec("mnist"))


def test_registry_can_hold_mhist(scratch_registry):
    assert "mhist" in FORMATS
    spec = register(make_spec(name="mhist_like", format="mhist", image_shape=(224, 224, 3),
                              files=(FileSpec("images.zip", (), SHA), FileSpec("annotations.csv", (), SHA))))
    assert get_spec("MHIST_LIKE") is spec and spec.file("annotations.csv").urls == ()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(format="png"), "format"),
        (dict(class_names=("x",)), "class_names"),
        (dict(mean=(0.5,)), "per channel"),
        (dict(std=(0.2, 0.0, 0.2)), "std"),
        (dict(image_shape=(8, 8)), "image_shape"),
        (dict(files=()), "at least one file"),
        (dict(files=(FileSpec("a", (), SHA), FileSpec("a", (), SHA))), "repeat"),
        (dict(train_size=0), "train_size"),
    ],
)
def test_invalid_specs(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_spec(**overrides)


def test_filespec_validation():
    assert FileSpec("a", ["http://x/a"], "AB" * 32).sha256 == "ab" * 32
    assert FileSpec("a", ["http://x/a"], SHA).urls == ("http://x/a",)
    with pytest.raises(ConfigError, match="64 hex"):
        FileSpec("a", (), "abc")
    with pytest.raises(ConfigError, match="plain file name"):
        FileSpec("../a", (), SHA)
    with pytest.raises(ConfigError, match="tuple of URLs"):
        FileSpec("a", "http://x/a", SHA)


def test_specs_are_frozen():
    spec = get_spec("mnist")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_classes = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.files[0].sha256 = SHA


def test_file_lookup():
    spec = get_spec("mnist")
    assert spec.file("t10k-labels-idx1-ubyte.gz").size == 4542
    with pytest.raises(ConfigError, match="no file"):
        spec.file("nope")
