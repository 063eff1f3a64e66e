"""The MHIST reader: layouts, validation (one line naming the row or file, exit 2 from the command, nothing
written), the decode cache keyed by the source checksum, the agreement filter, and the registered spec."""
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxdistill.cli import main
from jaxdistill.data import mhist
from jaxdistill.data.mhist_standin import write_mhist_standin
from jaxdistill.data.registry import get_spec
from jaxdistill.data.sources import dataset_status, load_dataset
from jaxdistill.errors import ConfigError, DataError, DataWarning

FRACTION = 0.01  # about 30 images: every class in both splits
pytestmark = pytest.mark.filterwarnings("ignore::jaxdistill.errors.DataWarning")  # tiny stand-ins: not official


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """A tiny stand-in in the real layout (annotations.csv + images/), written once for the module."""
    folder = tmp_path_factory.mktemp("mhist") / "mhist"
    write_mhist_standin(folder, scale=FRACTION, seed=0, layout="images")
    return folder


@pytest.fixture
def copy(standin, tmp_path) -> Path:
    """A private copy of the stand-in, to damage."""
    target = tmp_path / "mhist"
    shutil.copytree(standin, target)
    return target


def load(folder, cache, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a tiny stand-in is not the official split
        return load_dataset("mhist", folder, cache_dir=cache, progress=False, **kw)


def rewrite_csv(folder: Path, edit) -> None:
    path = folder / mhist.ANNOTATIONS
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def set_field(lines, row: int, column: int, value: str):
    fields = lines[row].split(",")
    fields[column] = value
    lines[row] = ",".join(fields)
    return lines


def test_loads_the_standin_with_labels_votes_and_provenance(standin, tmp_path):
    ds = load(standin, tmp_path / "cache", resolution=32)
    rows = mhist.read_annotations(standin / mhist.ANNOTATIONS)
    train = [r for r in rows if r.partition == "train"]
    assert ds.train_images.shape == (len(train), 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.train_labels.tolist() == [r.label for r in train]
    assert ds.annotations["train_votes"].tolist() == [r.votes for r in train]
    assert ((ds.annotations["train_votes"] >= 4) == (ds.train_labels == 1)).all()
    assert ds.stand_in and ds.origin.kind == "data_dir" and len(ds.source_sha256) == 64
    assert ds.spec.image_shape == (32, 32, 3) and ds.spec.convnet_depth() == 3


def test_default_resolution_is_64_and_native_224_is_exact(standin, tmp_path):
    ds = load(standin, tmp_path / "cache")
    assert ds.train_images.shape[1:] == (64, 64, 3) and ds.spec.convnet_depth() == 4
    native = load(standin, tmp_path / "cache", resolution=224)
    rows = mhist.read_annotations(standin / mhist.ANNOTATIONS)
    first = next(r for r in rows if r.partition == "train")
    assert np.array_equal(native.train_images[0], np.asarray(Image.open(standin / "images" / first.name)))


def test_second_load_comes_from_the_cache_and_a_changed_source_is_noticed(copy, tmp_path):
    cache = tmp_path / "cache"
    first = mhist.read_mhist(copy, 32, cache_dir=cache)
    again = mhist.read_mhist(copy, 32, cache_dir=cache)
    assert not first.cached and again.cached and again.source_sha256 == first.source_sha256
    assert np.array_equal(first.train_images, again.train_images)
    victim = next((copy / "images").iterdir())
    pixels = np.asarray(Image.open(victim)).copy()
    pixels[:8, :8] = 255 - pixels[:8, :8]
    Image.fromarray(pixels).save(victim)
    changed = mhist.read_mhist(copy, 32, cache_dir=cache)
    assert not changed.cached and changed.source_sha256 != first.source_sha256
    assert not np.array_equal(changed.train_images, first.train_images) or \
        not np.array_equal(changed.test_images, first.test_images)


@pytest.mark.parametrize("layout", ["flat", "zip"])
def test_every_layout_decodes_to_the_same_arrays(standin, tmp_path, layout):
    other = tmp_path / layout
    write_mhist_standin(other, scale=FRACTION, seed=0, layout=layout)
    if layout == "zip":
        assert (other / mhist.ARCHIVE).is_file() and not (other / "images").exists()
    a = load(standin, tmp_path / "cache", resolution=32)
    b = load(other, tmp_path / "cache", resolution=32)
    assert np.array_equal(a.train_images, b.train_images) and np.array_equal(a.test_labels, b.test_labels)


def test_min_agreement_keeps_the_training_images_the_annotators_agree_on(standin, tmp_path):
    whole = load(standin, tmp_path / "cache", resolution=32)
    agreed = load(standin, tmp_path / "cache", resolution=32, min_agreement=6)
    keep = mhist.agreement(whole.annotations["train_votes"]) >= 6
    assert 0 < keep.sum() < len(keep)
    assert np.array_equal(agreed.train_images, whole.train_images[keep])
    assert np.array_equal(agreed.test_images, whole.test_images)  # the test split stays whole
    with pytest.raises(ConfigError, match="min_agreement"):
        load(standin, tmp_path / "cache", min_agreement=3)
    with pytest.raises(ConfigError, match="no annotator votes"):
        load_dataset("mnist", tmp_path, min_agreement=5)


def test_split_counts_other_than_the_official_ones_warn_once_naming_them(standin, tmp_path):
    with pytest.warns(DataWarning, match=r"not the official MHIST split: train HP \d+ \(official 1545\)") as caught:
        load_dataset("mhist", standin, cache_dir=tmp_path / "cache", progress=False, resolution=32)
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 1


def test_the_official_counts_load_without_a_warning(tmp_path):
    rows = [mhist.MhistRow(f"MHIST_{i}.png", label, 7 * label, split, i)
            for i, (split, label) in enumerate((split, label) for split, counts in mhist.OFFICIAL_COUNTS.items()
                                               for label, n in enumerate(counts) for _ in range(n))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mhist._count_warning(rows, "annotations.csv")


# ---- bad inputs: one line, exit status 2, nothing written --------------------------------------------------------


def _bad_header(folder):
    rewrite_csv(folder, lambda lines: ["Image Name,Label,Votes,Partition"] + lines[1:])


def _unknown_label(folder):
    rewrite_csv(folder, lambda lines: set_field(lines, 1, 1, "TA"))


def _unknown_partition(folder):
    rewrite_csv(folder, lambda lines: set_field(lines, 1, 3, "valid"))


def _vote_out_of_range(folder):
    rewrite_csv(folder, lambda lines: set_field(lines, 1, 2, "8"))


def _vote_against_the_label(folder):
    def edit(lines):
        label = lines[1].split(",")[1]
        return set_field(lines, 1, 2, "3" if label == "SSA" else "4")
    rewrite_csv(folder, edit)


def _duplicated_row(folder):
    rewrite_csv(folder, lambda lines: lines + [lines[1]])


def _missing_image(folder):
    name = (folder / mhist.ANNOTATIONS).read_text().splitlines()[2].split(",")[0]
    (folder / "images" / name).unlink()


def _unreadable_image(folder):
    name = (folder / mhist.ANNOTATIONS).read_text().splitlines()[2].split(",")[0]
    (folder / "images" / name).write_bytes(b"\x89PNG not really")


def _wrong_size(folder):
    name = (folder / mhist.ANNOTATIONS).read_text().splitlines()[2].split(",")[0]
    Image.new("RGB", (100, 224)).save(folder / "images" / name)


def _not_rgb(folder):
    name = (folder / mhist.ANNOTATIONS).read_text().splitlines()[2].split(",")[0]
    Image.new("L", (224, 224)).save(folder / "images" / name)


def _no_annotations(folder):
    (folder / mhist.ANNOTATIONS).unlink()


def _no_images(folder):
    shutil.rmtree(folder / "images")


BAD = {
    "header": (_bad_header, ["line 1", "header"]),
    "label": (_unknown_label, ["line 2", "'TA'"]),
    "partition": (_unknown_partition, ["line 2", "'valid'"]),
    "vote-range": (_vote_out_of_range, ["line 2", "'8'"]),
    "vote-label": (_vote_against_the_label, ["line 2", "votes"]),
    "duplicate": (_duplicated_row, ["listed twice", "line 2"]),
    "missing-image": (_missing_image, ["missing", "line 3"]),
    "unreadable-image": (_unreadable_image, ["does not decode"]),
    "size": (_wrong_size, ["100x224", "224x224"]),
    "mode": (_not_rgb, ["RGB"]),
    "no-annotations": (_no_annotations, ["annotations.csv", "research-use agreement"]),
    "no-images": (_no_images, ["no images found"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(copy, tmp_path, capsys, monkeypatch, case):
    damage, words = BAD[case]
    damage(copy)
    monkeypatch.setenv("JAXDISTILL_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "run"
    code = main(["distill", "--method", "random", "--dataset", "mhist", "--ipc", "1", "--data-dir", str(copy),
                 "--workdir", str(work), "--resolution", "32", "--no-progress"])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("jaxdistill: warning: ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("jaxdistill: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in err and not work.exists()
    assert not list((tmp_path / "cache").rglob("*.npz"))  # no decode cached from a bad source


def test_a_damaged_zip_is_named(standin, tmp_path):
    folder = tmp_path / "z"
    write_mhist_standin(folder, scale=FRACTION, seed=0, layout="zip")
    (folder / mhist.ARCHIVE).write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="images.zip is not a readable zip"):
        load(folder, tmp_path / "cache")


def test_zip_with_an_image_twice_is_refused(standin, tmp_path):
    folder = tmp_path / "z"
    folder.mkdir()
    shutil.copy(standin / mhist.ANNOTATIONS, folder / mhist.ANNOTATIONS)
    first = next((standin / "images").iterdir())
    with zipfile.ZipFile(folder / mhist.ARCHIVE, "w") as z:
        z.write(first, f"images/{first.name}")
        z.write(first, f"other/{first.name}")
    with pytest.raises(DataError, match="appears twice"):
        load(folder, tmp_path / "cache")


# ---- the spec and the datasets listing ---------------------------------------------------------------------------


def test_the_spec_says_resolutions_depths_counts_and_augmentation():
    spec = get_spec("mhist")
    assert spec.image_shape == (64, 64, 3) and spec.native_shape == (224, 224, 3)
    assert spec.allowed_resolutions == (32, 64, 128, 224)
    assert [spec.at_resolution(r).convnet_depth() for r in (32, 64, 128, 224)] == [3, 4, 5, 5]
    assert 224 // 2 ** 5 in range(4, 9)  # depth 5 at 224 px leaves a 7 px feature map
    assert spec.train_counts == (1545, 630) and spec.test_counts == (617, 360)
    assert "flip" in spec.defaults.dsa_strategy.split("_") and "rot90" in spec.defaults.dsa_strategy.split("_")
    assert spec.defaults.eval_augmentation == "dsa:" + spec.defaults.dsa_strategy
    assert {"balanced_accuracy", "f1", "roc_auc"} <= set(spec.defaults.metrics)
    assert spec.imbalance() == pytest.approx(1545 / 630)


def test_status_and_listing_read_the_annotations(standin, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXDISTILL_CACHE", str(tmp_path / "cache"))
    assert dataset_status("mhist", standin) == ("present", str(standin))
    status, text = dataset_status("mhist", tmp_path)
    assert status == "missing" and "never downloaded" in text
    assert main(["datasets", "--data-dir", str(standin)]) == 0
    out = capsys.readouterr().out
    counts = mhist.read_annotations(standin / mhist.ANNOTATIONS)
    hp = sum(1 for r in counts if r.partition == "train" and r.label == 0)
    ssa = sum(1 for r in counts if r.partition == "train" and r.label == 1)
    (line,) = [x for x in out.split("\n\n")[1].splitlines() if x.startswith("mhist")]
    assert f"train HP {hp} / SSA {ssa} ({hp / ssa:.2f}:1)" in line and "[annotations.csv]" in line
