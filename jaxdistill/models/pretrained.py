"""ImageNet weights for ResNet50V2 and MobileNetV2: the files Keras Applications publishes, fetched into the cache
and verified, or a local file.

`resolve_weights('imagenet', ...)` looks for the published file in `<cache>/keras-weights/` (<cache> as for data:
cache_dir, $JAXDISTILL_CACHE or ~/.cache/jaxdistill); if absent it downloads it there (streamed into a temporary
file, renamed into place only when complete and verified). Verification:
- ResNet50V2: Keras publishes an md5 per file (with top 3ef43a0b657b3be2300d5770ece849e0, without
  fac2f116257151a9d068a22e544a4917); a file that differs is refused, downloaded or found in the cache.
- MobileNetV2: Keras publishes no hash; the importer checks that every layer of the model is in the file with its
  shape, and the run records the file's sha256 so a result can be traced to its weights.
A path instead of 'imagenet' uses that file; when it carries a published file's name it is checked against that
file's md5 too. Offline, the error is one line naming the URL and the folder to put the file in.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from jaxdistill.data.download import download_url, sha256_file
from jaxdistill.data.sources import default_cache_dir
from jaxdistill.errors import ConfigError, DataError
from jaxdistill.models.applications import MOBILENETV2_ALPHAS

__all__ = ["ENV_MIRROR", "KERAS_APPLICATIONS_URL", "WeightsFile", "published_file", "resolve_weights", "md5_file", "CACHE_SUBDIR"]

CACHE_SUBDIR = "keras-weights"
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
#: A mirror of KERAS_APPLICATIONS_URL (same 'resnet/' and 'mobilenet_v2/' layout), e.g. an institute's proxy.
ENV_MIRROR = "JAXDISTILL_KERAS_WEIGHTS_URL"
_MOBILENET_ROWS = (96, 128, 160, 192, 224)  # Keras publishes MobileNetV2 weights trained at these input sizes
_RESNET50V2_MD5 = {True: "3ef43a0b657b3be2300d5770ece849e0", False: "fac2f116257151a9d068a22e544a4917"}


@dataclass(frozen=True)
class WeightsFile:
    """A published Keras weights file: its name, URL and md5 (None where Keras publishes none)."""
    filename: str
    url: str
    md5: str | None


def published_file(model: str, include_top: bool = False, alpha: float = 1.0, resolution: int = 224) -> WeightsFile:
    """The Keras Applications ImageNet file for `model` ('resnet50v2' | 'mobilenetv2'), from $JAXDISTILL_KERAS_WEIGHTS_URL
    when set. MobileNetV2's files exist per width multiplier and per training resolution: Keras takes the input size
    when it is one of 96..224 (step 32), else 224, and so do we."""
    base = os.environ.get(ENV_MIRROR) or KERAS_APPLICATIONS_URL
    base = base if base.endswith("/") else base + "/"
    if model == "resnet50v2":
        name = "resnet50v2_weights_tf_dim_ordering_tf_kernels" + ("" if include_top else "_notop") + ".h5"
        return WeightsFile(name, base + "resnet/" + name, _RESNET50V2_MD5[include_top])
    if model == "mobilenetv2":
        if alpha not in MOBILENETV2_ALPHAS:
            raise ConfigError(f"Keras publishes ImageNet MobileNetV2 weights for alpha in "
                              f"{', '.join(map(str, MOBILENETV2_ALPHAS))}; got {alpha}")
        rows = resolution if resolution in _MOBILENET_ROWS else 224
        name = (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
                + ("" if include_top else "_no_top") + ".h5")
        return WeightsFile(name, base + "mobilenet_v2/" + name, None)
    raise ConfigError(f"no ImageNet weights are published for {model!r}; pretrained weights exist for resnet50v2 "
                      "and mobilenetv2")


def md5_file(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: Path, expected: WeightsFile, shown: Path) -> str | None:
    if expected.md5 is None:
        return None
    actual = md5_file(path)
    if actual != expected.md5:
        raise DataError(f"{shown} is not the published {expected.filename}: md5 {actual}, expected {expected.md5}; "
                        f"delete it and download it again from {expected.url}")
    return actual


def resolve_weights(pretrained: str, model: str, include_top: bool = False, alpha: float = 1.0,
                    resolution: int = 224, cache_dir: str | os.PathLike | None = None, download: bool = True,
                    progress: bool = True, timeout: float = 30) -> tuple[Path, dict]:
    """(path, facts) of the weights `pretrained` names: 'imagenet' (the published file, from the cache or
    downloaded) or a path to a Keras weights file. facts (for the run record): source, file name, sha256, and md5 and
    whether it was checked against a published one."""
    published = published_file(model, include_top, alpha, resolution)
    if pretrained != "imagenet":
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise DataError(f"pretrained weights file {path} does not exist; give a Keras .h5 / .weights.h5 file, or "
                            "'imagenet' for the published weights")
        md5 = _check_md5(path, published, path) if path.name == published.filename else None
        source = str(path)
    else:
        folder = default_cache_dir(cache_dir) / CACHE_SUBDIR
        path = folder / published.filename
        if path.is_file():
            md5 = _check_md5(path, published, path)
        elif not download:
            raise DataError(f"{published.filename} is not in {folder}; download {published.url} into that folder")
        else:
            try:
                download_url(published.url, path, check=lambda tmp, _: _check_md5(tmp, published, Path(published.url)),
                             progress=progress, timeout=timeout)
            except DataError as e:
                raise DataError(f"{e}; without internet, download {published.url} by hand into {folder} (or pass "
                                "the file's path instead of 'imagenet')") from None
            md5 = published.md5
        source = published.url
    return path, {"source": source, "file": path.name, "sha256": sha256_file(path),
                  "md5": md5, "md5_checked": md5 is not None}
