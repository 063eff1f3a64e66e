import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.methods.matching import (cosine_distance, get_gradient_distance, layerwise_cosine_distance,
                                         mse_distance)


def grads(seed):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    return {"conv": {"kernel": jax.random.normal(k[0], (3, 3, 2, 4)), "bias": jax.random.normal(k[1], (4,))},
            "dense": {"kernel": jax.random.normal(k[2], (5, 3)), "bias": jax.random.normal(k[3], (3,))}}


def reference_ours(gs, gr):
    """The reference's distance_wb, on PyTorch layouts: conv (out, in, h, w), linear (out, in); 1-D skipped."""
    total = 0.0
    for name, to_torch in (("conv", lambda k: np.transpose(k, (3, 2, 0, 1))), ("dense", lambda k: k.T)):
        a = to_torch(np.asarray(gr[name]["kernel"], np.float64))
        b = to_torch(np.asarray(gs[name]["kernel"], np.float64))
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        total += np.sum(1 - np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-6))
    return total


def test_layerwise_cosine_matches_the_reference_formula():
    gs, gr = grads(0), grads(1)
    np.testing.assert_allclose(layerwise_cosine_distance(gs, gr), reference_ours(gs, gr), rtol=1e-5)


def test_layerwise_cosine_ignores_biases_and_is_zero_for_parallel_gradients():
    gs = grads(0)
    scaled = jax.tree.map(lambda g: 3.0 * g, gs)
    scaled["conv"]["bias"] = -gs["conv"]["bias"]  # 1-D: no contribution, whatever it is
    assert float(layerwise_cosine_distance(gs, scaled)) == pytest.approx(0.0, abs=1e-5)
    # opposite gradients: each of the 4 + 3 output units contributes 2
    neg = jax.tree.map(lambda g: -g, gs)
    assert float(layerwise_cosine_distance(gs, neg)) == pytest.approx(14.0, rel=1e-5)


def test_mse_and_cos():
    gs, gr = grads(0), grads(1)
    flat_s = np.concatenate([np.ravel(x) for x in jax.tree.leaves(gs)])
    flat_r = np.concatenate([np.ravel(x) for x in jax.tree.leaves(gr)])
    np.testing.assert_allclose(mse_distance(gs, gr), np.sum((flat_s - flat_r) ** 2), rtol=1e-5)
    cos = flat_s @ flat_r / (np.linalg.norm(flat_s) * np.linalg.norm(flat_r) + 1e-6)
    np.testing.assert_allclose(cosine_distance(gs, gr), 1 - cos, rtol=1e-4)


def test_unknown_distance():
    with pytest.raises(ConfigError, match="ours"):
        get_gradient_distance("l3")


def test_zero_gradient_rows_give_finite_gradients():
    # A dead unit (all-zero gradient row) must not turn the synthetic images into NaN, as in the reference.
    gs, gr = grads(0), grads(1)
    gs["conv"]["kernel"] = gs["conv"]["kernel"].at[..., 0].set(0.0)
    for dist in (layerwise_cosine_distance, cosine_distance, mse_distance):
        g = jax.grad(lambda s: dist(s, gr))(gs)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g)), dist.__name__
