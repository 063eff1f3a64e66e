"""ZCA whitening, as trajectory matching uses it on CIFAR (MTT, DATM: kornia's `ZCAWhitening(eps=0.1)` fitted on the
training set, images in [0, 1] without mean/std normalisation).

With X the (N, D) flattened training images, mu their per-feature mean and C = (X - mu)^T (X - mu) / (N - 1) their
(unbiased) covariance with eigendecomposition C = U diag(s) U^T, an image x maps to (x - mu) W with
W = U diag(1 / sqrt(s + eps)) U^T: decorrelated features, the regulariser eps keeping near-null directions from
blowing up. Fitted on the host in float64 (the covariance of CIFAR-10 is 3072 x 3072), applied in float32.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxdistill.errors import ConfigError

ZCA_EPS = 0.1  # the trajectory-matching references' regulariser


@dataclasses.dataclass(frozen=True)
class ZCA:
    mean: np.ndarray  # (D,)
    transform: np.ndarray  # (D, D), symmetric

    def __call__(self, images: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Whiten (N, H, W, C) float images; chunked so no float64 copy of the whole set is made."""
        shape = images.shape
        if int(np.prod(shape[1:])) != self.mean.shape[0]:
            raise ConfigError(f"ZCA fitted on {self.mean.shape[0]} features, got images of shape {shape[1:]}")
        flat = np.asarray(images, np.float32).reshape(shape[0], -1)
        mean, w = self.mean.astype(np.float32), self.transform.astype(np.float32)
        out = np.empty_like(flat)
        for i in range(0, shape[0], chunk):
            out[i:i + chunk] = (flat[i:i + chunk] - mean) @ w
        return out.reshape(shape)


def fit_zca(images: np.ndarray, eps: float = ZCA_EPS, chunk: int = 4096) -> ZCA:
    """Fit ZCA whitening on (N, H, W, C) float images (N >= 2)."""
    n = images.shape[0]
    if n < 2:
        raise ConfigError(f"ZCA needs at least 2 images to estimate a covariance, got {n}")
    if eps <= 0:
        raise ConfigError(f"ZCA eps must be positive, got {eps}")
    flat = np.asarray(images).reshape(n, -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    cov = np.zeros((flat.shape[1], flat.shape[1]), np.float64)
    for i in range(0, n, chunk):
        x = flat[i:i + chunk].astype(np.float64) - mean
        cov += x.T @ x
    cov /= n - 1
    s, u = np.linalg.eigh(cov)
    s = np.clip(s, 0.0, None)  # round-off can leave tiny negative eigenvalues
    return ZCA(mean, (u / np.sqrt(s + eps)) @ u.T)
