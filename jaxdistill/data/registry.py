"""What each dataset is: its files (with mirrors and sha256), shapes, classes and normalisation.

A `DatasetSpec` is plain data. `load_dataset` accepts either a registered name or a spec object,
so a dataset does not have to be registered to be loaded (tests build tiny specs of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jaxdistill.errors import ConfigError

__all__ = ["FORMATS", "FileSpec", "DatasetSpec", "REGISTRY", "register", "get_spec"]

#: On-disk layouts a spec may declare. 'mhist' has no reader yet; its spec can still be registered.
FORMATS: tuple[str, ...] = ("idx", "cifar10_python", "mhist")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    urls are mirrors tried in order (may be empty for files that can only be fetched by hand);
    sha256 is the lowercase hex digest of the file as downloaded; size is its byte count, if known.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.filename or "/" in self.filename or "\\" in self.filename or self.filename in (".", ".."):
            raise ConfigError(f"FileSpec filename {self.filename!r} must be a plain file name (no folders)")
        if isinstance(self.urls, str):
            raise ConfigError(f"FileSpec {self.filename}: urls must be a tuple of URLs, not one string")
        object.__setattr__(self, "urls", tuple(self.urls))
        digest = str(self.sha256).strip().lower()
        if not _SHA256_RE.match(digest):
            raise ConfigError(
                f"FileSpec {self.filename}: sha256 {self.sha256!r} is not 64 hex digits"
            )
        object.__setattr__(self, "sha256", digest)
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ConfigError(f"FileSpec {self.filename}: size {self.size!r} must be a non-negative int or None")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: image_shape is (H, W, C); mean/std are per channel for images scaled to [0, 1]."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files: tuple[FileSpec, ...]
    format: str
    train_size: int
    test_size: int
    tfds_name: str | None = None
    homepage: str = ""

    def __post_init__(self) -> None:
        for attr in ("image_shape", "class_names", "mean", "std", "files"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        where = f"dataset spec {self.name!r}"
        if not self.name or self.name != self.name.strip():
            raise ConfigError(f"{where}: name must be a non-empty string without surrounding spaces")
        if len(self.image_shape) != 3 or any(int(d) <= 0 for d in self.image_shape):
            raise ConfigError(f"{where}: image_shape {self.image_shape} must be three positive ints (H, W, C)")
        channels = self.image_shape[2]
        if self.num_classes < 1:
            raise ConfigError(f"{where}: num_classes must be at least 1, got {self.num_classes}")
        if len(self.class_names) != self.num_classes:
            raise ConfigError(
                f"{where}: {len(self.class_names)} class_names for {self.num_classes} classes"
            )
        if len(self.mean) != channels or len(self.std) != channels:
            raise ConfigError(
                f"{where}: mean and std need one value per channel ({channels}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"{where}: every std must be positive, got {self.std}")
        if self.format not in FORMATS:
            raise ConfigError(f"{where}: format {self.format!r} is not one of {', '.join(FORMATS)}")
        if not self.files:
            raise ConfigError(f"{where}: needs at least one file")
        names = [f.filename for f in self.files]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: file names repeat: {names}")
        if self.train_size < 1 or self.test_size < 1:
            raise ConfigError(f"{where}: train_size and test_size must be positive")

    def file(self, filename: str) -> FileSpec:
        """The FileSpec called `filename`."""
        for f in self.files:
            if f.filename == filename:
                return f
        raise ConfigError(
            f"dataset {self.name!r} has no file {filename!r}; its files are "
            + ", ".join(f.filename for f in self.files)
        )


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add `spec` under its lowercased name; a name already registered is refused."""
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"register() takes a DatasetSpec, got {type(spec).__name__}")
    key = spec.name.lower()
    if key in REGISTRY:
        raise ConfigError(f"a dataset called {spec.name!r} is already registered")
    REGISTRY[key] = spec
    return spec


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The registered spec called `name` (case-insensitive); a DatasetSpec is returned as is."""
    if isinstance(name, DatasetSpec):
        return name
    key = str(name).strip().lower()
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {known}") from None


def _idx_files(base_urls: tuple[str, ...], table: tuple[tuple[str, str, int], ...]) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(filename=fn, urls=tuple(base + fn for base in base_urls), sha256=digest, size=size)
        for fn, digest, size in table
    )


# MNIST. sha256 and sizes: /work/shared/data/mnist/SHA256SUMS (files checked byte-for-byte there), which agree
# with tensorflow/datasets tensorflow_datasets/url_checksums/mnist.txt.
register(
    DatasetSpec(
        name="mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        mean=(0.1307,),
        std=(0.3081,),
        files=_idx_files(
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            (
                ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
                ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
                ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
                ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
            ),
        ),
        format="idx",
        train_size=60000,
        test_size=10000,
        tfds_name="mnist",
        homepage="http://yann.lecun.com/exdb/mnist/",
    )
)

# Fashion-MNIST. sha256 and sizes: tensorflow/datasets tensorflow_datasets/url_checksums/fashion_mnist.txt
# (URL, size, sha256), cross-checked against the sha256 table in pytorch/vision
# torchvision/prototype/datasets/_builtin/mnist.py (FashionMNIST._CHECKSUMS); both agree.
# The second mirror is the dataset authors' GitHub repository, which serves the same files.
register(
    DatasetSpec(
        name="fashion_mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        mean=(0.2860,),
        std=(0.3530,),
        files=_idx_files(
            (
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ),
            (
                ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
                ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
                ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
                ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
            ),
        ),
        format="idx",
        train_size=60000,
        test_size=10000,
        tfds_name="fashion_mnist",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    )
)

# CIFAR-10 (python version). sha256: tensorflow/datasets tensorflow_datasets/url_checksums/cifar10.csv (older
# revision, when TFDS used the python archive), cross-checked against pytorch/vision
# torchvision/prototype/datasets/_builtin/cifar.py and keras' cifar10.load_data file_hash; all three agree.
# Size 170498071 bytes as recorded by several independent projects pinning this archive.
register(
    DatasetSpec(
        name="cifar10",
        image_shape=(32, 32, 3),
        num_classes=10,
        class_names=(
            "airplane", "automobile", "bird", "cat", "deer",
            "dog", "frog", "horse", "ship", "truck",
        ),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        files=(
            FileSpec(
                filename="cifar-10-python.tar.gz",
                urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                size=170498071,
            ),
        ),
        format="cifar10_python",
        train_size=50000,
        test_size=10000,
        tfds_name="cifar10",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    )
)
