"""A synthetic stand-in for MHIST (Wei et al. 2021), written in exactly the layout of the real download.

MHIST is 3,152 H&E-stained colorectal-polyp patches (224x224 RGB PNG) labelled HP (hyperplastic polyp, benign,
class 0) or SSA (sessile serrated adenoma, class 1) by the majority of 7 pathologists. It is distributed under a
research-use agreement, so tests, CI and CPU demos use this generator instead: same file layout (`annotations.csv`
plus `images/`, a flat folder, or `images.zip`), same names, same header, same counts at `scale='full'`.

The images imitate H&E in optical density (Beer-Lambert: pink eosin stroma and cytoplasm, dark blue-purple
hematoxylin nuclei, pale gland lumens). The class lives in gland *shape* only: HP crypts are round or oval with
smooth borders; SSA crypts are dilated (about 1.5x the radius) with star-shaped lumens (5-9 saw-tooth infoldings of
35-50% of the lumen radius), large enough to survive downsampling to 64 px (and, weakened, to 32 px). Stain colours,
brightness, the share of the patch covered by glands, the lumen fraction and nucleus density are drawn from one
distribution for both classes; glands fill an area budget (so dilated glands come fewer), a serrated border is
scaled to keep its area, and epithelial nuclei grow with gland area: the mean colour carries no class information.
How clear the class is follows the annotators: each gland is serrated with probability
`SERRATION_PROBABILITY[votes]` (0.03 at 0 of 7 SSA votes, 0.38 and 0.62 at 3 and 4, 0.97 at 7), so borderline images
(3 or 4 votes) mix smooth and serrated glands and even a perfect counter of serrated glands misclassifies some images.

Everything is numpy (and Pillow for PNG): no JAX needed. Image i of a set is a pure function of (seed, i, its label,
its votes), so sets written in chunks, or a subset rendered on its own, are identical.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from jaxdistill.data.mhist import CLASS_NAMES, HEADER, OFFICIAL_COUNTS, STANDIN_MARKER
from jaxdistill.errors import ConfigError

__all__ = ["CLASS_NAMES", "LAYOUTS", "MHIST_HEADER", "OFFICIAL_COUNTS", "SCALES", "SERRATION_PROBABILITY",
           "VOTE_PROBABILITIES", "mhist_image_names", "render_standin", "standin_annotations", "standin_counts",
           "write_mhist_standin"]

MHIST_HEADER = HEADER  # the real CSV's header; CLASS_NAMES (label index 0, 1) and OFFICIAL_COUNTS are the reader's
SCALES = {"full": 1.0, "small": 0.1}
LAYOUTS = ("images", "flat", "zip")

# How many of the 7 pathologists chose SSA, per majority label: clear cases (0 or 7 votes) are the most common,
# borderline ones (3 or 4) the least.
VOTE_PROBABILITIES = {"HP": {0: 0.40, 1: 0.28, 2: 0.18, 3: 0.14}, "SSA": {4: 0.14, 5: 0.20, 6: 0.28, 7: 0.38}}
# Probability that a gland is serrated, by SSA votes: logistic, 0.03 at 0 votes, 0.38 / 0.62 at 3 / 4 (borderline
# images mix smooth and serrated glands), 0.97 at 7.
SERRATION_PROBABILITY = tuple(float(1 / (1 + np.exp(3.5 - v))) for v in range(8))

_SIZE = 224  # the real patches' side; lengths below are in pixels of a 224-pixel image
_HEMATOXYLIN = np.array([0.650, 0.704, 0.286])  # optical density per unit stain (Ruifrok & Johnston 2001)
_EOSIN = np.array([0.072, 0.990, 0.105])
_BLOCK = 64  # images per block of float work when rendering
_STAMP_ANGLES = 16  # orientations in the nucleus stamp bank


def mhist_image_names(n: int) -> list[str]:
    """The first n MHIST file names in order: MHIST_aaa.png, MHIST_aab.png, ... (three lowercase letters)."""
    if not 0 <= n <= 26 ** 3:
        raise ConfigError(f"MHIST names cover 0 to {26 ** 3} images, asked for {n}")
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [f"MHIST_{letters[i // 676]}{letters[i // 26 % 26]}{letters[i % 26]}.png" for i in range(n)]


def _fraction(scale: str | float) -> float:
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ConfigError(f"scale must be one of {', '.join(SCALES)} or a fraction in (0, 1], got {scale!r}")
        return SCALES[scale]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)} or a fraction in (0, 1], got {scale!r}")
    return float(scale)


def standin_counts(scale: str | float = "small") -> dict[str, tuple[int, int]]:
    """(HP, SSA) image counts per partition: the official counts times the scale's fraction, rounded, at least 3.

    'full' gives OFFICIAL_COUNTS (train 1545/630, test 617/360); 'small' a tenth (train 155/63, test 62/36: 316
    images); a float f in (0, 1] gives round(f * count) per class and partition but never fewer than 3, so even a
    tiny set has both classes in both partitions.
    """
    fraction = _fraction(scale)
    return {part: tuple(max(3, int(np.floor(fraction * c + 0.5))) for c in counts)
            for part, counts in OFFICIAL_COUNTS.items()}


def standin_annotations(scale: str | float = "small", seed: int = 0) -> list[tuple[str, str, int, str]]:
    """The rows of a stand-in's annotations.csv without rendering: (name, 'HP'|'SSA', SSA votes 0-7, partition).

    Rows are in name order with train and test interleaved at random (as in the real file); votes are drawn from
    VOTE_PROBABILITIES, so HP rows have 0-3 votes and SSA rows 4-7. Deterministic in (scale, seed).
    """
    rng = np.random.default_rng([seed, 0])
    entries = [(label, part) for part, counts in standin_counts(scale).items()
               for label, count in zip(CLASS_NAMES, counts) for _ in range(count)]
    order = rng.permutation(len(entries))
    rows = []
    for name, index in zip(mhist_image_names(len(entries)), order):
        label, part = entries[index]
        votes, probs = zip(*VOTE_PROBABILITIES[label].items())
        rows.append((name, label, int(rng.choice(votes, p=probs)), part))
    return rows


def _upsampling_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights, half-pixel centres, clamped at the borders."""
    centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    weights = np.maximum(0.0, 1.0 - np.abs(centres[:, None] - np.arange(n_in)[None, :]))
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def _smooth_field(rng: np.random.Generator, upsampling: np.ndarray) -> np.ndarray:
    """A smooth random (size, size) field with values in [-1, 1]: a coarse uniform grid, linearly upsampled by the
    (size, cells) matrix `upsampling`, so features are about size/cells pixels wide."""
    cells = upsampling.shape[1]
    return upsampling @ rng.uniform(-1, 1, (cells, cells)).astype(np.float32) @ upsampling.T


