"""Tests of jaxdistill.data.idx: round trips, and every kind of damage gives DataError."""

from __future__ import annotations

import gzip
import math
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxdistill.data.idx import IDX_DTYPES, read_idx, write_idx
from jaxdistill.errors import DataError, JaxdistillError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [np.dtype(d) for d in ("u1", "i1", "i2", "i4", "f4", "f8")]
NATIVE_OF_CODE = {code: dt.newbyteorder("=") for code, dt in IDX_DTYPES.items()}

# Zero-size dimensions are allowed: they give an empty array of the header's shape.
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)
arrays = st.sampled_from(DTYPES).flatmap(lambda dt: hnp.arrays(dt, shapes))
nonempty_arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Reference encoding, written independently of write_idx."""
    code = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + b"".join(s.to_bytes(4, "big") for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical dtype, shape and bits (so NaN payloads and -0.0 count)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


_SCRATCH: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _scratch_dir(tmp_path_factory):
    _SCRATCH.append(tmp_path_factory.mktemp("idx"))
    yield
    _SCRATCH.pop()


def read_bytes_as_idx(data: bytes, name: str = "f.idx", **kw):
    p = _SCRATCH[-1] / name
    p.write_bytes(data)
    return read_idx(p, **kw)


def expect_error(data: bytes, *match: str, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        read_bytes_as_idx(data, **kw)
    msg = str(info.value)
    assert "f.idx" in msg, msg
    for m in match:
        assert m in msg, msg
    return info.value


# ---------------------------------------------------------------- round trips


@FAST
@given(array=arrays, compress=st.booleans())
def test_round_trip(array, compress):
    p = _SCRATCH[-1] / ("x.idx.gz" if compress else "x.idx")
    write_idx(p, array)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    assert (gzip.decompress(raw) if compress else raw) == idx_bytes(array)
    back = read_idx(p)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    assert back.shape == array.shape
    assert back.flags.writeable
    assert same(back, array)


@settings(FAST, max_examples=25)
@given(array=arrays)
def test_compress_flag_overrides_name_and_detection_is_by_content(array):
    plain_gz = _SCRATCH[-1] / "plain.gz"
    packed = _SCRATCH[-1] / "packed.idx"
    write_idx(plain_gz, array, compress=False)
    write_idx(packed, array, compress=True)
    assert plain_gz.read_bytes() == idx_bytes(array)
    assert gzip.decompress(packed.read_bytes()) == idx_bytes(array)
    assert same(read_idx(plain_gz), array)
    assert same(read_idx(packed), array)


def test_big_endian_and_noncontiguous_input(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(2, 3, 4)[:, ::2, ::-1]
    write_idx(tmp_path / "a.idx", a)
    back = read_idx(tmp_path / "a.idx")
    assert back.dtype == np.dtype("i4") and back.dtype.isnative
    np.testing.assert_array_equal(back, a)


def test_known_bytes(tmp_path):
    p = tmp_path / "k.idx"
    p.write_bytes(bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0x01, 0x02, 0xFF, 0xFE]))
    a = read_idx(p)
    assert a.dtype == np.int16 and a.shape == (2, 1)
    assert a.tolist() == [[0x0102], [-2]]


def test_zero_size_dims_round_trip(tmp_path):
    for shape in [(0,), (3, 0), (0, 28, 28)]:
        a = np.zeros(shape, np.uint8)
        write_idx(tmp_path / "z.idx", a)
        assert (tmp_path / "z.idx").stat().st_size == 4 + 4 * len(shape)
        back = read_idx(tmp_path / "z.idx", expected_shape=shape, max_label=0)
        assert back.shape == shape and back.dtype == np.uint8


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    p = tmp_path / "sub" / "a.idx.gz"
    write_idx(p, np.arange(10, dtype=np.uint8))
    write_idx(p, np.arange(5, dtype=np.uint8))  # overwrite in place
    assert read_idx(p).tolist() == list(range(5))
    assert sorted(os.listdir(p.parent)) == ["a.idx.gz"]


@pytest.mark.parametrize(
    "bad",
    [
        np.arange(3, dtype=np.int64),
        np.arange(3, dtype=np.uint16),
        np.zeros(3, dtype=bool),
        np.zeros(3, dtype=np.complex64),
        np.float32(1.0),
        np.array(["a"]),
    ],
)
def test_write_rejects_unrepresentable_arrays(tmp_path, bad):
    with pytest.raises(DataError):
        write_idx(tmp_path / "a.idx", bad)
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------- damage


@FAST
@given(array=arrays, compress=st.booleans(), data=st.data())
def test_truncation_anywhere_is_data_error(array, compress, data):
    raw = idx_bytes(array)
    if compress:
        raw = gzip.compress(raw, mtime=0)
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    expect_error(raw[:cut])


@FAST
@given(array=arrays, extra=st.binary(min_size=1, max_size=20))
def test_trailing_bytes_raw_is_data_error(array, extra):
    expect_error(idx_bytes(array) + extra, "trailing")


@FAST
@given(array=arrays, extra=st.binary(min_size=1, max_size=20))
def test_trailing_bytes_inside_gzip_is_data_error(array, extra):
    expect_error(gzip.compress(idx_bytes(array) + extra), "trailing")


@FAST
@given(array=arrays, extra=st.binary(min_size=1, max_size=20).filter(lambda b: b.strip(b"\0")))
def test_trailing_junk_after_gzip_stream_is_data_error(array, extra):
    expect_error(gzip.compress(idx_bytes(array)) + extra)


@FAST
@given(array=arrays, pos=st.integers(0, 1), xor=st.integers(1, 255))
def test_flipped_magic_is_data_error(array, pos, xor):
    raw = bytearray(idx_bytes(array))
    raw[pos] ^= xor
    if bytes(raw[:2]) == b"\x1f\x8b":
        expect_error(bytes(raw), "gzip")
    else:
        expect_error(bytes(raw), "magic")


@FAST
@given(array=arrays, code=st.integers(0, 255))
def test_changed_dtype_code(array, code):
    raw = bytearray(idx_bytes(array))
    raw[2] = code
    if code not in IDX_DTYPES:
        expect_error(bytes(raw), "dtype code", f"0x{code:02X}")
        return
    new = NATIVE_OF_CODE[code]
    if new.itemsize * array.size != array.nbytes:
        expect_error(bytes(raw), "data bytes")
        return
    # Same byte count: the same bytes are read back as the new dtype.
    back = read_bytes_as_idx(bytes(raw))
    assert back.dtype == new and back.shape == array.shape
    assert back.astype(new.newbyteorder(">")).tobytes() == raw[4 + 4 * array.ndim :]


@FAST
@given(array=arrays, ndim=st.integers(0, 255))
def test_changed_ndim(array, ndim):
    raw = bytearray(idx_bytes(array))
    raw[3] = ndim
    raw = bytes(raw)
    itemsize = array.dtype.itemsize
    if ndim == 0:
        expect_error(raw, "at least 1 dimension")
    elif len(raw) < 4 + 4 * ndim:
        expect_error(raw, "header")
    else:
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        if math.prod(dims) * itemsize != len(raw) - 4 - 4 * ndim:
            expect_error(raw, "data bytes")
        elif math.prod(d for d in dims if d) >= 2**63:  # empty, but its other dimensions overflow an index
            expect_error(raw, "larger than NumPy can index")
        else:
            back = read_bytes_as_idx(raw)
            assert back.shape == dims and back.dtype == array.dtype
            assert idx_bytes(back) == raw


@FAST
@given(array=arrays, data=st.data())
def test_any_header_byte_flip_is_error_or_consistent(array, data):
    """Whatever a header flip does, a successful read re-encodes to exactly the file read."""
    raw = bytearray(idx_bytes(array))
    pos = data.draw(st.integers(0, 3 + 4 * array.ndim), label="pos")
    raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        back = read_bytes_as_idx(bytes(raw))
    except DataError:
        return
    assert pos >= 2  # the magic can never be damaged silently
    assert idx_bytes(back) == bytes(raw)


@FAST
@given(array=nonempty_arrays, data=st.data())
def test_any_gzip_byte_flip_is_error_or_original(array, data):
    """gzip's CRC-32 and length check guard the content: a flip fails or changes nothing
    (e.g. it hit the mtime field or unused padding bits)."""
    raw = bytearray(gzip.compress(idx_bytes(array), mtime=0))
    pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
    raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        back = read_bytes_as_idx(bytes(raw))
    except DataError:
        return
    assert same(back, array)


def test_corrupt_gzip_cases():
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)), mtime=0)
    crc = bytearray(good)
    crc[-8] ^= 0xFF  # CRC-32 of the content
    expect_error(bytes(crc), "gzip", "delete it")
    size = bytearray(good)
    size[-2] ^= 0x01  # ISIZE
    expect_error(bytes(size), "gzip")
    body = bytearray(good)
    body[12:20] = b"\xff" * 8  # deflate data
    expect_error(bytes(body), "gzip")
    expect_error(b"\x1f\x8b" + b"not gzip at all", "gzip")
    expect_error(good[:-1], "gzip", "truncated")
    expect_error(gzip.compress(b""), "4-byte IDX header", "after gzip decompression")


def test_gzip_multi_member_and_trailing_zero_padding():
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    raw = idx_bytes(a)
    two = gzip.compress(raw[:7]) + gzip.compress(raw[7:])
    assert same(read_bytes_as_idx(two), a)
    expect_error(gzip.compress(raw) + b"\0\0\0\0", "trailing")


def test_empty_file_and_short_headers():
    expect_error(b"", "4-byte IDX header", "found only 0 bytes", "delete it")
    expect_error(b"\0\0\x08", "4-byte IDX header")
    expect_error(b"\0\0\x08\x02\0\0\0\x05\0\0", "12-byte header")


def test_html_error_page_gets_a_specific_hint():
    expect_error(b"<!DOCTYPE html><html>Not Found</html>", "magic", "HTML")


def test_error_is_one_sentence_with_file_expected_found_and_hint():
    err = expect_error(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    msg = str(err)
    assert isinstance(err, JaxdistillError)
    assert "\n" not in msg and msg.endswith(".")
    assert "expected 6 data bytes" in msg and "found 5" in msg
    assert "truncated" in msg and "delete it so it is downloaded again" in msg


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(DataError, match="found none"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(DataError, match="directory"):
        read_idx(tmp_path)


def test_no_numpy_or_zlib_exception_escapes_on_garbage():
    rng = np.random.default_rng(0)
    for n in range(0, 60):
        blob = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for prefix in (b"", b"\0\0", b"\x1f\x8b"):
            try:
                read_bytes_as_idx(prefix + blob)
            except DataError:
                pass


# ---------------------------------------------------------------- expectations


def test_expected_ndim_and_shape(tmp_path):
    p = tmp_path / "a.idx"
    write_idx(p, np.zeros((4, 2, 3), np.float32))
    assert read_idx(p, expected_ndim=3).shape == (4, 2, 3)
    assert read_idx(p, expected_shape=(None, 2, 3)).shape == (4, 2, 3)
    assert read_idx(p, expected_shape=[4, None, None]).shape == (4, 2, 3)
    with pytest.raises(DataError, match="expected 1 dimension but the header declares 3"):
        read_idx(p, expected_ndim=1)
    with pytest.raises(DataError, match=r"expected shape \(any, 28, 28\).*\(4, 2, 3\)"):
        read_idx(p, expected_shape=(None, 28, 28))
    with pytest.raises(DataError, match="2 dimensions"):
        read_idx(p, expected_shape=(4, 6))
    with pytest.raises(ValueError):
        read_idx(p, expected_ndim=2, expected_shape=(None, 2, 3))
    with pytest.raises(ValueError):
        read_idx(p, expected_ndim=0)
    with pytest.raises(ValueError):
        read_idx(p, expected_shape=(None, -1, 3))


def test_expected_shape_checked_before_data_length():
    raw = idx_bytes(np.zeros((5, 2), np.uint8))[:-3]
    expect_error(raw, "expected shape (any, 3)", expected_shape=(None, 3))


def label_arrays(dtype):
    low = 0 if np.dtype(dtype).kind == "u" else -3
    return hnp.arrays(dtype, st.integers(0, 30), elements=st.integers(low, 25))


@FAST
@given(
    labels=st.sampled_from([np.uint8, np.int8, np.int16, np.int32]).flatmap(label_arrays),
    max_label=st.integers(0, 20),
)
def test_label_range(labels, max_label):
    raw = idx_bytes(labels)
    if labels.size == 0 or (labels.min() >= 0 and labels.max() <= max_label):
        assert same(read_bytes_as_idx(raw, max_label=max_label), labels)
    else:
        expect_error(raw, f"[0, {max_label}]", max_label=max_label)


def test_label_errors_name_the_first_bad_value():
    err = expect_error(idx_bytes(np.array([0, 3, 10, -1, 9], np.int8)), max_label=9)
    msg = str(err)
    assert "found 2 outside it" in msg and "first: 10 at index 2" in msg and "[-1, 10]" in msg


def test_negative_labels_rejected():
    expect_error(idx_bytes(np.array([0, -1, 2], np.int16)), "first: -1 at index 1", max_label=9)


def test_float_labels_rejected():
    expect_error(idx_bytes(np.array([0.0, 1.0], np.float32)), "integer labels", max_label=9)
    expect_error(idx_bytes(np.array([np.nan], np.float64)), "integer labels", max_label=9)


# ---------------------------------------------------------------- real MNIST


def _mnist_dir() -> Path | None:
    root = os.environ.get("JAXDISTILL_DATA")
    if not root:
        return None
    d = Path(root) / "mnist"
    return d if (d / "train-labels-idx1-ubyte.gz").exists() else None


@pytest.mark.skipif(
    _mnist_dir() is None,
    reason="real MNIST not available: set JAXDISTILL_DATA to a folder holding "
    "mnist/train-labels-idx1-ubyte.gz and the other three MNIST files",
)
def test_real_mnist():
    d = _mnist_dir()
    for split, n in (("train", 60000), ("t10k", 10000)):
        t0 = time.perf_counter()
        images = read_idx(d / f"{split}-images-idx3-ubyte.gz", expected_shape=(None, 28, 28))
        seconds = time.perf_counter() - t0
        labels = read_idx(d / f"{split}-labels-idx1-ubyte.gz", expected_ndim=1, max_label=9)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.uint8
        assert set(np.unique(labels).tolist()) == set(range(10))
        assert images.min() == 0 and images.max() == 255
        assert seconds < 10, f"reading {split} images took {seconds:.2f} s"
        if split == "train":
            assert labels[:5].tolist() == [5, 0, 4, 1, 9]
