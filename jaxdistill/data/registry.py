"""What each dataset is: its files (with mirrors and sha256), shapes, classes, normalisation and defaults.

A `DatasetSpec` is plain data. `load_dataset` accepts either a registered name or a spec object,
so a dataset does not have to be registered to be loaded (tests build tiny specs of their own).

Integrity is checked in one of three ways, each declared on the spec:
  * per file (`FileSpec`): the sha256 of the file as published and, for a compressed file, the sha256 of its
    decompressed content, so a faithful copy in other packaging (re-compressed, or shipped uncompressed) is accepted;
  * per folder (`Manifest`): for datasets that come as thousands of images, the expected counts per split and
    class, the image shape and a sha256 of the decoded arrays (see `arrays_sha256`);
  * by its reader (`index_file`): for a dataset that is never downloaded and has no published checksum (MHIST,
    released under a research-use agreement), the folder the user supplies is found by its index file and its
    format's reader validates every row and image (see `jaxdistill.data.mhist`).
Behaviour that depends on the dataset (evaluation augmentation, DSA strategy, ConvNet depth) is data too:
`DatasetSpec.defaults`, a `DatasetDefaults`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

import numpy as np

from jaxdistill.data import mhist  # MHIST's reader: its classes, official counts and index file
from jaxdistill.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "FileSpec",
    "DatasetDefaults",
    "Manifest",
    "DatasetSpec",
    "REGISTRY",
    "register",
    "get_spec",
    "find_spec",
    "arrays_sha256",
    "verify_manifest",
    "EVAL_AUGMENTATIONS",
    "DSA_DIGIT_STRATEGY",
    "DSA_STRATEGY",
    "CONVNET_DEPTHS",
    "DSA_HISTOLOGY_STRATEGY",
]

#: On-disk layouts a spec may declare: files checked one by one ('idx', 'cifar10_python'), or a folder the user
#: supplies and whose reader validates it ('mhist').
FORMATS: tuple[str, ...] = ("idx", "cifar10_python", "mhist")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _check_digest(value: object, what: str) -> str:
    digest = str(value).strip().lower()
    if not _SHA256_RE.match(digest):
        raise ConfigError(f"{what}: sha256 {value!r} is not 64 hex digits")
    return digest


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    urls are mirrors tried in order (may be empty for files that can only be fetched by hand);
    sha256 is the lowercase hex digest of the file as downloaded; size is its byte count, if known.
    decompressed_sha256, for a gzip file (name ending in '.gz'), is the sha256 of its decompressed content: with it,
    a copy whose archive bytes differ (re-compressed, e.g. by `gzip -n`) or the decompressed file itself, under the
    name without '.gz' (`uncompressed_name`), is accepted when its content has that digest.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None = None
    decompressed_sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.filename or "/" in self.filename or "\\" in self.filename or self.filename in (".", ".."):
            raise ConfigError(f"FileSpec filename {self.filename!r} must be a plain file name (no folders)")
        if isinstance(self.urls, str):
            raise ConfigError(f"FileSpec {self.filename}: urls must be a tuple of URLs, not one string")
        object.__setattr__(self, "urls", tuple(self.urls))
        object.__setattr__(self, "sha256", _check_digest(self.sha256, f"FileSpec {self.filename}"))
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ConfigError(f"FileSpec {self.filename}: size {self.size!r} must be a non-negative int or None")
        if self.decompressed_sha256 is not None:
            if not self.filename.endswith(".gz") or self.filename == ".gz":
                raise ConfigError(
                    f"FileSpec {self.filename}: decompressed_sha256 is only for gzip files, whose names end in "
                    f"'.gz'; leave it out, or give the file its '.gz' name"
                )
            object.__setattr__(
                self,
                "decompressed_sha256",
                _check_digest(self.decompressed_sha256, f"FileSpec {self.filename} (decompressed)"),
            )

    @property
    def uncompressed_name(self) -> str | None:
        """The name of the decompressed copy that is accepted in place of the file ('x.gz' -> 'x'), or None."""
        return self.filename[: -len(".gz")] if self.decompressed_sha256 is not None else None

    @property
    def accepted_names(self) -> tuple[str, ...]:
        """The names under which the file is looked for, in order: its own, then its uncompressed name."""
        alt = self.uncompressed_name
        return (self.filename,) if alt is None else (self.filename, alt)


# The evaluation augmentations of DC's `get_daparam` (DatasetCondensation utils.py): 'crop_scale_rotate' for MNIST,
# 'none' otherwise; 'crop_noise' is what it gives a batch-norm ConvNet, whatever the dataset.
EVAL_AUGMENTATIONS: tuple[str, ...] = ("none", "crop_scale_rotate", "crop_noise")

#: DSA's strategy for most datasets (the DatasetCondensation readme, DSA section: FashionMNIST, CIFAR-10/100).
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
#: DSA's strategy for the digit datasets MNIST and SVHN: the same without flip, "as flip augmentation is not good for
#: digit datasets" (the DatasetCondensation readme, DSA section).
DSA_DIGIT_STRATEGY = "color_crop_cutout_scale_rotate"

#: (image side in pixels, ConvNet depth) as used across the dataset-distillation literature: depth 3 for 28/32 px
#: (DC, DSA, DM, MTT on MNIST/CIFAR), 4 for 64 px (Tiny ImageNet in DM and MTT), 5 for 128 px (ImageNet subsets in MTT).
CONVNET_DEPTHS: tuple[tuple[int, int], ...] = ((28, 3), (32, 3), (64, 4), (128, 5))


@dataclass(frozen=True)
class DatasetDefaults:
    """What a method uses for a dataset unless told otherwise.

    eval_augmentation: the evaluation augmentation for a ConvNet without batch norm: DC's (one of
    EVAL_AUGMENTATIONS) or a DSA strategy 'dsa:<ops>' for datasets outside DC's table;
    dsa_strategy: the DSA strategy ('_'-joined operations, checked when it is used);
    convnet_depths: (image side in pixels, ConvNet depth) pairs, see `convnet_depth`;
    metrics: what an evaluation reports by default (names in `jaxdistill.metrics`, checked when used).
    """

    eval_augmentation: str = "none"
    dsa_strategy: str = DSA_STRATEGY
    convnet_depths: tuple[tuple[int, int], ...] = CONVNET_DEPTHS
    metrics: tuple[str, ...] = ("accuracy",)

    def __post_init__(self) -> None:
        if self.eval_augmentation not in EVAL_AUGMENTATIONS and not (
            isinstance(self.eval_augmentation, str) and self.eval_augmentation.startswith("dsa:")
        ):
            raise ConfigError(
                f"DatasetDefaults: eval_augmentation {self.eval_augmentation!r} is not one of "
                f"{', '.join(EVAL_AUGMENTATIONS)} or 'dsa:<strategy>'"
            )
        if not isinstance(self.dsa_strategy, str) or not self.dsa_strategy:
            raise ConfigError(f"DatasetDefaults: dsa_strategy must be a non-empty string, got {self.dsa_strategy!r}")
        try:
            depths = tuple((int(side), int(depth)) for side, depth in self.convnet_depths)
        except (TypeError, ValueError):
            raise ConfigError(
                f"DatasetDefaults: convnet_depths must be (image side, depth) pairs, got {self.convnet_depths!r}"
            ) from None
        if any(side < 1 or depth < 1 for side, depth in depths) or len({s for s, _ in depths}) != len(depths):
            raise ConfigError(
                f"DatasetDefaults: convnet_depths {depths} must pair distinct positive sides with positive depths"
            )
        object.__setattr__(self, "convnet_depths", depths)
        if isinstance(self.metrics, str) or not self.metrics:
            raise ConfigError(f"DatasetDefaults: metrics must be a non-empty tuple of names, got {self.metrics!r}")
        object.__setattr__(self, "metrics", tuple(self.metrics))

    def convnet_depth(self, resolution: int) -> int:
        """The ConvNet depth for square images of side `resolution` pixels; ConfigError if the table has none."""
        for side, depth in self.convnet_depths:
            if side == resolution:
                return depth
        known = ", ".join(f"{side} px -> {depth}" for side, depth in self.convnet_depths)
        raise ConfigError(
            f"no default ConvNet depth for {resolution}x{resolution} images (known: {known}); "
            f"give the depth explicitly (e.g. model 'convnet:depth=4')"
        )


@dataclass(frozen=True)
class Manifest:
    """The expected content of a dataset that comes as a folder of images rather than a few checksummed files.

    train_counts / test_counts: images per class (index = label) in each split; image_shape: (H, W, C) of every
    decoded image; arrays_sha256: `arrays_sha256` of the decoded (train, test) arrays, so that a reader that decodes
    differently (another PNG library, another resize) is caught, not only a missing or extra file.
    """

    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    image_shape: tuple[int, int, int]
    arrays_sha256: str

    def __post_init__(self) -> None:
        for attr in ("train_counts", "test_counts", "image_shape"):
            object.__setattr__(self, attr, tuple(int(v) for v in getattr(self, attr)))
        if not self.train_counts or len(self.train_counts) != len(self.test_counts):
            raise ConfigError(
                f"Manifest: train_counts and test_counts need one count per class, got "
                f"{len(self.train_counts)} and {len(self.test_counts)}"
            )
        if any(c < 0 for c in self.train_counts + self.test_counts):
            raise ConfigError("Manifest: counts must be non-negative")
        if len(self.image_shape) != 3 or any(d <= 0 for d in self.image_shape):
            raise ConfigError(f"Manifest: image_shape {self.image_shape} must be three positive ints (H, W, C)")
        object.__setattr__(self, "arrays_sha256", _check_digest(self.arrays_sha256, "Manifest arrays"))


def arrays_sha256(
    train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray
) -> str:
    """sha256 of a dataset's decoded arrays: images uint8 (N, H, W, C), labels integers (N,).

    Hashed, for train then test: the split name, the images' shape, the image bytes (uint8, C order) and the labels
    as little-endian int32. Independent of how the images were stored (PNG, zip, folder order already fixed by
    the reader), so it pins what a reader decodes.
    """
    h = hashlib.sha256()
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        images = np.ascontiguousarray(images, dtype=np.uint8)
        h.update(f"{split}:{'x'.join(map(str, images.shape))}:".encode())
        h.update(images.tobytes())
        h.update(np.ascontiguousarray(labels, dtype="<i4").tobytes())
    return h.hexdigest()


def verify_manifest(
    manifest: Manifest,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    where: str,
) -> None:
    """Raise DataError unless the decoded arrays match `manifest`; `where` names the folder in the message."""
    fix = "check that the folder holds the complete, unmodified dataset, or fetch it again"
    for split, images, labels, counts in (
        ("train", train_images, train_labels, manifest.train_counts),
        ("test", test_images, test_labels, manifest.test_counts),
    ):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.shape[1:] != manifest.image_shape:
            raise DataError(
                f"{where}: {split} images have shape {images.shape[1:]}, expected {manifest.image_shape}; {fix}"
            )
        found = np.bincount(labels.astype(np.int64).ravel(), minlength=len(counts)) if labels.size else np.zeros(
            len(counts), np.int64
        )
        if len(found) != len(counts) or tuple(int(c) for c in found) != counts or len(images) != sum(counts):
            raise DataError(
                f"{where}: {split} split has {len(images)} images with per-class counts {tuple(int(c) for c in found)}, "
                f"expected {sum(counts)} with {counts}; {fix}"
            )
    actual = arrays_sha256(train_images, train_labels, test_images, test_labels)
    if actual != manifest.arrays_sha256:
        raise DataError(
            f"{where}: the decoded images and labels have sha256 {actual}, expected {manifest.arrays_sha256} "
            f"(counts and shape agree, so some image differs); {fix}"
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: image_shape is (H, W, C); mean/std are per channel for images scaled to [0, 1].

    files are checked per file (see `FileSpec`); manifest, if given, is checked against the decoded arrays (see
    `Manifest`); index_file, for a dataset the user supplies as a folder that is never downloaded, names the file
    that marks its folder, whose format's reader validates the rest (MHIST: 'annotations.csv'); a spec needs at
    least one of the three. obtain says how to get such a dataset (its error messages repeat it). train_counts /
    test_counts are the official images per class of each split, when known (listed by `jaxdistill datasets`; a
    folder dataset whose counts differ loads with a warning). defaults are the per-dataset settings methods fall
    back on.
    resolutions are the square image sides (pixels) the dataset may be loaded at besides its native one, which is
    always allowed (`allowed_resolutions` is the union; listing the native side too is fine). `at_resolution(r)`
    gives the spec at side r; the spec it returns remembers the native shape in native_image_shape (None on a native
    spec: image_shape is native).
    """

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
    defaults: DatasetDefaults = DatasetDefaults()
    resolutions: tuple[int, ...] = ()
    manifest: Manifest | None = None
    native_image_shape: tuple[int, int, int] | None = None
    index_file: str | None = None
    obtain: str = ""
    train_counts: tuple[int, ...] | None = None
    test_counts: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for attr in ("image_shape", "class_names", "mean", "std", "files", "resolutions"):
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
        if not self.files and self.manifest is None and self.index_file is None:
            raise ConfigError(
                f"{where}: needs at least one file, a manifest for a folder of images, or the index_file of a "
                f"folder the user supplies"
            )
        if self.index_file is not None and (self.files or not self.index_file or "/" in self.index_file):
            raise ConfigError(f"{where}: index_file must be a plain file name, for a spec without files")
        for attr, total in (("train_counts", self.train_size), ("test_counts", self.test_size)):
            counts = getattr(self, attr)
            if counts is not None:
                counts = tuple(int(c) for c in counts)
                if len(counts) != self.num_classes or any(c < 0 for c in counts) or sum(counts) != total:
                    raise ConfigError(
                        f"{where}: {attr} {counts} needs {self.num_classes} non-negative counts summing to {total}"
                    )
                object.__setattr__(self, attr, counts)
        names = [n for f in self.files for n in f.accepted_names]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: file names repeat (counting uncompressed names): {names}")
        if self.train_size < 1 or self.test_size < 1:
            raise ConfigError(f"{where}: train_size and test_size must be positive")
        if not isinstance(self.defaults, DatasetDefaults):
            raise ConfigError(f"{where}: defaults must be a DatasetDefaults, got {type(self.defaults).__name__}")
        self._check_shapes(where)

    def _check_shapes(self, where: str) -> None:
        if self.native_image_shape is not None:
            native = tuple(int(d) for d in self.native_image_shape)
            object.__setattr__(self, "native_image_shape", native)
            if len(native) != 3 or native[2] != self.image_shape[2] or native[0] != native[1]:
                raise ConfigError(
                    f"{where}: native_image_shape {native} must be square (H, H, C) with the channels of "
                    f"image_shape {self.image_shape}; build resized specs with spec.at_resolution(side)"
                )
        h, w, _ = self.native_shape
        if any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 for r in self.resolutions):
            raise ConfigError(f"{where}: resolutions must be positive image sides in pixels, got {self.resolutions!r}")
        sides = tuple(sorted({int(r) for r in self.resolutions}))
        if h != w and sides:
            raise ConfigError(
                f"{where}: resolutions {sides} need square images, but the native shape is "
                f"{self.native_shape}; leave resolutions out"
            )
        object.__setattr__(self, "resolutions", sides)
        if self.native_image_shape is not None and (
            self.image_shape[0] != self.image_shape[1] or self.image_shape[0] not in self.allowed_resolutions
        ):
            raise ConfigError(
                f"{where}: image_shape {self.image_shape} is not one of its resolutions {self.allowed_resolutions}"
            )
        if self.manifest is not None and self.manifest.image_shape != self.native_shape:
            raise ConfigError(
                f"{where}: manifest image_shape {self.manifest.image_shape} differs from the native shape "
                f"{self.native_shape}"
            )
        if self.manifest is not None and (
            len(self.manifest.train_counts) != self.num_classes
            or sum(self.manifest.train_counts) != self.train_size
            or sum(self.manifest.test_counts) != self.test_size
        ):
            raise ConfigError(
                f"{where}: manifest counts ({len(self.manifest.train_counts)} classes, "
                f"{sum(self.manifest.train_counts)} train, {sum(self.manifest.test_counts)} test) disagree with "
                f"the spec ({self.num_classes} classes, {self.train_size} train, {self.test_size} test)"
            )

    @property
    def native_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the images as stored in the dataset's files, before any resizing."""
        return self.native_image_shape if self.native_image_shape is not None else self.image_shape

    @property
    def is_folder_dataset(self) -> bool:
        """Whether the dataset is a folder the user supplies (found by `index_file`, never downloaded)."""
        return self.index_file is not None

    def imbalance(self, split: str = "train") -> float | None:
        """Largest over smallest class count of a split's official counts (1.0: balanced); None if unknown."""
        counts = self.train_counts if split == "train" else self.test_counts
        if not counts or min(counts) == 0:
            return None
        return max(counts) / min(counts)

    @property
    def allowed_resolutions(self) -> tuple[int, ...]:
        """The image sides (pixels) the dataset may be loaded at, ascending: the native side and `resolutions`
        (empty for non-square images, which load at their native shape only)."""
        h, w, _ = self.native_shape
        return tuple(sorted(set(self.resolutions) | {h})) if h == w else ()

    @property
    def is_resized(self) -> bool:
        """Whether image_shape differs from the native shape (a spec from `at_resolution`)."""
        return self.image_shape != self.native_shape

    def at_resolution(self, resolution: int | None) -> DatasetSpec:
        """This dataset with image_shape (resolution, resolution, C); None or the native side: the native spec.

        Raises ConfigError for a side not in `allowed_resolutions`. Mean and std are kept (resizing changes them by far
        less than their published precision).
        """
        h, w, c = self.native_shape
        native = self if self.native_image_shape is None else dataclasses.replace(
            self, image_shape=self.native_shape, native_image_shape=None
        )
        if resolution is None:
            return native
        allowed = ", ".join(str(r) for r in self.allowed_resolutions) or f"only its native {h}x{w}"
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
            raise ConfigError(
                f"dataset {self.name!r}: resolution must be an image side in pixels (allowed: {allowed}), "
                f"got {resolution!r}"
            )
        if resolution not in self.allowed_resolutions:
            raise ConfigError(
                f"dataset {self.name!r} cannot be loaded at resolution {resolution}; allowed image sides "
                f"(pixels): {allowed}. Choose one of these, or leave the resolution out for the native size"
            )
        if resolution == h:
            return native
        return dataclasses.replace(
            native, image_shape=(int(resolution), int(resolution), c), native_image_shape=native.image_shape
        )

    def convnet_depth(self) -> int:
        """The default ConvNet depth for this spec's image side (see `DatasetDefaults.convnet_depth`)."""
        h, w, _ = self.image_shape
        if h != w:
            raise ConfigError(
                f"dataset {self.name!r}: no default ConvNet depth for non-square {h}x{w} images; give the depth"
            )
        return self.defaults.convnet_depth(h)

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


