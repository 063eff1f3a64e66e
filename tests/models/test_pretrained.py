"""Fetching and verifying Keras's ImageNet weight files, on a loopback HTTP server and local files."""
import socket

import pytest

from jaxdistill.errors import ConfigError, DataError
from jaxdistill.models.pretrained import CACHE_SUBDIR, ENV_MIRROR, md5_file, published_file, resolve_weights

pytestmark = pytest.mark.usefixtures("clean_env")
NOTOP = "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_published_files_and_hashes():
    top = published_file("resnet50v2", include_top=True)
    assert top.url.endswith("keras-applications/resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels.h5")
    assert top.md5 == "3ef43a0b657b3be2300d5770ece849e0"
    assert published_file("resnet50v2").md5 == "fac2f116257151a9d068a22e544a4917"
    mobile = published_file("mobilenetv2", alpha=0.35, resolution=128)
    assert mobile.filename == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_128_no_top.h5"
    assert mobile.md5 is None
    assert published_file("mobilenetv2", resolution=64).filename.endswith("_1.0_224_no_top.h5")
    with pytest.raises(ConfigError, match="alpha"):
        published_file("mobilenetv2", alpha=0.6)
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        published_file("convnet")


def test_offline_fails_in_one_line_naming_url_and_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_MIRROR, closed_port_url())
    with pytest.raises(DataError) as err:
        resolve_weights("imagenet", "resnet50v2", cache_dir=tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert published_file("resnet50v2").url in message and str(tmp_path / CACHE_SUBDIR) in message
    assert not list((tmp_path / CACHE_SUBDIR).iterdir())  # nothing half-written


def test_download_with_wrong_md5_is_refused_and_not_kept(http_server, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_MIRROR, http_server.url)
    http_server.serve("/resnet/" + NOTOP, b"not the published weights")
    with pytest.raises(DataError, match="md5"):
        resolve_weights("imagenet", "resnet50v2", cache_dir=tmp_path, progress=False)
    assert not list((tmp_path / CACHE_SUBDIR).iterdir())


def test_cached_or_given_file_with_wrong_md5_is_refused(tmp_path):
    folder = tmp_path / CACHE_SUBDIR
    folder.mkdir()
    (folder / NOTOP).write_bytes(b"corrupt")
    with pytest.raises(DataError, match="is not the published"):
        resolve_weights("imagenet", "resnet50v2", cache_dir=tmp_path, progress=False)
    with pytest.raises(DataError, match="md5"):
        resolve_weights(str(folder / NOTOP), "resnet50v2")


def test_mobilenet_download_is_kept_with_its_sha256(http_server, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_MIRROR, http_server.url + "/")
    name = published_file("mobilenetv2", resolution=128).filename
    http_server.serve("/mobilenet_v2/" + name, b"weights bytes")
    path, facts = resolve_weights("imagenet", "mobilenetv2", resolution=128, cache_dir=tmp_path, progress=False)
    assert path == tmp_path / CACHE_SUBDIR / name and path.read_bytes() == b"weights bytes"
    assert facts["md5_checked"] is False and len(facts["sha256"]) == 64 and facts["source"].endswith(name)
    again, _ = resolve_weights("imagenet", "mobilenetv2", resolution=128, cache_dir=tmp_path, download=False)
    assert again == path and len(http_server.hits) == 1  # served from the cache the second time


def test_local_file_under_another_name_is_used_as_given(tmp_path):
    local = tmp_path / "my_resnet.h5"
    local.write_bytes(b"anything")
    path, facts = resolve_weights(str(local), "resnet50v2")
    assert path == local and facts["md5_checked"] is False and facts["md5"] is None
    assert md5_file(local) == "f0e166dc34d14d6c228ffac576c9a43c"
    with pytest.raises(DataError, match="does not exist"):
        resolve_weights(str(tmp_path / "missing.h5"), "resnet50v2")
