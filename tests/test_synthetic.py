"""The synthetic set's initialisation and IDC's multi-formation decoder and encoder, on tiny inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.synthetic import decode_labels, decode_multi_formation, encode_tiles, init_synthetic
from tests.helpers import tiny_real


def pytorch_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PyTorch's nn.Upsample(mode='bilinear', align_corners=False) of one 2-D image, written out."""
    h, w = x.shape
    out = np.zeros((height, width))
    for a in range(height):
        for b in range(width):
            sy, sx = max((a + 0.5) * h / height - 0.5, 0.0), max((b + 0.5) * w / width - 0.5, 0.0)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            ly, lx = sy - y0, sx - x0
            out[a, b] = ((1 - ly) * ((1 - lx) * x[y0, x0] + lx * x[y0, x1])
                         + ly * ((1 - lx) * x[y1, x0] + lx * x[y1, x1]))
    return out


@pytest.mark.parametrize("side, factor, fill", [(8, 2, 0.0), (7, 2, 0.5), (9, 3, 0.0)])
def test_decode_cuts_crop_major_and_upsamples_as_pytorch_bilinear(side, factor, fill):
    rng = np.random.default_rng(side)
    stored = rng.random((3, side, side, 1)).astype(np.float32)
    decoded = np.asarray(decode_multi_formation(jnp.asarray(stored), factor, fill))
    assert decoded.shape == (3 * factor ** 2, side, side, 1)
    crop = -(-side // factor)
    padded = np.pad(stored[..., 0], ((0, 0), (0, crop * factor - side), (0, crop * factor - side)),
                    constant_values=fill)
    expected = [pytorch_bilinear(padded[m, i * crop:(i + 1) * crop, j * crop:(j + 1) * crop], side, side)
                for i in range(factor) for j in range(factor) for m in range(3)]
    np.testing.assert_allclose(decoded[..., 0], np.stack(expected), atol=1e-6)


def test_decoded_labels_follow_the_crop_major_order_and_factor_one_changes_nothing():
    labels = jnp.array([0, 0, 1, 1])
    assert decode_labels(labels, 2).tolist() == [0, 0, 1, 1] * 4
    soft = jnp.eye(2)[labels]
    assert decode_labels(soft, 2).shape == (16, 2)
    images = jnp.ones((4, 6, 6, 3))
    assert decode_multi_formation(images, 1) is images and encode_tiles(images, 1) is images


def test_encoding_tiles_downsampled_real_images_that_decoding_brings_back_blurred():
    rng = np.random.default_rng(0)
    real = rng.random((8, 8, 8, 1)).astype(np.float32)  # 2 stored images x 4 tiles
    stored = np.asarray(encode_tiles(jnp.asarray(real), 2))
    assert stored.shape == (2, 8, 8, 1)
    for m in range(2):
        for i in range(2):
            for j in range(2):
                tile = stored[m, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
                np.testing.assert_array_equal(tile, real[(2 * i + j) * 2 + m, ::2, ::2])  # nearest downsampling
    # decoding gives the real images back in their order, blurred; images without detail come back exactly
    flat = np.broadcast_to(np.arange(8, dtype=np.float32)[:, None, None, None], (8, 8, 8, 1))
    decoded = np.asarray(decode_multi_formation(encode_tiles(jnp.asarray(flat), 2), 2))
    np.testing.assert_allclose(decoded, flat, atol=1e-6)


def test_encode_refuses_counts_or_sizes_it_cannot_tile():
    with pytest.raises(ConfigError, match="multiple of 4"):
        encode_tiles(jnp.ones((6, 8, 8, 1)), 2)
    with pytest.raises(ConfigError, match="divisible"):
        encode_tiles(jnp.ones((4, 7, 7, 1)), 2)


def test_init_draws_distinct_real_images_per_class_or_noise():
    real = tiny_real(num_per_class=5, num_classes=2)
    syn = init_synthetic(jax.random.PRNGKey(0), real, 3, "real")
    assert syn.labels.tolist() == [0, 0, 0, 1, 1, 1]
    pool = np.asarray(real.images).reshape(10, -1)
    picked = [int(np.argmin(((pool - img.ravel()) ** 2).sum(1))) for img in np.asarray(syn.images)]
    assert len(set(picked)) == 6 and all(int(real.labels[p]) == c for p, c in zip(picked, syn.labels.tolist()))
    noise = init_synthetic(jax.random.PRNGKey(0), real, 2, "noise")
    assert noise.images.shape == (4, 8, 8, 1) and abs(float(noise.images.std()) - 1.0) < 0.2