def _stamp_bank(length: float, width: float, half: int) -> np.ndarray:
    """(_STAMP_ANGLES, 2*half+1, 2*half+1) soft filled ellipses (peak 1) of the given axes, one per orientation."""
    grid = np.arange(-half, half + 1, dtype=np.float64)
    y, x = np.meshgrid(grid, grid, indexing="ij")
    bank = []
    for angle in np.arange(_STAMP_ANGLES) * np.pi / _STAMP_ANGLES:
        u = (x * np.cos(angle) + y * np.sin(angle)) / (length / 2)
        v = (-x * np.sin(angle) + y * np.cos(angle)) / (width / 2)
        bank.append(np.exp(-((u * u + v * v) ** 2)))  # a super-Gaussian: flat inside, a soft edge
    return np.asarray(bank, np.float32)


class _Nuclei:
    """Nucleus stamps of one image size, placed by a single bincount per image (no Python loop over nuclei)."""

    def __init__(self, size: int):
        scale = size / _SIZE
        self.size = size
        self.half = max(2, int(np.ceil(7 * scale)))
        # Banks: 0 epithelial (columnar, oval), 1 stromal (spindle-shaped), 2 lymphocytes (small, round).
        self.banks = np.stack([_stamp_bank(9.5 * scale, 5.0 * scale, self.half),
                               _stamp_bank(12.0 * scale, 3.6 * scale, self.half),
                               _stamp_bank(5.5 * scale, 5.5 * scale, self.half)]).reshape(
                                   3 * _STAMP_ANGLES, -1)
        side = size + 2 * self.half
        offsets = np.arange(-self.half, self.half + 1)
        self.offsets = (offsets[:, None] * side + offsets[None, :]).ravel()
        self.side = side

    def render(self, ys, xs, kinds, angles, strengths) -> np.ndarray:
        """(size, size) sum of stamps centred at (ys, xs) (pixels); kinds index the banks, angles in radians."""
        ys, xs = np.rint(ys).astype(np.int64), np.rint(xs).astype(np.int64)
        inside = (ys >= 0) & (ys < self.size) & (xs >= 0) & (xs < self.size)
        bins = np.rint(np.mod(angles, np.pi) / np.pi * _STAMP_ANGLES).astype(np.int64) % _STAMP_ANGLES
        stamps = (kinds * _STAMP_ANGLES + bins)[inside]
        centres = (ys[inside] + self.half) * self.side + xs[inside] + self.half
        weights = self.banks[stamps] * strengths[inside, None].astype(np.float32)
        canvas = np.bincount((centres[:, None] + self.offsets[None, :]).ravel(), weights.ravel(),
                             minlength=self.side * self.side)
        h = self.half
        return canvas.reshape(self.side, self.side)[h:h + self.size, h:h + self.size]