def find_spec(name: str | DatasetSpec) -> DatasetSpec | None:
    """Like `get_spec`, but None for a name that is not registered."""
    if isinstance(name, DatasetSpec):
        return name
    return REGISTRY.get(str(name).strip().lower())


def _idx_files(
    base_urls: tuple[str, ...], table: tuple[tuple[str, str, int, str], ...]
) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(
            filename=fn, urls=tuple(base + fn for base in base_urls), sha256=digest, size=size,
            decompressed_sha256=content_digest,
        )
        for fn, digest, size, content_digest in table
    )


# MNIST. sha256 and sizes of the published .gz files: tensorflow/datasets tensorflow_datasets/url_checksums/mnist.txt,
# checked against the original files byte for byte. The fourth column is the sha256 of each original file
# decompressed, which anyone can reproduce with `gunzip -c FILE | sha256sum` (the decompressed sizes are 47040016,
# 60008, 7840016 and 10008 bytes).
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
                ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422,
                 "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881,
                 "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
                ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877,
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542,
                 "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
            ),
        ),
        format="idx",
        train_size=60000,
        test_size=10000,
        train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        tfds_name="mnist",
        homepage="http://yann.lecun.com/exdb/mnist/",
        defaults=DatasetDefaults(eval_augmentation="crop_scale_rotate", dsa_strategy=DSA_DIGIT_STRATEGY),
        # 32 px: several papers pad or resize MNIST to CIFAR's size to share one network.
        resolutions=(28, 32),
    )
)

