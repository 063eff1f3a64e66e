import dataclasses
import os
from pathlib import Path

import pytest

from jaxdistill.data import registry
from jaxdistill.data.registry import FORMATS, REGISTRY, DatasetSpec, FileSpec, get_spec, register
from jaxdistill.errors import ConfigError, DataError

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


def test_official_class_counts_sum_to_the_split_sizes():
    for spec in REGISTRY.values():
        assert sum(spec.train_counts) == spec.train_size and sum(spec.test_counts) == spec.test_size
    assert get_spec("cifar10").imbalance() == 1.0 and get_spec("mnist").imbalance("test") == pytest.approx(1135 / 892)
    with pytest.raises(ConfigError, match="train_counts"):
        make_spec(train_counts=(1, 2))


@pytest.mark.skipif(not os.environ.get("JAXDISTILL_DATA"), reason="needs the MNIST files ($JAXDISTILL_DATA)")
def test_mnist_class_counts_are_those_of_the_files():
    from jaxdistill.data.sources import load_dataset
    ds = load_dataset("mnist", progress=False)
    assert (ds.class_counts("train"), ds.class_counts("test")) == (ds.spec.train_counts, ds.spec.test_counts)


def test_a_folder_dataset_is_found_by_its_index_file():
    spec = make_spec(files=(), index_file="annotations.csv", format="mhist")
    assert spec.is_folder_dataset
    with pytest.raises(ConfigError, match="index_file"):
        make_spec(index_file="a/b.csv", files=())


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


# ---- per-dataset defaults --------------------------------------------------------------------------------------------

# What default_eval_augmentation / default_dsa_strategy returned when they switched on dataset names (before the
# defaults moved onto the specs): the spec-based lookups must give exactly these.
_NAME_SWITCH_RESULTS = {
    "mnist": ("crop_scale_rotate", "color_crop_cutout_scale_rotate"),
    "fashion_mnist": ("none", "color_crop_cutout_flip_scale_rotate"),
    "cifar10": ("none", "color_crop_cutout_flip_scale_rotate"),
}


def test_defaults_on_specs_equal_the_old_name_switches():
    from jaxdistill.data.augment import default_eval_augmentation, eval_augmentation_for
    from jaxdistill.data.dsa import default_dsa_strategy, dsa_strategy_for

    for name, (eval_aug, dsa_strategy) in _NAME_SWITCH_RESULTS.items():
        spec = get_spec(name)
        assert (spec.defaults.eval_augmentation, spec.defaults.dsa_strategy) == (eval_aug, dsa_strategy)
        for key in (name, name.upper(), spec, spec.at_resolution(spec.resolutions[-1])):
            assert default_eval_augmentation(key) == eval_augmentation_for(spec) == eval_aug
            assert default_dsa_strategy(key) == dsa_strategy_for(spec) == dsa_strategy
            assert default_eval_augmentation(key, model_eval="ConvNetBN") == "crop_noise"
    # Names that are not registered keep the old rule.
    assert default_eval_augmentation("svhn") == default_eval_augmentation("cifar100") == "none"
    assert default_dsa_strategy("svhn") == "color_crop_cutout_scale_rotate"
    assert default_dsa_strategy("cifar100") == "color_crop_cutout_flip_scale_rotate"


def test_dataset_defaults_follow_the_spec_not_the_name():
    from jaxdistill.data.augment import default_eval_augmentation
    from jaxdistill.data.dsa import default_dsa_strategy

    spec = make_spec(name="mnist_like", defaults=registry.DatasetDefaults("crop_scale_rotate", "crop_scale"))
    assert default_eval_augmentation(spec) == "crop_scale_rotate" and default_dsa_strategy(spec) == "crop_scale"
    assert make_spec(name="mnist").defaults == registry.DatasetDefaults()  # unregistered spec: plain defaults
    with pytest.raises(ConfigError, match="eval_augmentation"):
        registry.DatasetDefaults(eval_augmentation="flip")


def test_convnet_depth_table():
    defaults = registry.DatasetDefaults()
    assert [defaults.convnet_depth(r) for r in (28, 32, 64, 128)] == [3, 3, 4, 5]
    with pytest.raises(ConfigError, match=r"48x48.*28 px -> 3.*depth"):
        defaults.convnet_depth(48)
    assert get_spec("mnist").convnet_depth() == get_spec("cifar10").convnet_depth() == 3
    assert registry.DatasetDefaults(convnet_depths=((224, 6),)).convnet_depth(224) == 6
    with pytest.raises(ConfigError, match="distinct"):
        registry.DatasetDefaults(convnet_depths=((32, 3), (32, 4)))


# ---- resolutions -----------------------------------------------------------------------------------------------------


def test_resolutions_of_builtins():
    assert get_spec("mnist").allowed_resolutions == get_spec("fashion_mnist").allowed_resolutions == (28, 32)
    assert get_spec("cifar10").allowed_resolutions == (32,)
    assert make_spec().resolutions == () and make_spec().allowed_resolutions == (8,)  # default: the native side only
    assert make_spec(resolutions=[16, 4]).allowed_resolutions == (4, 8, 16)
    with pytest.raises(ConfigError, match="positive image sides"):
        make_spec(resolutions=(0,))


