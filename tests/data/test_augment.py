"""DC evaluation-time augmentation, checked against NumPy/SciPy re-derivations of DC's code."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxdistill.data import augment as aug
from jaxdistill.errors import ConfigError

# Shared jitted functions, so that each shape compiles once for the whole file.
crop_j = jax.jit(aug.crop_image, static_argnames="crop")
scale_j = jax.jit(aug.scale_image)
rotate_j = jax.jit(aug.rotate_image, static_argnames="reshape")
dc_j = jax.jit(aug.dc_augment, static_argnames="strategy")


def _images(seed, shape):
    """Values k/4 with |k| <= 8: all sums exact, so batch means agree bit for bit everywhere."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-8, 9, size=shape) / 4).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# NumPy re-derivations of DC's arithmetic (HWC instead of CHW)
# ---------------------------------------------------------------------------------------------


def ref_crop(img, r, c, fill, crop):
    h, w, ch = img.shape
    padded = np.empty((h + 2 * crop, w + 2 * crop, ch), np.float32)
    padded[:] = np.broadcast_to(np.asarray(fill, np.float32), (ch,))
    padded[crop : crop + h, crop : crop + w] = img
    return padded[r : r + h, c : c + w]


def ref_nearest(out_size, in_size):
    """torch nearest_idx: identity, shift for 2x, else min(floorf(dst * float(in/out)), in-1)."""
    dst = np.arange(out_size)
    if out_size == in_size:
        return dst
    if out_size == 2 * in_size:
        return dst >> 1
    ratio = np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(dst.astype(np.float32) * ratio).astype(int), in_size - 1)


def ref_scale(img, h, w):
    big_h, big_w, ch = img.shape
    resized = img[ref_nearest(h, big_h)][:, ref_nearest(w, big_w)]
    side = max(h, w, big_h, big_w)
    canvas = np.zeros((side, side, ch), np.float32)
    r, c = int((side - h) / 2), int((side - w) / 2)
    canvas[r : r + h, c : c + w] = resized
    r, c = int((side - big_h) / 2), int((side - big_w) / 2)
    return canvas[r : r + big_h, c : c + big_w]


def ref_rotate(img, angle, fill, reshape=True):
    """DC's rotatefun with scipy order=1 instead of 3."""
    chw = np.moveaxis(img, -1, 0).astype(np.float64)
    out = ndimage.rotate(chw, angle, axes=(-2, -1), reshape=reshape, order=1, cval=fill)
    r = int((out.shape[-2] - img.shape[0]) / 2)
    c = int((out.shape[-1] - img.shape[1]) / 2)
    return np.moveaxis(out[:, r : r + img.shape[0], c : c + img.shape[1]], 0, -1)


# ---------------------------------------------------------------------------------------------
# Single-image operations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8, 1), (12, 12, 3), (8, 12, 3)])
@pytest.mark.parametrize("rc", [(0, 0), (3, 5), (7, 7), (4, 4), (7, 0)])
def test_crop_matches_reference(shape, rc):
    img = _images(1, shape)
    fill = np.linspace(-0.7, 0.9, shape[-1]).astype(np.float32)
    got = np.asarray(crop_j(img, np.array(rc), fill, crop=4))
    np.testing.assert_array_equal(got, ref_crop(img, *rc, fill, 4))


def test_crop_centre_offset_is_identity_and_scalar_fill():
    img = _images(2, (8, 8, 3))
    np.testing.assert_array_equal(np.asarray(crop_j(img, np.array([2, 2]), 0.5, crop=2)), img)
    got = np.asarray(crop_j(img, np.array([0, 3]), 0.5, crop=2))
    np.testing.assert_array_equal(got, ref_crop(img, 0, 3, 0.5, 2))


@pytest.mark.parametrize("shape", [(8, 8, 1), (12, 12, 3), (8, 12, 3)])
@pytest.mark.parametrize(
    "hw", [(8, 8), (6, 10), (9, 7), (10, 10), (16, 5), (5, 16), (1, 1), (13, 11), (24, 24), (7, 14)]
)
def test_scale_matches_reference(shape, hw):
    img = _images(3, shape)
    got = np.asarray(scale_j(img, np.array(hw)))
    np.testing.assert_array_equal(got, ref_scale(img, *hw))