# Fashion-MNIST. sha256 and sizes: tensorflow/datasets tensorflow_datasets/url_checksums/fashion_mnist.txt
# (URL, size, sha256), cross-checked against the sha256 table in pytorch/vision
# torchvision/prototype/datasets/_builtin/mnist.py (FashionMNIST._CHECKSUMS); both agree.
# The fourth column is the sha256 of each published file decompressed (`gunzip -c FILE | sha256sum`); the same values
# are pinned independently by other projects that ship the uncompressed files.
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
                ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880,
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515,
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102,
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148,
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
            ),
        ),
        format="idx",
        train_size=60000,
        test_size=10000,
        train_counts=(6000,) * 10,
        test_counts=(1000,) * 10,
        tfds_name="fashion_mnist",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        defaults=DatasetDefaults(eval_augmentation="none", dsa_strategy=DSA_STRATEGY),
        resolutions=(28, 32),
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
        train_counts=(5000,) * 10,
        test_counts=(1000,) * 10,
        tfds_name="cifar10",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        defaults=DatasetDefaults(eval_augmentation="none", dsa_strategy=DSA_STRATEGY),
        resolutions=(32,),
    )
)

#: MHIST's DSA strategy: the DSA paper's for natural images plus 90-degree rotations. Flips and quarter turns are
#: label-preserving for histology (a tissue section has no up or left), and together they give all 8 symmetries of
#: the square.
DSA_HISTOLOGY_STRATEGY = DSA_STRATEGY + "_rot90"