def test_at_resolution():
    mnist = get_spec("mnist")
    assert mnist.at_resolution(None) is mnist and mnist.at_resolution(28) is mnist
    at32 = mnist.at_resolution(32)
    assert at32.image_shape == (32, 32, 1) and at32.native_shape == (28, 28, 1) and at32.is_resized
    assert (at32.name, at32.mean, at32.files, at32.allowed_resolutions) == (mnist.name, mnist.mean, mnist.files, (28, 32))
    assert at32.at_resolution(28) == mnist and at32.at_resolution(None) == mnist and at32.at_resolution(32) == at32
    assert not mnist.is_resized and mnist.native_shape == (28, 28, 1)


@pytest.mark.parametrize("resolution, fragment", [(64, "resolution 64.*28, 32"), (0, "resolution 0"),
                                                  ("32", "image side in pixels"), (32.0, "image side")])
def test_at_resolution_refuses_what_the_spec_does_not_allow(resolution, fragment):
    with pytest.raises(ConfigError, match=fragment):
        get_spec("mnist").at_resolution(resolution)


def test_cifar_only_at_32():
    with pytest.raises(ConfigError, match=r"'cifar10' cannot be loaded at resolution 28; allowed image sides \(pixels\): 32"):
        get_spec("cifar10").at_resolution(28)


def test_resolutions_need_square_images():
    with pytest.raises(ConfigError, match="square"):
        make_spec(image_shape=(8, 6, 3), resolutions=(16,))
    assert make_spec(image_shape=(8, 6, 3)).allowed_resolutions == ()
    with pytest.raises(ConfigError, match="only its native 8x6"):
        make_spec(image_shape=(8, 6, 3)).at_resolution(8)


# ---- integrity declarations ------------------------------------------------------------------------------------------


def test_decompressed_sha256_only_for_gz_and_names():
    f = FileSpec("x-idx1-ubyte.gz", (), SHA, decompressed_sha256="AB" * 32)
    assert f.decompressed_sha256 == "ab" * 32 and f.accepted_names == ("x-idx1-ubyte.gz", "x-idx1-ubyte")
    assert FileSpec("x.gz", (), SHA).accepted_names == ("x.gz",)  # no content digest: only the archive
    with pytest.raises(ConfigError, match="only for gzip files"):
        FileSpec("x.bin", (), SHA, decompressed_sha256=SHA)
    with pytest.raises(ConfigError, match="64 hex"):
        FileSpec("x.gz", (), SHA, decompressed_sha256="abc")
    with pytest.raises(ConfigError, match="repeat"):
        make_spec(files=(f, FileSpec("x-idx1-ubyte", (), SHA)))


def test_builtin_idx_files_carry_decompressed_digests():
    for name in ("mnist", "fashion_mnist"):
        for f in get_spec(name).files:
            assert f.decompressed_sha256 and f.uncompressed_name == f.filename[:-3]
    assert get_spec("mnist").file("train-images-idx3-ubyte.gz").decompressed_sha256 == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db")


def test_mnist_decompressed_digests_match_the_shared_files(tmp_path):
    import gzip
    import hashlib

    folder = MNIST_SUMS.parent
    if not folder.is_dir():
        pytest.skip(f"{folder} is not present")
    for f in get_spec("mnist").files:
        with gzip.open(folder / f.filename, "rb") as src:
            assert hashlib.sha256(src.read()).hexdigest() == f.decompressed_sha256, f.filename


def _manifest_arrays():
    import numpy as np

    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    test_x = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    return train_x, np.array([0, 1, 1, 0]), test_x, np.array([1, 0])


def test_manifest_verification():
    import numpy as np

    arrays = _manifest_arrays()
    manifest = registry.Manifest((2, 2), (1, 1), (8, 8, 3), registry.arrays_sha256(*arrays))
    spec = make_spec(files=(), manifest=manifest)  # a folder dataset needs no per-file digests
    registry.verify_manifest(spec.manifest, *arrays, where="folder f")
    # The digest depends on the values, not the integer type the labels came in.
    assert registry.arrays_sha256(*arrays) == registry.arrays_sha256(arrays[0], arrays[1].astype(np.uint8), *arrays[2:])
    train_x, train_y, test_x, test_y = arrays
    with pytest.raises(DataError, match=r"folder f: train split has 3 images .*\(1, 2\).*expected 4 with \(2, 2\)"):
        registry.verify_manifest(manifest, train_x[1:], train_y[1:], test_x, test_y, where="folder f")
    with pytest.raises(DataError, match=r"test images have shape \(8, 8, 1\)"):
        registry.verify_manifest(manifest, train_x, train_y, test_x[..., :1], test_y, where="folder f")
    changed = train_x.copy()
    changed[0, 0, 0, 0] ^= 1
    with pytest.raises(DataError, match="some image differs"):
        registry.verify_manifest(manifest, changed, train_y, test_x, test_y, where="folder f")


def test_manifest_must_agree_with_spec():
    arrays = _manifest_arrays()
    digest = registry.arrays_sha256(*arrays)
    with pytest.raises(ConfigError, match="manifest counts"):
        make_spec(manifest=registry.Manifest((2, 1), (1, 1), (8, 8, 3), digest))
    with pytest.raises(ConfigError, match="manifest image_shape"):
        make_spec(manifest=registry.Manifest((2, 2), (1, 1), (8, 8, 1), digest))
    with pytest.raises(ConfigError, match="one count per class"):
        registry.Manifest((2, 2), (1,), (8, 8, 3), digest)
