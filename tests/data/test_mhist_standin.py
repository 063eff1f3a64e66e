"""The MHIST stand-in: the real layout (header, names, label/vote consistency, counts, PNGs, three layouts) and
determinism. Counts at full size are checked without rendering; only a few dozen images are ever drawn."""

import csv
import io
import json
import re
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from jaxdistill.data.mhist import STANDIN_MARKER
from jaxdistill.data.mhist_standin import (MHIST_HEADER, OFFICIAL_COUNTS, SERRATION_PROBABILITY, mhist_image_names,
                                           render_standin, standin_annotations, standin_counts,
                                           write_mhist_standin)
from jaxdistill.errors import ConfigError

TINY = 0.005  # the minimum of 3 per class and partition but 8 HP in train: 17 images


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return tuple(rows[0]), rows[1:]


def test_header_is_the_real_one():
    assert MHIST_HEADER == ("Image Name", "Majority Vote Label", "Number of Annotators who Selected SSA (Out of 7)",
                            "Partition")


def test_names_are_mhist_three_letters_in_order():
    names = mhist_image_names(3152)
    assert names[:3] == ["MHIST_aaa.png", "MHIST_aab.png", "MHIST_aac.png"]
    assert names[26] == "MHIST_aba.png" and names[676] == "MHIST_baa.png"
    assert all(re.fullmatch(r"MHIST_[a-z]{3}\.png", n) for n in names)
    assert names == sorted(names) and len(set(names)) == 3152
    with pytest.raises(ConfigError):
        mhist_image_names(26 ** 3 + 1)


def test_full_counts_are_official_and_split_is_interleaved():
    assert standin_counts("full") == OFFICIAL_COUNTS
    rows = standin_annotations("full", seed=0)
    assert [r[0] for r in rows] == mhist_image_names(3152)
    counted = Counter((r[3], r[1]) for r in rows)
    assert {part: (counted[part, "HP"], counted[part, "SSA"]) for part in ("train", "test")} == OFFICIAL_COUNTS
    partitions = [r[3] for r in rows]
    assert "test" in partitions[:50] and "train" in partitions[-50:]  # mixed, not train then test


def test_labels_and_votes_agree_and_clear_cases_dominate():
    rows = standin_annotations("full", seed=3)
    votes = Counter(r[2] for r in rows)
    assert all((r[1] == "HP" and 0 <= r[2] <= 3) or (r[1] == "SSA" and 4 <= r[2] <= 7) for r in rows)
    assert votes[0] > votes[3] and votes[7] > votes[4]
    assert set(votes) == set(range(8))


def test_serration_follows_agreement_symmetrically():
    """Clear cases are nearly pure, borderline ones mixed; HP with v votes mirrors SSA with 7 - v."""
    q = np.asarray(SERRATION_PROBABILITY)
    assert q.shape == (8,) and np.all(np.diff(q) > 0)
    assert np.allclose(q + q[::-1], 1)
    assert q[0] < 0.1 and q[7] > 0.9 and 0.3 < q[3] < 0.5


def test_small_and_fractional_scales_keep_ratio_and_both_classes():
    small = standin_counts("small")
    assert small == {"train": (155, 63), "test": (62, 36)}
    assert standin_counts(0.01) == {"train": (15, 6), "test": (6, 4)}
    assert standin_counts(TINY) == {"train": (8, 3), "test": (3, 3)}
    for bad in (0, 1.5, "medium", True):
        with pytest.raises(ConfigError):
            standin_counts(bad)


def test_render_shapes_and_chunked_rendering_is_identical():
    labels, votes = [0, 1, 0, 1], [0, 7, 3, 4]
    images = render_standin(labels, votes, seed=5)
    assert images.shape == (4, 224, 224, 3) and images.dtype == np.uint8
    assert images.std() > 10  # a picture, not a flat colour
    assert np.array_equal(render_standin(labels[2:], votes[2:], seed=5, start=2), images[2:])
    assert not np.array_equal(render_standin(labels, votes, seed=6), images)
    assert render_standin([1], [7], seed=0, size=64).shape == (1, 64, 64, 3)
    with pytest.raises(ConfigError):
        render_standin([0, 1], [0], seed=0)
    with pytest.raises(ConfigError, match="votes"):
        render_standin([2], [0], seed=0)