def _triangle_wave(t: np.ndarray) -> np.ndarray:
    """Zero-mean triangle wave of period 1 in [-1, 1]: the saw-tooth (star-shaped) border profile."""
    return 1.0 - 4.0 * np.abs(t - np.floor(t + 0.5))


def _draw_glands(rng, hem, eos, cover, stain, votes, size, nuclei_points):
    """Draw one image's crypts into its hematoxylin and eosin density maps and its gland coverage map (in place);
    append their nuclei to nuclei_points.

    Glands are added until they cover a per-image share of the patch (drawn alike for both classes). Each is
    serrated with probability SERRATION_PROBABILITY[votes]; a serrated gland is dilated (about 1.5x the radius) and
    its lumen is star-shaped (saw-tooth infoldings), its outer border less so. Because glands fill an area budget,
    images with dilated glands have fewer of them, and the lumen and epithelium shares stay the same.
    """
    scale = size / _SIZE
    serration_p = SERRATION_PROBABILITY[votes]
    budget = rng.uniform(0.30, 0.42) * size * size
    centres, radii, covered = [], [], 0.0
    for _ in range(16):
        serrated = rng.random() < serration_p
        radius = rng.uniform(32, 46) * scale if serrated else rng.uniform(22, 31) * scale
        shape = {"serrated": serrated, "teeth": int(rng.integers(5, 10)), "phases": rng.uniform(0, 2 * np.pi, 3),
                 "harmonics": rng.uniform(0, 0.06, 2), "aspect": rng.uniform(1.0, 1.5), "tilt": rng.uniform(0, np.pi),
                 "lumen": rng.uniform(0.45, 0.6), "lumen_amplitude": rng.uniform(0.35, 0.5) if serrated else 0.0}
        for _ in range(30):  # place without overlap; a gland may run off the patch
            centre = rng.uniform(-0.1 * size, 1.1 * size, 2)
            if all(np.hypot(*(centre - c)) > 0.95 * (radius + r) for c, r in zip(centres, radii)):
                centres.append(centre)
                radii.append(radius)
                _draw_gland(rng, hem, eos, cover, stain, centre, radius, shape, size, nuclei_points)
                covered += np.pi * radius * radius
                break
        if covered >= budget:
            break


