"""Shared fixtures: an isolated environment, a local HTTP server, and a tiny IDX dataset."""

import gzip
import hashlib
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from jaxdistill.data.idx import write_idx
from jaxdistill.data.registry import DatasetSpec, FileSpec



def pytest_configure(config):
    """Compile fast: tests run tiny shapes, where XLA's optimisation passes cost far more time than they save
    (`jax_disable_most_optimizations`, as jax's own tests do; about 35% off a DC step's compile). The semantics
    are unchanged; benchmarks and real runs compile with full optimisation.

    One compilation cache per test session (never the user's): tests that build the same program, and the
    experiment scripts the tests start, compile it once. Under pytest-xdist the controller makes the folder and its
    workers, which inherit its environment, share it; only the controller removes it."""
    import jax

    from jaxdistill.compilation_cache import ENV, enable_compilation_cache
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")  # also for the scripts the tests start
    jax.config.update("jax_disable_most_optimizations", os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "1")
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(ENV):
        enable_compilation_cache(os.environ[ENV])
        return
    folder = tempfile.mkdtemp(prefix="jaxdistill-test-xla-")
    os.environ[ENV] = folder
    enable_compilation_cache(folder)
    config._jaxdistill_xla_cache = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_jaxdistill_xla_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


TINY_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No $JAXDISTILL_DATA, and $JAXDISTILL_CACHE inside tmp_path, so ~/.cache is never touched."""
    monkeypatch.delenv("JAXDISTILL_DATA", raising=False)
    monkeypatch.setenv("JAXDISTILL_CACHE", str(tmp_path / "env-cache"))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict  # path -> (body bytes, Content-Length to announce)

    def do_GET(self):
        self.hits.append(self.path)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, length = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A server on 127.0.0.1: `server.serve(path, body, length=None)` adds a route; other paths give 404."""
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.hits = handler.hits
    server.serve = lambda path, body, length=None: handler.routes.__setitem__(
        path, (body, len(body) if length is None else length)
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def write_tiny_idx(folder: Path, base_urls=(), name="tiny", train=12, test=6, seed=0,
                   decompressed_sha256=False) -> DatasetSpec:
    """Write a 4x4x1, 3-class IDX dataset into `folder`; return its spec (sha256 computed, urls = base + name).

    decompressed_sha256=True also records each file's decompressed sha256, as the MNIST specs do."""
    rng = np.random.default_rng(seed)
    arrays = (
        rng.integers(0, 256, (train, 4, 4), dtype=np.uint8),
        (np.arange(train) % 3).astype(np.uint8),
        rng.integers(0, 256, (test, 4, 4), dtype=np.uint8),
        (np.arange(test) % 3).astype(np.uint8),
    )
    files = []
    for fn, arr in zip(TINY_FILES, arrays):
        write_idx(folder / fn, arr)
        data = (folder / fn).read_bytes()
        urls = tuple(base + fn for base in base_urls)
        content = hashlib.sha256(gzip.decompress(data)).hexdigest() if decompressed_sha256 else None
        files.append(FileSpec(fn, urls, hashlib.sha256(data).hexdigest(), len(data), decompressed_sha256=content))
    return DatasetSpec(
        name=name, image_shape=(4, 4, 1), num_classes=3, class_names=("a", "b", "c"), mean=(0.5,), std=(0.25,),
        files=tuple(files), format="idx", train_size=train, test_size=test, tfds_name=None, homepage="http://example.invalid/",
    )


@pytest.fixture
def tiny_idx():
    """The `write_tiny_idx` function."""
    return write_tiny_idx


@pytest.fixture(scope="session")
def tiny_mhist_standin(tmp_path_factory):
    """A 1 % MHIST stand-in (seed 1) in the real layout, written once per test process; tests only read it."""
    from jaxdistill.data.mhist_standin import write_mhist_standin
    folder = tmp_path_factory.mktemp("mhist_standin") / "mhist"
    write_mhist_standin(folder, scale=0.01, seed=1)
    return folder
