"""Distances between gradients (and, later, parameter trajectories) used by the matching methods.

Gradients are Flax parameter pytrees. Layouts differ from PyTorch's: a conv kernel is (KH, KW, Cin, Cout) and a dense
kernel (in, out), so an "output unit" is the last axis here where it is the first in the reference code.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxdistill.errors import ConfigError

PyTree = Any
_EPS = 1e-6  # the reference's guard in the cosine denominators


def _safe_norm(x: jax.Array, axis=None) -> jax.Array:
    """Euclidean norm whose gradient at 0 is 0 (as PyTorch's), not NaN: a dead unit must not poison the images."""
    sq = jnp.sum(x * x, axis=axis)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def _per_output_rows(g: jax.Array) -> jax.Array:
    """(out_units, fan_in) view of a kernel gradient: one row per output unit, as the reference reshapes them."""
    return jnp.moveaxis(g, -1, 0).reshape(g.shape[-1], -1)


def layerwise_cosine_distance(g_syn: PyTree, g_real: PyTree) -> jax.Array:
    """DC's distance ('ours'): for every weight tensor, sum over output units of (1 - cosine) between the two
    gradients' rows; 1-D parameters (biases, norm scales and offsets) contribute nothing, as in the reference."""
    total = jnp.zeros((), jnp.float32)
    for gs, gr in zip(jax.tree.leaves(g_syn), jax.tree.leaves(g_real)):
        if gs.ndim <= 1:
            continue
        rs, rr = _per_output_rows(gs), _per_output_rows(gr)
        cos = jnp.sum(rs * rr, -1) / (_safe_norm(rs, -1) * _safe_norm(rr, -1) + _EPS)
        total = total + jnp.sum(1.0 - cos)
    return total


def mse_distance(g_syn: PyTree, g_real: PyTree) -> jax.Array:
    """Sum of squared differences over all parameters ('mse')."""
    return sum(jnp.sum((gs - gr) ** 2) for gs, gr in zip(jax.tree.leaves(g_syn), jax.tree.leaves(g_real)))


def cosine_distance(g_syn: PyTree, g_real: PyTree) -> jax.Array:
    """1 - cosine between the two gradients flattened into one vector each ('cos')."""
    vs = jnp.concatenate([g.reshape(-1) for g in jax.tree.leaves(g_syn)])
    vr = jnp.concatenate([g.reshape(-1) for g in jax.tree.leaves(g_real)])
    return 1.0 - jnp.sum(vs * vr) / (_safe_norm(vs) * _safe_norm(vr) + _EPS)


def l1_conv_distance(g_syn: PyTree, g_real: PyTree) -> jax.Array:
    """IDC's distance ('l1_conv'): the sum of absolute differences over the convolution kernels only (4-D
    parameters); biases, norm parameters and the classifier's kernel are skipped, as the IDC reference does by
    default (its --bias and --fc off)."""
    return sum((jnp.sum(jnp.abs(gs - gr)) for gs, gr in zip(jax.tree.leaves(g_syn), jax.tree.leaves(g_real))
                if gs.ndim == 4), jnp.zeros((), jnp.float32))


GRADIENT_DISTANCES: dict[str, Callable[[PyTree, PyTree], jax.Array]] = {
    "ours": layerwise_cosine_distance, "mse": mse_distance, "cos": cosine_distance, "l1_conv": l1_conv_distance}


def get_gradient_distance(name: str) -> Callable[[PyTree, PyTree], jax.Array]:
    try:
        return GRADIENT_DISTANCES[name]
    except KeyError:
        raise ConfigError(f"unknown gradient distance {name!r}; choose one of "
                          f"{', '.join(GRADIENT_DISTANCES)}") from None