def test_scale_to_own_size_is_identity():
    img = _images(4, (12, 12, 3))
    np.testing.assert_array_equal(np.asarray(scale_j(img, np.array([12, 12]))), img)


@pytest.mark.parametrize("shape", [(8, 8, 1), (12, 12, 3)])
def test_rotate_zero_is_identity(shape):
    img = _images(5, shape)
    np.testing.assert_array_equal(np.asarray(rotate_j(img, 0.0, 9.0)), img)
    np.testing.assert_array_equal(np.asarray(rotate_j(img, 0.0, 9.0, reshape=False)), img)


@pytest.mark.parametrize("k", [1, -1, 2])
def test_rotate_quarter_turns_equal_rot90(k):
    img = _images(6, (12, 12, 3))
    got = np.asarray(rotate_j(img, 90.0 * k, 9.0))
    np.testing.assert_array_equal(got, np.rot90(img, k, axes=(0, 1)))


@pytest.mark.parametrize("shape", [(8, 8, 1), (12, 12, 3), (8, 12, 3)])
@pytest.mark.parametrize("angle", [17.0, -30.0, 45.0, -44.0, 33.0, 5.0, 90.0])
@pytest.mark.parametrize("reshape", [True, False])
def test_rotate_matches_scipy_order1(shape, angle, reshape):
    if reshape and angle == 90.0 and shape[0] != shape[1]:
        pytest.skip("the enlarged canvas is narrower than the image: DC's crop is undefined")
    img = _images(7, shape)
    fill = -0.3
    got = np.asarray(rotate_j(img, angle, fill, reshape=reshape))
    np.testing.assert_allclose(got, ref_rotate(img, angle, fill, reshape=reshape), atol=2e-5)


def test_noise_image():
    img = _images(8, (8, 8, 3))
    z = np.random.default_rng(0).standard_normal(img.shape).astype(np.float32)
    got = np.asarray(aug.noise_image(img, z, 0.001))
    np.testing.assert_array_equal(got, img + np.float32(0.001) * z)


# ---------------------------------------------------------------------------------------------
# dc_augment
# ---------------------------------------------------------------------------------------------


BATCH = (4, 8, 8, 3)  # most dc_augment tests share this shape, so compilations are reused


@jax.jit
def _build_banks(imgs):
    mean = jnp.mean(imgs, axis=(0, 1, 2))
    h = imgs.shape[1]
    offsets = jnp.asarray([(r, c) for r in range(8) for c in range(8)])
    sizes = range(int(0.8 * h), int(1.2 * h) + 1)
    hws = jnp.asarray([(a, b) for a in sizes for b in sizes])
    angles = jnp.arange(-45, 45, dtype=jnp.float32)
    crop = jax.vmap(lambda im: jax.vmap(lambda o: aug.crop_image(im, o, mean, 4))(offsets))(imgs)
    scale = jax.vmap(lambda im: jax.vmap(lambda s: aug.scale_image(im, s))(hws))(imgs)
    rotate = jax.vmap(
        lambda im: jax.vmap(lambda a: aug.rotate_image(im, a, jnp.mean(mean)))(angles)
    )(imgs)
    return {"crop": crop, "scale": scale, "rotate": rotate}


@functools.lru_cache(maxsize=None)
def _banks():
    """Per-image outputs of each op over its whole DC parameter range, for a fixed batch."""
    imgs = _images(10, BATCH)
    return imgs, {op: np.asarray(bank) for op, bank in _build_banks(jnp.asarray(imgs)).items()}


def _matching_ops(out, imgs, banks):
    """For each image, the set of ops (over their full parameter ranges) that reproduce it."""
    found = []
    for i in range(out.shape[0]):
        ops = set()
        for op, bank in banks.items():
            err = np.abs(bank[i] - out[i]).reshape(bank.shape[1], -1).max(axis=1)
            tol = 1e-5 if op == "rotate" else 0.0
            if (err <= tol).any():
                ops.add(op)
        delta = out[i] - imgs[i]
        if 0 < np.abs(delta).max() < 0.01:
            ops.add("noise")
        found.append(ops)
    return found


