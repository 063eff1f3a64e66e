import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.data.resize import linear_resize_weights, resize_images
from jaxdistill.errors import ConfigError


@pytest.mark.parametrize("size", [(32, 32), (14, 14), (64, 64), (20, 40)])
def test_matches_jax_antialiased_linear_resize(size):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    ours = resize_images(images, *size)
    reference = jax.image.resize(jnp.asarray(images, jnp.float32), (5, *size, 3), "linear", antialias=True)
    assert ours.dtype == np.uint8 and ours.shape == (5, *size, 3)
    # Rounding of values within float32 error of .5 may differ by one level.
    assert np.abs(ours.astype(np.int32) - np.clip(np.rint(np.asarray(reference)), 0, 255)).max() <= 1


def test_weights_rows_sum_to_one_and_antialias():
    for n_in, n_out in [(28, 32), (32, 28), (128, 32), (5, 5)]:
        w = linear_resize_weights(n_in, n_out)
        assert w.shape == (n_out, n_in) and np.allclose(w.sum(1), 1) and (w >= 0).all()
    assert (linear_resize_weights(128, 32) > 0).sum(1).min() >= 4  # shrinking by 4 averages >= 4 pixels
    assert np.allclose(linear_resize_weights(7, 7), np.eye(7))


def test_same_size_is_the_same_array_and_constants_stay_constant():
    images = np.full((3, 28, 28, 1), 77, np.uint8)
    assert resize_images(images, 28, 28) is images
    assert (resize_images(images, 32, 32) == 77).all() and (resize_images(images, 9, 9) == 77).all()


def test_refuses_non_uint8_or_wrong_rank():
    with pytest.raises(ConfigError, match="uint8"):
        resize_images(np.zeros((2, 4, 4, 1), np.float32), 8, 8)
    with pytest.raises(ConfigError, match="uint8"):
        resize_images(np.zeros((4, 4, 1), np.uint8), 8, 8)
