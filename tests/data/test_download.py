import hashlib
import os
import socket

import numpy as np
import pytest

from jaxdistill.data.download import download_file, sha256_file, verify_file
from jaxdistill.data.registry import FileSpec
from jaxdistill.data.sources import load_dataset
from jaxdistill.errors import DataError

pytestmark = pytest.mark.usefixtures("clean_env")

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def spec_for(*urls, size=len(PAYLOAD)):
    return FileSpec("blob.bin", tuple(urls), SHA, size)


def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/blob.bin"


def assert_clean_failure(excinfo, dest, *fragments):
    msg = str(excinfo.value)
    assert "blob.bin" in msg
    assert "download it by hand from" in msg and str(dest) in msg and "JAXDISTILL_DATA" in msg
    for fragment in fragments:
        assert fragment in msg, msg
    assert os.listdir(dest) == []


def test_sha256_file(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(PAYLOAD)
    assert sha256_file(p) == SHA


def test_good_download(http_server, tmp_path):
    http_server.serve("/good/blob.bin", PAYLOAD)
    dest = tmp_path / "dest"
    path = download_file(spec_for(http_server.url + "/good/blob.bin"), dest, progress=False)
    assert path == dest / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert os.listdir(dest) == ["blob.bin"]


def test_progress_bar_goes_to_stderr(http_server, tmp_path, capsys):
    http_server.serve("/good/blob.bin", PAYLOAD)
    download_file(spec_for(http_server.url + "/good/blob.bin"), tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "blob.bin" in err


def test_corrupt_download(http_server, tmp_path):
    bad = bytes(reversed(PAYLOAD))
    http_server.serve("/corrupt/blob.bin", bad)
    url = http_server.url + "/corrupt/blob.bin"
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(url), tmp_path, progress=False)
    assert_clean_failure(excinfo, tmp_path, url, f"expected {SHA}", f"got {hashlib.sha256(bad).hexdigest()}")


def test_truncated_download(http_server, tmp_path):
    half = len(PAYLOAD) // 2
    http_server.serve("/truncated/blob.bin", PAYLOAD[:half], length=len(PAYLOAD))
    url = http_server.url + "/truncated/blob.bin"
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(url), tmp_path, progress=False)
    assert_clean_failure(excinfo, tmp_path, url, f"truncated at {half} of {len(PAYLOAD)} bytes")


def test_404(http_server, tmp_path):
    url = http_server.url + "/nothing/blob.bin"
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(url), tmp_path, progress=False)
    assert_clean_failure(excinfo, tmp_path, url, "HTTP 404")


def test_connection_refused(tmp_path):
    url = refused_url()
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(url), tmp_path, progress=False, timeout=5)
    assert_clean_failure(excinfo, tmp_path, url, "connection refused")


def test_wrong_size_from_spec(http_server, tmp_path):
    http_server.serve("/good/blob.bin", PAYLOAD)
    url = http_server.url + "/good/blob.bin"
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(url, size=len(PAYLOAD) + 1), tmp_path, progress=False)
    assert_clean_failure(excinfo, tmp_path, f"got {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}")


def test_no_urls(tmp_path):
    with pytest.raises(DataError, match="no download URL"):
        download_file(FileSpec("blob.bin", (), SHA, None), tmp_path, progress=False)
    assert os.listdir(tmp_path) == []


def test_mirror_fallback(http_server, tmp_path):
    http_server.serve("/b/blob.bin", PAYLOAD)
    first, second = http_server.url + "/a/blob.bin", http_server.url + "/b/blob.bin"
    path = download_file(spec_for(first, second), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert http_server.hits == ["/a/blob.bin", "/b/blob.bin"]
    assert os.listdir(tmp_path) == ["blob.bin"]


def test_all_mirrors_fail_lists_each(http_server, tmp_path):
    http_server.serve("/corrupt/blob.bin", b"x" * len(PAYLOAD))
    urls = (http_server.url + "/a/blob.bin", refused_url(), http_server.url + "/corrupt/blob.bin")
    with pytest.raises(DataError) as excinfo:
        download_file(spec_for(*urls), tmp_path, progress=False, timeout=5)
    assert_clean_failure(excinfo, tmp_path, *urls, "HTTP 404", "connection refused", "sha256 mismatch")


def test_existing_file_replaced_only_on_success(http_server, tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"old")
    with pytest.raises(DataError):
        download_file(spec_for(http_server.url + "/missing"), tmp_path, progress=False)
    assert os.listdir(tmp_path) == ["blob.bin"]
    assert (tmp_path / "blob.bin").read_bytes() == b"old"


def test_verify_file(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(PAYLOAD)
    verify_file(p, spec_for("http://x/blob.bin"))
    p.write_bytes(b"y" * 10)
    with pytest.raises(DataError) as excinfo:
        verify_file(p, spec_for("http://x/blob.bin"))
    msg = str(excinfo.value)
    assert "blob.bin" in msg and SHA in msg and hashlib.sha256(b"y" * 10).hexdigest() in msg
    assert "delete it" in msg and "10 bytes" in msg
    with pytest.raises(DataError, match="does not exist"):
        verify_file(tmp_path / "nope", spec_for("http://x/blob.bin"))


def test_load_dataset_end_to_end(http_server, tmp_path, tiny_idx):
    served = tmp_path / "served"
    spec = tiny_idx(served, base_urls=(http_server.url + "/missing/", http_server.url + "/files/"))
    for f in spec.files:
        http_server.serve("/files/" + f.filename, (served / f.filename).read_bytes())
    cache = tmp_path / "cache"
    ds = load_dataset(spec, cache_dir=cache, progress=False)
    assert sorted(os.listdir(cache / "tiny")) == sorted(f.filename for f in spec.files)
    assert ds.train_images.shape == (12, 4, 4, 1) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (6, 4, 4, 1)
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.tolist() == [i % 3 for i in range(12)]

    http_server.shutdown()
    again = load_dataset(spec, cache_dir=cache, progress=False, download=False)
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    np.testing.assert_array_equal(again.test_labels, ds.test_labels)