@pytest.mark.parametrize(
    ("channels", "strategy"), [(3, "crop_scale_rotate"), (1, "crop_noise")]
)
def test_dc_augment_shape_dtype_determinism(channels, strategy):
    imgs = _images(11, (4, 8, 8, channels))
    a = dc_j(jax.random.key(0), imgs, strategy)
    b = dc_j(jax.random.key(0), imgs, strategy)
    c = dc_j(jax.random.key(1), imgs, strategy)
    assert a.shape == imgs.shape and a.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert np.isfinite(np.asarray(a)).all()


@pytest.mark.parametrize("op", ["crop", "scale", "rotate"])
def test_single_op_strategy_equals_that_op(op):
    imgs, banks = _banks()
    for seed in range(3):
        out = np.asarray(dc_j(jax.random.key(seed), imgs, op))
        assert all(op in ops for ops in _matching_ops(out, imgs, {op: banks[op]}))


def test_noise_strategy_adds_small_gaussian_noise():
    imgs = _images(12, BATCH)
    delta = np.asarray(dc_j(jax.random.key(3), imgs, "noise")) - imgs
    assert 0.0007 < delta.std() < 0.0013
    assert abs(delta.mean()) < 0.0003


def test_each_image_gets_exactly_one_op_of_the_strategy():
    imgs, banks = _banks()
    seen = set()
    for seed in range(6):
        out = np.asarray(dc_j(jax.random.key(seed), imgs, "crop_scale_rotate"))
        for ops in _matching_ops(out, imgs, banks):
            assert ops, "output matches no single op"
            if len(ops) == 1:
                seen |= ops
    assert len(seen) >= 2  # the op varies across images/keys


def test_dc_augment_jits_with_traced_magnitudes_inside_other_code():
    imgs = jnp.asarray(_images(13, BATCH))

    @jax.jit
    def step(key, x, crop, scale, rotate, noise):
        return aug.dc_augment(key, x * 1.0, "crop_scale_rotate", crop, scale, rotate, noise)

    traced = step(jax.random.key(5), imgs, 4, 0.2, 45, 0.001)
    static = dc_j(jax.random.key(5), imgs, "crop_scale_rotate")
    np.testing.assert_allclose(np.asarray(traced), np.asarray(static), atol=1e-6)


def test_none_is_identity():
    imgs = _images(14, (2, 8, 8, 3))
    np.testing.assert_array_equal(np.asarray(dc_j(jax.random.key(0), imgs, "none")), imgs)
    identity = aug.get_augment("none")
    np.testing.assert_array_equal(np.asarray(identity(jax.random.key(0), imgs)), imgs)


# ---------------------------------------------------------------------------------------------
# Registry and defaults
# ---------------------------------------------------------------------------------------------


def test_registry_names_and_functions():
    assert {"none", "crop_scale_rotate", "crop_noise"} <= set(aug.AUGMENTATIONS)
    imgs = _images(15, BATCH)
    f = aug.get_augment("crop_scale_rotate")
    assert f is aug.AUGMENTATIONS["crop_scale_rotate"]
    np.testing.assert_array_equal(
        np.asarray(f(jax.random.key(2), imgs)),
        np.asarray(dc_j(jax.random.key(2), imgs, "crop_scale_rotate")),
    )
    g = aug.get_augment("scale_rotate", rotate=10)
    assert g is not aug.get_augment("scale_rotate") and callable(g)
    assert aug.get_augment("none") is aug.AUGMENTATIONS["none"]


@pytest.mark.parametrize("name", ["flip", "crop_flip", "", "Crop"])
def test_unknown_name_raises_config_error_listing_known(name):
    with pytest.raises(ConfigError, match="crop_scale_rotate"):
        aug.get_augment(name)
    with pytest.raises(ConfigError):
        aug.dc_augment(jax.random.key(0), _images(0, (1, 8, 8, 1)), name)