def _draw_gland(rng, hem, eos, cover, stain, centre, radius, shape, size, nuclei_points):
    """One crypt: pale lumen, eosinophilic epithelium, a ring of columnar nuclei on its basal side."""
    scale = size / _SIZE
    cy, cx = centre
    lumen_amplitude = shape["lumen_amplitude"]
    outer_amplitude = 0.4 * lumen_amplitude
    harmonics, phases, teeth, tilt = shape["harmonics"], shape["phases"], shape["teeth"], shape["tilt"]
    # A triangle wave of amplitude a adds a^2/3 to the mean squared radius: shrink to keep each area unchanged.
    radius_eff = radius / np.sqrt(1 + outer_amplitude ** 2 / 3)
    lumen = shape["lumen"] * np.sqrt((1 + outer_amplitude ** 2 / 3) / (1 + lumen_amplitude ** 2 / 3))
    axis_u, axis_v = radius_eff * np.sqrt(shape["aspect"]), radius_eff / np.sqrt(shape["aspect"])

    def borders(theta):
        """(lumen border, outer border) radii at angle theta, in units of the gland's axes."""
        smooth = 1 + harmonics[0] * np.cos(2 * theta + phases[0]) + harmonics[1] * np.cos(3 * theta + phases[1])
        tooth = _triangle_wave(teeth * theta / (2 * np.pi) + phases[2])
        return lumen * (smooth + lumen_amplitude * tooth), smooth + outer_amplitude * tooth

    reach = axis_u * (1 + outer_amplitude + harmonics.sum()) + 2
    y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 1)
    x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 1)
    if y0 < y1 and x0 < x1:
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
        u = (dx * np.cos(tilt) + dy * np.sin(tilt)) / axis_u
        v = (-dx * np.sin(tilt) + dy * np.cos(tilt)) / axis_v
        rho = np.sqrt(u * u + v * v)
        lumen_border, outer_border = borders(np.arctan2(v, u))
        edge = 1.2 * scale / radius_eff  # about one pixel of soft edge, in units of rho
        gland = np.clip((outer_border - rho) / edge + 0.5, 0, 1)
        lumen_mask = np.clip((lumen_border - rho) / edge + 0.5, 0, 1)
        epithelium = gland - lumen_mask
        h_win, e_win = hem[y0:y1, x0:x1], eos[y0:y1, x0:x1]
        np.maximum(cover[y0:y1, x0:x1], gland, out=cover[y0:y1, x0:x1])
        h_win *= 1 - gland
        e_win *= 1 - gland
        h_win += epithelium * stain["epithelium_h"] + lumen_mask * 0.02
        e_win += epithelium * stain["epithelium_e"] + lumen_mask * stain["lumen_e"]
    # Columnar nuclei on the basal side of the epithelium. Their number grows with the gland's area, not its
    # perimeter, so that, glands filling the same area budget, nucleus density carries no class information.
    n = int(2 * np.pi * radius / stain["nucleus_spacing"] * radius / (27 * scale))
    theta = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
    lumen_border, outer_border = borders(theta)
    depth = lumen_border + (outer_border - lumen_border) * rng.uniform(0.5, 0.75, n)
    u, v = depth * np.cos(theta) * axis_u, depth * np.sin(theta) * axis_v
    px = cx + u * np.cos(tilt) - v * np.sin(tilt)
    py = cy + u * np.sin(tilt) + v * np.cos(tilt)
    nuclei_points.append((py, px, np.zeros(n, np.int64), np.arctan2(py - cy, px - cx) + np.pi / 2,
                          rng.uniform(0.8, 1.15, n)))