def test_images_layout_writes_valid_pngs_and_the_csv(tmp_path):
    summary = write_mhist_standin(tmp_path, scale=TINY, seed=1)
    header, rows = read_csv(tmp_path / "annotations.csv")
    assert header == MHIST_HEADER
    assert (tmp_path / "annotations.csv").read_text().startswith(",".join(MHIST_HEADER) + "\n")
    assert [tuple(r) for r in rows] == [(n, lab, str(v), p) for n, lab, v, p in standin_annotations(TINY, 1)]
    assert summary["num_images"] == len(rows) == 17
    assert summary["counts"] == {"train": {"HP": 8, "SSA": 3}, "test": {"HP": 3, "SSA": 3}}
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [r[0] for r in rows]
    with Image.open(tmp_path / "images" / rows[0][0]) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (224, 224)
        pixels = np.asarray(image)
    expected = render_standin([rows[0][1] == "SSA"], [int(rows[0][2])], seed=1)[0]
    assert np.array_equal(pixels, expected)
    # No staging folder left; the marker tells the loader this is a stand-in.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.csv", "images", STANDIN_MARKER]
    assert json.loads((tmp_path / STANDIN_MARKER).read_text())["seed"] == 1


def test_same_seed_same_bytes(tmp_path):
    a, b, c = (write_mhist_standin(tmp_path / name, scale=TINY, seed=seed, layout="zip") for name, seed in
               (("a", 0), ("b", 0), ("c", 1)))
    zips = [(tmp_path / name / "images.zip").read_bytes() for name in "abc"]
    csvs = [(tmp_path / name / "annotations.csv").read_bytes() for name in "abc"]
    assert zips[0] == zips[1] and csvs[0] == csvs[1]
    assert zips[0] != zips[2]


def test_flat_and_zip_layouts(tmp_path):
    write_mhist_standin(tmp_path / "flat", scale=TINY, layout="flat")
    write_mhist_standin(tmp_path / "zip", scale=TINY, layout="zip")
    write_mhist_standin(tmp_path / "images", scale=TINY, layout="images")
    _, rows = read_csv(tmp_path / "flat" / "annotations.csv")
    names = [r[0] for r in rows]
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == sorted(["annotations.csv", STANDIN_MARKER, *names])
    assert sorted(p.name for p in (tmp_path / "zip").iterdir()) == ["annotations.csv", "images.zip", STANDIN_MARKER]
    with zipfile.ZipFile(tmp_path / "zip" / "images.zip") as archive:
        entries = archive.infolist()
        assert [e.filename for e in entries] == ["images/", *(f"images/{n}" for n in names)]
        assert all(e.compress_type == zipfile.ZIP_STORED for e in entries)
        for name in names:
            data = archive.read(f"images/{name}")
            assert data == (tmp_path / "flat" / name).read_bytes() == (tmp_path / "images" / "images" / name
                                                                       ).read_bytes()
            assert Image.open(io.BytesIO(data)).size == (224, 224)


def test_refuses_to_overwrite_and_bad_layout(tmp_path):
    write_mhist_standin(tmp_path, scale=TINY)
    before = (tmp_path / "annotations.csv").read_bytes()
    with pytest.raises(ConfigError, match="already holds"):
        write_mhist_standin(tmp_path, scale=TINY, seed=2)
    assert (tmp_path / "annotations.csv").read_bytes() == before
    with pytest.raises(ConfigError, match="layout"):
        write_mhist_standin(tmp_path / "other", scale=TINY, layout="tar")