@pytest.mark.parametrize(
    "kwargs", [{"crop": -1}, {"rotate": 2.5}, {"scale": 1.5}, {"noise": -0.1}]
)
def test_bad_magnitudes_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        aug.get_augment("crop_scale_rotate", **kwargs)


def test_default_eval_augmentation():
    assert aug.default_eval_augmentation("mnist") == "crop_scale_rotate"
    assert aug.default_eval_augmentation("MNIST") == "crop_scale_rotate"
    for name in ["cifar10", "fashion_mnist", "svhn", "cifar100"]:
        assert aug.default_eval_augmentation(name) == "none"
    assert aug.default_eval_augmentation("cifar10", model_eval="ConvNetBN") == "crop_noise"
    assert dict(aug.DC_AUG_DEFAULTS) == {"crop": 4, "scale": 0.2, "rotate": 45, "noise": 0.001}


# ---- jitter (Hinton et al.'s input jitter) ------------------------------------------------------------------------
def test_jitter_moves_each_image_by_at_most_k_pixels_and_keeps_its_content():
    images = np.zeros((64, 9, 9, 1), np.float32)
    images[:, 4, 4, 0] = 1.0  # one bright pixel in the middle of a zero background
    out = np.asarray(aug.jitter_augment(jax.random.PRNGKey(0), images, 2))
    rows, cols = np.nonzero(out[..., 0].reshape(64, -1) > 0)[1] // 9, np.nonzero(out[..., 0].reshape(64, -1) > 0)[1] % 9
    assert out.sum() == 64.0  # every image keeps its single pixel
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets are drawn per image
    np.testing.assert_array_equal(np.asarray(aug.get_augment("jitter:0")(jax.random.PRNGKey(0), images)), images)


def test_jitter_repeats_edges_and_names_are_checked():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    out = np.asarray(aug.get_augment("jitter:1")(jax.random.PRNGKey(3), np.repeat(images, 50, 0)))
    assert set(np.unique(out)) <= set(np.unique(images))  # no fill value from outside the image
    for bad in ("jitter:-1", "jitter:x"):
        with pytest.raises(ConfigError, match="jitter"):
            aug.get_augment(bad)


@pytest.mark.slow
def test_cutmix_pastes_one_box_from_a_partner_and_mixes_targets_by_its_area():
    from jaxdistill.data.augment import cutmix
    images = jnp.arange(4, dtype=jnp.float32)[:, None, None, None] * jnp.ones((4, 8, 8, 1))  # image i is all i
    targets = jax.nn.one_hot(jnp.arange(4), 4)
    seen_box = False
    for k in range(8):
        mixed, mixed_targets = cutmix(jax.random.PRNGKey(k), images, targets, prob=1.0)
        np.testing.assert_allclose(mixed_targets.sum(1), 1.0, rtol=1e-6)
        for i in range(4):
            changed = np.asarray(mixed[i] != images[i])
            area = changed.mean()
            assert mixed_targets[i, i] == pytest.approx(1.0 - area, abs=1e-6)  # the target keeps its own share
            if changed.any():  # the pasted pixels are one partner's, in one rectangle
                seen_box = True
                rows, cols = np.nonzero(changed[..., 0])
                assert changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
                partner = int(mixed[i][changed][0])
                assert mixed_targets[i, partner] == pytest.approx(area, abs=1e-6)
    assert seen_box
    same, same_targets = cutmix(jax.random.PRNGKey(0), images, targets, prob=0.0)
    assert np.array_equal(same, images) and np.array_equal(same_targets, targets)


@pytest.mark.parametrize("name, words", [("crop+cutmix:2", "p in [0, 1]"), ("crop+mixup", "expected"),
                                         ("crop+cutmix:x", "must be a number")])
def test_a_bad_cutmix_suffix_is_refused(name, words):
    with pytest.raises(ConfigError, match=words.replace("[", "\\[").replace("]", "\\]")):
        aug.get_augment(name)


def test_an_augmentation_with_cutmix_is_label_mixing():
    from jaxdistill.data.augment import mixes_labels
    assert mixes_labels(aug.get_augment("idc:color_crop+cutmix:0.5")) and not mixes_labels(aug.get_augment("idc:color_crop"))