def _render_block(labels, votes, seed, start, size, nuclei):
    count = len(labels)
    rngs = [np.random.default_rng([seed, 1, start + i]) for i in range(count)]
    scale = size / _SIZE
    up_fine, up_coarse = _upsampling_matrix(7, size), _upsampling_matrix(4, size)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / scale
    hem = np.empty((count, size, size), np.float32)
    eos = np.empty((count, size, size), np.float32)
    white = np.empty((count, 1, 1, 1), np.float32)
    stain_od = np.empty((count, 2, 3), np.float32)
    noise = np.empty((count, size, size, 3), np.float32)
    for i, rng in enumerate(rngs):
        if labels[i] not in (0, 1) or not 0 <= votes[i] <= 7:
            raise ConfigError(f"image {start + i}: label must be 0 (HP) or 1 (SSA) and votes 0-7, "
                              f"got label {labels[i]} with {votes[i]} votes")
        stain = {"stroma_e": rng.uniform(0.35, 0.6), "epithelium_e": rng.uniform(0.55, 0.85),
                 "epithelium_h": rng.uniform(0.08, 0.2), "lumen_e": rng.uniform(0.02, 0.1),
                 "nucleus_h": rng.uniform(1.1, 1.6), "nucleus_spacing": rng.uniform(6.5, 8.5) * scale}
        blotches = _smooth_field(rng, up_fine)  # staining unevenness
        density = _smooth_field(rng, up_coarse)  # where stroma is looser or denser
        # Collagen fibres: a few waves of 7-14 px around one direction.
        fibre_angle = rng.uniform(0, np.pi)
        fibres = np.zeros((size, size), np.float32)
        for _ in range(4):
            angle = fibre_angle + rng.normal(0, 0.25)
            wavelength = rng.uniform(7, 14)
            fibres += np.cos(2 * np.pi / wavelength * (np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None])
                             + rng.uniform(0, 2 * np.pi)).astype(np.float32)
        eos[i] = stain["stroma_e"] * (1 + 0.18 * blotches + 0.25 * density + 0.06 * fibres)
        hem[i] = 0.05 + 0.03 * blotches
        points = []
        cover = np.zeros((size, size), np.float32)
        _draw_glands(rng, hem[i], eos[i], cover, stain, int(votes[i]), size, points)
        # Stromal nuclei (spindle fibroblasts and round lymphocytes), at a per-image density, outside glands.
        n = rng.poisson(rng.uniform(60, 160))
        ys, xs = rng.uniform(0, size, n), rng.uniform(0, size, n)
        in_stroma = cover[ys.astype(int), xs.astype(int)] < 0.5
        points.append((ys[in_stroma], xs[in_stroma], rng.choice([1, 2], n, p=[0.6, 0.4])[in_stroma],
                       rng.uniform(0, np.pi, n)[in_stroma], rng.uniform(0.8, 1.2, n)[in_stroma]))
        ys, xs, kinds, angles, strengths = (np.concatenate(parts) for parts in zip(*points))
        stamps = np.minimum(nuclei.render(ys, xs, kinds, angles, strengths), 1.2)
        hem[i] += stamps * stain["nucleus_h"]
        eos[i] *= 1 - 0.5 * np.minimum(stamps, 1)
        stain_od[i, 0] = _HEMATOXYLIN * rng.uniform(0.85, 1.15) + rng.normal(0, 0.04, 3)
        stain_od[i, 1] = _EOSIN * rng.uniform(0.85, 1.15) + rng.normal(0, 0.04, 3)
        white[i] = rng.uniform(225, 250)
        noise[i] = rng.normal(0, 2.5, (size, size, 3))
    # Slight optical blur, then Beer-Lambert: intensity = white * exp(-(h * H + e * E)).
    kernel = np.array([0.25, 0.5, 0.25], np.float32)
    for maps in (hem, eos):
        for axis in (1, 2):
            padded = np.pad(maps, [(0, 0)] + [(1, 1) if a == axis else (0, 0) for a in (1, 2)], mode="edge")
            sliced = [np.take(padded, np.arange(k, k + size), axis=axis) for k in range(3)]
            maps[...] = sum(w * s for w, s in zip(kernel, sliced))
    od = hem[..., None] * stain_od[:, None, None, 0, :] + eos[..., None] * stain_od[:, None, None, 1, :]
    return np.clip(np.rint(white * np.exp(-od) + noise), 0, 255).astype(np.uint8)


def render_standin(labels: Sequence[int], votes: Sequence[int], seed: int, size: int = _SIZE, *,
                   start: int = 0) -> np.ndarray:
    """uint8 (N, size, size, 3) H&E-like patches for labels (0 HP, 1 SSA) and SSA votes (0-7 of 7 annotators).

    Image i depends only on (seed, start + i, labels[i], votes[i]): `start` is the index of the first image in the
    whole set, so a set rendered in chunks equals one rendered at once. Lengths scale with `size` (224 is MHIST's).
    """
    labels, votes = np.asarray(labels, np.int64).ravel(), np.asarray(votes, np.int64).ravel()
    if labels.shape != votes.shape:
        raise ConfigError(f"render_standin needs one vote count per label, got {labels.size} labels and "
                          f"{votes.size} vote counts")
    if size < 16:
        raise ConfigError(f"render_standin size must be at least 16 pixels, got {size}")
    nuclei = _Nuclei(size)
    out = np.empty((labels.size, size, size, 3), np.uint8)
    for lo in range(0, labels.size, _BLOCK):
        hi = min(lo + _BLOCK, labels.size)
        out[lo:hi] = _render_block(labels[lo:hi], votes[lo:hi], seed, start + lo, size, nuclei)
    return out


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MHIST_HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