# MHIST (Wei et al., 2021, https://bmirds.github.io/MHIST/). Released under a research-use agreement: never downloaded,
# no checksum to ship; the user's folder is found by annotations.csv and validated row by row by
# jaxdistill.data.mhist. Registered at 64 px, its default resolution (the native 224 px and 32 / 128 px on request).
# ConvNet depth: 3 at 32 px, 4 at 64, 5 at 128 as across the literature, and 5 at 224 px, which leaves a 7x7 feature
# map (depth 6 would leave 3x3). Normalisation uses ImageNet's published mean and std, fixed public constants:
# statistics of the private split are never computed (private set generation on MHIST relies on that).
# Evaluation trains with the histology DSA strategy, as the DSA paper evaluates with its own.
register(
    dataclasses.replace(
        DatasetSpec(
            name="mhist",
            image_shape=(224, 224, 3),
            num_classes=2,
            class_names=mhist.CLASS_NAMES,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            files=(),
            format="mhist",
            train_size=2175,
            test_size=977,
            homepage="https://bmirds.github.io/MHIST/",
            defaults=DatasetDefaults(
                eval_augmentation="dsa:" + DSA_HISTOLOGY_STRATEGY,
                dsa_strategy=DSA_HISTOLOGY_STRATEGY,
                convnet_depths=((32, 3), (64, 4), (128, 5), (224, 5)),
                # an imbalanced binary problem, SSA (label 1) positive: never accuracy alone
                metrics=("accuracy", "balanced_accuracy", "sensitivity", "specificity", "recall_per_class",
                         "precision", "f1", "roc_auc", "roc_tpr", "confusion_matrix"),
            ),
            resolutions=(32, 64, 128),
            index_file=mhist.ANNOTATIONS,
            obtain=mhist.OBTAIN,
            train_counts=mhist.OFFICIAL_COUNTS["train"],
            test_counts=mhist.OFFICIAL_COUNTS["test"],
        ),
        image_shape=(64, 64, 3),
        native_image_shape=(224, 224, 3),
    )
)
