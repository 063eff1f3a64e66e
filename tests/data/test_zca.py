import numpy as np
import pytest

from jaxdistill.data.zca import ZCA_EPS, fit_zca
from jaxdistill.errors import ConfigError


def _correlated(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(6, 6))
    return (rng.normal(size=(n, 6)) @ mix + 3.0).reshape(n, 1, 2, 3).astype(np.float32)


def test_whitened_training_data_has_identity_covariance_as_eps_vanishes():
    x = _correlated()
    zca = fit_zca(x, eps=1e-9)
    y = zca(x).reshape(len(x), -1).astype(np.float64)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(y, rowvar=False), np.eye(6), atol=1e-3)
    np.testing.assert_allclose(zca.transform, zca.transform.T, atol=1e-10)  # ZCA (not PCA): symmetric


def test_transform_matches_the_closed_form_with_the_references_eps():
    # W = U diag(1/sqrt(s + eps)) U^T of the unbiased covariance: W^-2 = C + eps I.
    x = _correlated(n=500, seed=1)
    flat = x.reshape(len(x), -1).astype(np.float64)
    cov = np.cov(flat, rowvar=False)
    zca = fit_zca(x)
    np.testing.assert_allclose(np.linalg.inv(zca.transform @ zca.transform), cov + ZCA_EPS * np.eye(6), rtol=1e-6,
                               atol=1e-8)
    # chunked application equals one matrix product
    np.testing.assert_allclose(zca(x, chunk=7).reshape(len(x), -1), (flat - flat.mean(0)) @ zca.transform,
                               rtol=1e-4, atol=1e-4)


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="at least 2"):
        fit_zca(np.zeros((1, 2, 2, 1), np.float32))
    with pytest.raises(ConfigError, match="eps"):
        fit_zca(np.zeros((3, 2, 2, 1), np.float32), eps=0.0)
    with pytest.raises(ConfigError, match="features"):
        fit_zca(_correlated(n=10))(np.zeros((2, 3, 3, 1), np.float32))