def write_mhist_standin(folder: str | os.PathLike, *, scale: str | float = "small", seed: int = 0,
                        layout: str = "images", progress=None) -> dict[str, Any]:
    """Write a stand-in MHIST into `folder` in the real layout; returns a summary (counts, paths).

    Writes annotations.csv (MHIST_HEADER, rows in name order, train and test interleaved) and the PNGs: in an
    `images/` subfolder (layout 'images', as unpacked from the download), next to the CSV ('flat'), or inside
    `images.zip` as stored (uncompressed) entries `images/MHIST_xxx.png` ('zip'). `scale`: 'full' (the official
    3,152 images), 'small' (a tenth, 316) or a fraction (see `standin_counts`). A marker file
    (`jaxdistill.data.mhist.STANDIN_MARKER`) records the generator's settings, so the loader flags runs on it as
    stand-in runs. The same (scale, seed, layout) gives byte-identical files. Nothing half-written is left:
    everything is written under temporary names first, and existing MHIST files in `folder` are an error rather
    than overwritten. `progress(n)` is told of every n images.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    folder = Path(folder)
    rows = standin_annotations(scale, seed)
    targets = {"images": ["images"], "flat": [r[0] for r in rows], "zip": ["images.zip"]}[layout]
    existing = [name for name in ["annotations.csv", STANDIN_MARKER, *targets] if (folder / name).exists()]
    if existing:
        raise ConfigError(f"{folder} already holds {existing[0]}: write the stand-in into an empty folder "
                          f"or delete the old one first")
    folder.mkdir(parents=True, exist_ok=True)
    labels = [CLASS_NAMES.index(r[1]) for r in rows]
    votes = [r[2] for r in rows]
    staging = Path(tempfile.mkdtemp(prefix=".mhist_standin_", dir=folder))
    try:
        images_dir = staging / "images"
        images_dir.mkdir()
        archive = zipfile.ZipFile(staging / "images.zip", "w", zipfile.ZIP_STORED) if layout == "zip" else None
        if archive is not None:
            archive.writestr(zipfile.ZipInfo("images/", date_time=(1980, 1, 1, 0, 0, 0)), b"")
        chunk = 256
        for lo in range(0, len(rows), chunk):
            images = render_standin(labels[lo:lo + chunk], votes[lo:lo + chunk], seed, start=lo)
            for row, image in zip(rows[lo:lo + chunk], images):
                data = _png_bytes(image)
                if archive is not None:
                    info = zipfile.ZipInfo(f"images/{row[0]}", date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
                else:
                    (images_dir / row[0]).write_bytes(data)
            if progress:
                progress(len(images))
        if archive is not None:
            archive.close()
        (staging / "annotations.csv").write_text(_csv_text(rows), encoding="utf-8")
        if layout == "images":
            os.replace(images_dir, folder / "images")
        elif layout == "zip":
            os.replace(staging / "images.zip", folder / "images.zip")
        else:
            for row in rows:
                os.replace(images_dir / row[0], folder / row[0])
        # the marker by which the loader flags every run on this folder as a stand-in (the real MHIST has none)
        marker = {"generator": "jaxdistill.data.mhist_standin", "scale": scale, "seed": seed, "layout": layout,
                  "note": "synthetic stand-in for MHIST; not MHIST data"}
        (staging / STANDIN_MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(staging / STANDIN_MARKER, folder / STANDIN_MARKER)
        os.replace(staging / "annotations.csv", folder / "annotations.csv")  # last: its presence means complete
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {part: {name: sum(1 for r in rows if r[3] == part and r[1] == name) for name in CLASS_NAMES}
              for part in OFFICIAL_COUNTS}
    return {"folder": str(folder), "layout": layout, "scale": scale, "seed": seed, "num_images": len(rows),
            "counts": counts, "annotations": str(folder / "annotations.csv"),
            "images": str(folder / {"images": "images", "flat": ".", "zip": "images.zip"}[layout])}
