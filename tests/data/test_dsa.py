"""Differentiable Siamese Augmentation, checked against NumPy re-derivations of the reference code."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.data import augment as aug
from jaxdistill.data import dsa
from jaxdistill.errors import ConfigError

# One jitted function for the whole file, so that each (strategy, params, siamese, shape) compiles once.
aug_j = jax.jit(dsa.dsa_augment, static_argnames=("strategy", "params", "siamese"))
affine_j = jax.jit(dsa.affine_sample)

SHAPE = (6, 8, 8, 3)
KEYS = [jax.random.key(k) for k in range(4)]


def _images(seed, shape=SHAPE, low=1.0, high=2.0):
    """Values in [low, high): with low > 0 a zero in the output can only come from padding or cutout."""
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _run(key, images, strategy, params=dsa.DSAParams(), siamese=False):
    return np.asarray(aug_j(key, images, strategy, params, siamese))


# ---------------------------------------------------------------------------------------------
# NumPy re-derivations of the reference (NHWC instead of NCHW)
# ---------------------------------------------------------------------------------------------


def np_affine_sample(img, theta):
    """F.grid_sample(x, F.affine_grid(theta, x.shape)), align_corners=False, bilinear, zeros; float64."""
    n, h, w, c = img.shape
    theta = np.broadcast_to(np.asarray(theta, np.float64), (n, 2, 3))
    xs = np.linspace(-1.0, 1.0, w) * (w - 1) / w
    ys = np.linspace(-1.0, 1.0, h) * (h - 1) / h
    out = np.zeros((n, h, w, c))
    for b in range(n):
        (a, bb, e), (d, f, g) = theta[b]
        gx = a * xs[None, :] + bb * ys[:, None] + e
        gy = d * xs[None, :] + f * ys[:, None] + g
        ix, iy = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
        x0, y0 = np.floor(ix).astype(int), np.floor(iy).astype(int)
        for dy in (0, 1):
            for dx in (0, 1):
                xc, yc = x0 + dx, y0 + dy
                weight = (1 - np.abs(ix - xc)) * (1 - np.abs(iy - yc))
                ok = (xc >= 0) & (xc < w) & (yc >= 0) & (yc < h)
                vals = img[b][np.clip(yc, 0, h - 1), np.clip(xc, 0, w - 1)]
                out[b] += np.where(ok, weight, 0.0)[..., None] * vals
    return out


def np_shift(img, dh, dw):
    """out[i, j] = img[i + dh, j + dw], zero outside (one HWC image)."""
    h, w, _ = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i + dh < h and 0 <= j + dw < w:
                out[i, j] = img[i + dh, j + dw]
    return out


def np_cutout_mask(h, w, off_h, off_w, size_h, size_w):
    """The reference's mask: ones, then zeros at clamped indices of the size_h x size_w grid."""
    mask = np.ones((h, w), np.float32)
    rows = np.clip(np.arange(size_h) + off_h - size_h // 2, 0, h - 1)
    cols = np.clip(np.arange(size_w) + off_w - size_w // 2, 0, w - 1)
    mask[np.ix_(rows, cols)] = 0
    return mask


def np_color(x, ub, us, uc, p=dsa.DSAParams()):
    """brightness, saturation, contrast of one HWC image, as the reference's formulas."""
    x = x.astype(np.float64) + (ub - 0.5) * p.brightness
    m = x.mean(axis=2, keepdims=True)
    x = (x - m) * (us * p.saturation) + m
    m = x.mean()
    return (x - m) * (uc + p.contrast) + m


def recover_color(x, y):
    """The (ub, us, uc) of y = color(x) for one HWC image (channels' means/deviations separate them)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    b = y.mean() - x.mean()
    mc_x, mc_y = x.mean(axis=2), y.mean(axis=2)
    dev = (mc_x - x.mean()).ravel()
    uc = np.dot(dev, (mc_y - y.mean()).ravel()) / np.dot(dev, dev) - 0.5
    dx = (x - x.mean(axis=2, keepdims=True)).ravel()
    dy = (y - y.mean(axis=2, keepdims=True)).ravel()
    us = np.dot(dx, dy) / np.dot(dx, dx) / (2.0 * (uc + 0.5))
    return b + 0.5, us, uc


def coordinate_images(n, h, w):
    """Channels: row index, column index, ones. Bilinear sampling of them returns the sample point."""
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    img = np.stack([rows, cols, np.ones_like(rows)], -1)
    return np.broadcast_to(img, (n, h, w, 3)).copy()


def recover_theta(out, h, w):
    """Fit theta from sampled coordinate images at pixels whose four neighbours lie inside."""
    inside = np.abs(out[..., 2] - 1.0) < 1e-5
    i, j = np.nonzero(inside)
    xs, ys = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
    gx = (2 * out[i, j, 1] + 1) / w - 1
    gy = (2 * out[i, j, 0] + 1) / h - 1
    design = np.stack([xs, ys, np.ones_like(xs)], 1)
    row_x = np.linalg.lstsq(design, gx, rcond=None)[0]
    row_y = np.linalg.lstsq(design, gy, rcond=None)[0]
    return np.stack([row_x, row_y])


# ---------------------------------------------------------------------------------------------
# Strategy parsing, parameters, defaults
# ---------------------------------------------------------------------------------------------


def test_params_default_to_the_reference():
    assert dataclasses.asdict(dsa.DSAParams()) == {
        "aug_mode": "S", "prob_flip": 0.5, "ratio_scale": 1.2, "ratio_rotate": 15.0,
        "ratio_crop_pad": 0.125, "ratio_cutout": 0.5, "brightness": 1.0, "saturation": 2.0,
        "contrast": 0.5,
    }
    with pytest.raises(ConfigError, match="aug_mode"):
        dsa.DSAParams(aug_mode="X")
    with pytest.raises(ConfigError):
        dsa.DSAParams(ratio_scale=0.0)


def test_parse_and_default_strategy():
    assert dsa.parse_dsa_strategy("crop_crop_scale") == ("crop", "crop", "scale")
    assert dsa.parse_dsa_strategy("none") == dsa.parse_dsa_strategy("None") == dsa.parse_dsa_strategy("") == ()
    assert dsa.default_dsa_strategy("CIFAR10") == "color_crop_cutout_flip_scale_rotate"
    assert dsa.default_dsa_strategy("fashion_mnist") == "color_crop_cutout_flip_scale_rotate"
    for name in ("mnist", "MNIST", "svhn"):
        assert dsa.default_dsa_strategy(name) == "color_crop_cutout_scale_rotate"


@pytest.mark.parametrize("strategy", ["colour", "crop_", "Crop", "crop_noise"])
def test_unknown_strategy_raises_config_error_naming_ops(strategy):
    with pytest.raises(ConfigError, match="cutout"):
        dsa.dsa_augment(KEYS[0], _images(0), strategy)
    with pytest.raises(ConfigError, match="cutout"):
        aug.get_augment(f"dsa:{strategy}")


def test_none_is_identity():
    x = _images(1)
    for strategy in ("none", "None", ""):
        np.testing.assert_array_equal(np.asarray(dsa.dsa_augment(KEYS[0], x, strategy)), x)
    np.testing.assert_array_equal(np.asarray(aug.get_augment("dsa:none")(KEYS[0], x)), x)


# ---------------------------------------------------------------------------------------------
# Single operations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("siamese", [False, True])
def test_color_follows_reference_formulas(siamese):
    x = _images(2, low=-1.0, high=1.0)
    recovered = []
    for key in KEYS[:2]:
        y = _run(key, x, "color", siamese=siamese)
        for b in range(len(x)):
            u = recover_color(x[b], y[b])
            assert all(-1e-4 <= v < 1 + 1e-4 for v in u), u
            np.testing.assert_allclose(y[b], np_color(x[b], *u), atol=1e-5)
            recovered.append(u)
    spread = np.ptp(np.asarray(recovered[: len(x)]), axis=0)
    assert (spread < 1e-4).all() if siamese else (spread > 1e-3).all()


def test_explicit_color_functions():
    x = _images(3, low=-1.0, high=1.0)
    u = np.linspace(0.1, 0.9, len(x)).astype(np.float32)
    got = dsa.contrast(dsa.saturation(dsa.brightness(x, u), u), u)
    want = np.stack([np_color(x[b], u[b], u[b], u[b]) for b in range(len(x))])
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


@pytest.mark.parametrize("siamese", [False, True])
def test_crop_is_zero_filled_integer_shift(siamese):
    x = _images(4)
    shift = int(8 * 0.125 + 0.5)
    seen = set()
    for key in KEYS:
        y = _run(key, x, "crop", siamese=siamese)
        shifts = []
        for b in range(len(x)):
            matches = [
                (dh, dw)
                for dh in range(-shift, shift + 1)
                for dw in range(-shift, shift + 1)
                if np.array_equal(y[b], np_shift(x[b], dh, dw))
            ]
            assert len(matches) == 1
            shifts.append(matches[0])
        seen.update(shifts)
        if siamese:
            assert len(set(shifts)) == 1
    assert len(seen) > 1


def test_explicit_translate_beyond_the_pad():
    x = _images(5)
    got = np.asarray(dsa.translate(x, np.array([3, -2, 0, 9, -8, 1]), np.array([-1, 4, 0, 0, 2, -7])))
    for b, (dh, dw) in enumerate([(3, -1), (-2, 4), (0, 0), (9, 0), (-8, 2), (1, -7)]):
        np.testing.assert_array_equal(got[b], np_shift(x[b], dh, dw))


@pytest.mark.parametrize("siamese", [False, True])
def test_cutout_zeroes_one_clamped_block(siamese):
    x = _images(6)
    size = int(8 * 0.5 + 0.5)
    for key in KEYS:
        y = _run(key, x, "cutout", siamese=siamese)
        masks = []
        for b in range(len(x)):
            zero = (y[b] == 0).all(-1)
            candidates = [
                np_cutout_mask(8, 8, oh, ow, size, size)
                for oh in range(8 + 1 - size % 2)
                for ow in range(8 + 1 - size % 2)
            ]
            assert any(np.array_equal(zero, m == 0) for m in candidates)
            np.testing.assert_array_equal(y[b][~zero], x[b][~zero])
            masks.append(zero)
        if siamese:
            assert all(np.array_equal(m, masks[0]) for m in masks)


def test_explicit_cutout_matches_reference_mask_with_odd_size():
    x = _images(7, shape=(4, 12, 10, 1))
    offsets_h, offsets_w = np.array([0, 5, 12, 11]), np.array([10, 0, 3, 9])
    got = np.asarray(dsa.cutout(x, offsets_h, offsets_w, 3, 5))
    for b in range(len(x)):
        mask = np_cutout_mask(12, 10, offsets_h[b], offsets_w[b], 3, 5)
        np.testing.assert_array_equal(got[b], x[b] * mask[..., None])


@pytest.mark.parametrize("siamese", [False, True])
def test_flip_reverses_width(siamese):
    x = _images(8)
    flipped = []
    for key in KEYS:
        y = _run(key, x, "flip", siamese=siamese)
        for b in range(len(x)):
            is_flip = np.array_equal(y[b], x[b, :, ::-1])
            assert is_flip or np.array_equal(y[b], x[b])
            flipped.append(is_flip)
    assert any(flipped) and not all(flipped)
    if siamese:
        per_call = np.asarray(flipped).reshape(len(KEYS), len(x))
        assert (per_call == per_call[:, :1]).all()


@pytest.mark.parametrize("siamese", [False, True])
def test_rot90_turns_each_image_by_whole_quarter_turns(siamese):
    x = _images(8, (16, 6, 6, 2))
    turns = []
    for key in KEYS:
        y = _run(key, x, "rot90", siamese=siamese)
        for b in range(len(x)):
            (k,) = [k for k in range(4) if np.array_equal(y[b], np.rot90(x[b], k, axes=(0, 1)))]
            turns.append(k)
    per_call = np.asarray(turns).reshape(len(KEYS), len(x))
    if siamese:
        assert (per_call == per_call[:, :1]).all()
    else:
        assert set(turns) == {0, 1, 2, 3}  # 64 draws: each quarter turn occurs
    with pytest.raises(ValueError, match="square"):
        dsa.rotate90(np.zeros((1, 4, 6, 1), np.float32), 1)


def test_flip_probability_and_mode_m():
    x = _images(9)
    always = dsa.DSAParams(prob_flip=1.0)
    np.testing.assert_array_equal(_run(KEYS[0], x, "flip", always), x[:, :, ::-1])
    np.testing.assert_array_equal(_run(KEYS[0], x, "flip_flip", dataclasses.replace(always, aug_mode="M")), x)


# ---------------------------------------------------------------------------------------------
# Scale and rotate: affine_grid + grid_sample
# ---------------------------------------------------------------------------------------------


def test_affine_sample_matches_numpy_grid_sample():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 6, 10, 2)).astype(np.float32)
    thetas = (rng.normal(size=(3, 2, 3)) * 0.8).astype(np.float32)
    np.testing.assert_allclose(np.asarray(affine_j(x, thetas)), np_affine_sample(x, thetas), atol=1e-5)
    np.testing.assert_allclose(np.asarray(affine_j(x, thetas[0])), np_affine_sample(x, thetas[0]), atol=1e-5)


@pytest.mark.parametrize("side", [7, 8])
def test_rotation_by_90_degrees_is_rot90(side):
    x = _images(11, shape=(2, side, side, 3))
    want = np.rot90(x, 1, axes=(1, 2))
    np.testing.assert_allclose(np.asarray(affine_j(x, np.array([[0, -1, 0], [1, 0, 0]]))), want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(affine_j(x, dsa.rotate_theta(np.pi / 2))), want, atol=1e-5)


def test_unit_scale_and_zero_rotation_are_identity():
    x = _images(12)
    np.testing.assert_allclose(_run(KEYS[0], x, "scale", dsa.DSAParams(ratio_scale=1.0)), x, atol=1e-5)
    np.testing.assert_allclose(_run(KEYS[0], x, "rotate", dsa.DSAParams(ratio_rotate=0.0)), x, atol=1e-5)


@pytest.mark.parametrize("op", ["rotate", "scale"])
@pytest.mark.parametrize("siamese", [False, True])
def test_random_scale_and_rotate_are_reference_grid_samples(op, siamese):
    x = coordinate_images(4, 12, 12)
    thetas = []
    for key in KEYS[:2]:
        y = _run(key, x, op, siamese=siamese)
        for b in range(len(x)):
            theta = recover_theta(y[b], 12, 12)
            np.testing.assert_allclose(theta[:, 2], 0.0, atol=1e-4)
            if op == "rotate":
                (c, ms), (s, c2) = theta[:, :2]
                np.testing.assert_allclose([c2, ms], [c, -s], atol=1e-4)
                np.testing.assert_allclose(c * c + s * s, 1.0, atol=1e-4)
                assert abs(np.degrees(np.arctan2(s, c))) <= 15.0 + 1e-3
            else:
                np.testing.assert_allclose([theta[0, 1], theta[1, 0]], 0.0, atol=1e-4)
                assert (1 / 1.2 - 1e-4 <= np.diag(theta[:, :2])).all()
                assert (np.diag(theta[:, :2]) <= 1.2 + 1e-4).all()
            np.testing.assert_allclose(y[b], np_affine_sample(x[b : b + 1], theta)[0], atol=2e-3)
            thetas.append(theta)
    spread = np.ptp(np.asarray(thetas[: len(x)]), axis=0)
    assert spread.max() < 1e-4 if siamese else spread.max() > 1e-3


def test_per_image_draws_cover_the_reference_ranges():
    """Many images, per-image draws: every crop shift and cutout offset occurs, angles and scales span their ranges."""
    n = 128
    shift = int(16 * 0.125 + 0.5)  # 2
    x = _images(21, (n, 16, 16, 1))
    y = _run(KEYS[0], x, "crop")
    shifts = [
        next((dh, dw) for dh in range(-shift, shift + 1) for dw in range(-shift, shift + 1)
             if np.array_equal(y[b], np_shift(x[b], dh, dw)))
        for b in range(n)
    ]
    assert {s[0] for s in shifts} == {s[1] for s in shifts} == set(range(-shift, shift + 1))

    for side in (8, 10):  # block sizes 4 (offsets 0 .. 8) and 5 (offsets 0 .. 9)
        size = int(side * 0.5 + 0.5)
        top = side + 1 - size % 2
        x = _images(22, (n, side, side, 1))
        zero = (_run(KEYS[0], x, "cutout") == 0)[..., 0]
        offsets = set()
        for b in range(n):
            offsets.add(next(
                (oh, ow) for oh in range(top) for ow in range(top)
                if np.array_equal(zero[b], np_cutout_mask(side, side, oh, ow, size, size) == 0)
            ))
        assert {o[0] for o in offsets} == {o[1] for o in offsets} == set(range(top))

    coords = coordinate_images(n, 12, 12)
    thetas = np.stack([recover_theta(t, 12, 12) for t in _run(KEYS[0], coords, "rotate")])
    angles = np.degrees(np.arctan2(thetas[:, 1, 0], thetas[:, 0, 0]))
    assert -15.0 - 1e-3 <= angles.min() < -12.0 and 12.0 < angles.max() <= 15.0 + 1e-3
    thetas = np.stack([recover_theta(t, 12, 12) for t in _run(KEYS[0], coords, "scale")])
    scales = np.concatenate([thetas[:, 0, 0], thetas[:, 1, 1]])
    assert 1 / 1.2 - 1e-4 <= scales.min() < 0.86 and 1.17 < scales.max() <= 1.2 + 1e-4
    assert abs(np.corrcoef(thetas[:, 0, 0], thetas[:, 1, 1])[0, 1]) < 0.3  # s_x, s_y independent

    flipped = [np.array_equal(f, c[:, ::-1]) for f, c in zip(_run(KEYS[0], coords, "flip"), coords)]
    assert 0.35 < np.mean(flipped) < 0.65


# ---------------------------------------------------------------------------------------------
# Siamese sharing, randomness, autodiff, vmap, jit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [dsa.DSAParams(), dsa.DSAParams(aug_mode="M")])
def test_siamese_transform_ignores_batch_size(params):
    a, b = _images(13, (2, 8, 8, 3), -1.0, 1.0), _images(14, (4, 8, 8, 3), -1.0, 1.0)
    both = np.concatenate([a, b])
    for k in range(6 if params.aug_mode == "M" else 24):
        key = jax.random.key(100 + k)
        alone = _run(key, a, dsa.DSA_STRATEGY, params, siamese=True)
        np.testing.assert_allclose(_run(key, both, dsa.DSA_STRATEGY, params, siamese=True)[:2], alone, atol=1e-6)


@pytest.mark.parametrize("strategy", ["color", "crop", "rotate", "scale", dsa.DSA_STRATEGY])
def test_siamese_draws_are_shared_and_per_image_draws_differ(strategy):
    same = np.repeat(_images(15)[:1], SHAPE[0], axis=0)
    for key in KEYS[:2]:
        shared = _run(key, same, strategy, siamese=True)
        assert all(np.array_equal(shared[b], shared[0]) for b in range(len(same)))
    # Mode 'M' applies every group, so the full strategy cannot land on a group that left all images equal.
    params = dsa.DSAParams(aug_mode="M") if strategy == dsa.DSA_STRATEGY else dsa.DSAParams()
    per_image = _run(KEYS[2], same, strategy, params, siamese=False)
    assert len({per_image[b].tobytes() for b in range(len(same))}) > 1


def test_gradient_wrt_images_is_finite_and_nonzero():
    x = _images(16, low=-1.0, high=1.0)
    weights = _images(17, low=-1.0, high=1.0)

    def loss(images, key, strategy, siamese):
        return jnp.sum(dsa.dsa_augment(key, images, strategy, siamese=siamese) * weights)

    grad = jax.jit(jax.grad(loss), static_argnames=("strategy", "siamese"))
    for strategy, siamese in [("rotate", False), ("scale", True), (dsa.DSA_STRATEGY, True)]:
        for key in KEYS[:2]:
            g = np.asarray(grad(x, key, strategy, siamese))
            assert np.isfinite(g).all() and np.abs(g).sum() > 0


def test_vmap_over_keys_matches_separate_calls():
    x = _images(18, low=-1.0, high=1.0)
    keys = jax.random.split(jax.random.key(7), 3)
    batched = jax.jit(jax.vmap(lambda k: dsa.dsa_augment(k, x, siamese=True)))(keys)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), _run(keys[i], x, dsa.DSA_STRATEGY, siamese=True), atol=1e-5)


def test_one_group_per_call_uses_a_switch():
    x = _images(19)
    jaxpr = str(jax.make_jaxpr(lambda k: dsa.dsa_augment(k, x))(KEYS[0]))
    assert "cond[" in jaxpr


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_serves_dsa():
    x = _images(20, low=-1.0, high=1.0)
    assert aug.get_augment("dsa") is dsa.dsa_augmentation(dsa.DSA_STRATEGY, dsa.DSAParams(), False)
    g = aug.get_augment("dsa:crop_scale")
    assert g is aug.get_augment("dsa:crop_scale")
    np.testing.assert_allclose(np.asarray(g(KEYS[1], x)), _run(KEYS[1], x, "crop_scale"), atol=1e-6)
    from jaxdistill.train import TrainConfig

    assert TrainConfig(augment="dsa:crop_scale").augment == "dsa:crop_scale"


@pytest.mark.parametrize("name", ["dsa:", "dsa:flip_noise", "dsb", "dsa_crop"])
def test_registry_rejects_bad_dsa_names(name):
    with pytest.raises(ConfigError, match="dsa|cutout"):
        aug.get_augment(name)


def test_registry_rejects_dc_magnitudes_for_dsa():
    with pytest.raises(ConfigError, match="DSA"):
        aug.get_augment("dsa", crop=2)
