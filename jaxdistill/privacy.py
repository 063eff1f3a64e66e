"""Differential privacy for gradient queries: per-example clipping, Gaussian noise, Poisson sampling, accounting.

The pieces of the DP-SGD mechanism (Abadi et al., CCS 2016) as small pure functions, used by Private Set Generation
(`methods/psg.py`) for its real-data gradient, the only place where private data is read:

    poisson_batch          a Poisson sample (each example in with probability q, independently), as a fixed-size
                           index array and a mask, so that it jit-compiles. The maximum size is chosen so that an
                           overflow (more than `max_size` examples drawn; the extra ones are dropped) is so unlikely
                           that its probability, added to delta, leaves the guarantee essentially unchanged
                           (`overflow_delta`, `choose_max_batch`).
    per_example_gradients  vmap(grad) over a batch: one gradient pytree per example.
    clip_per_example       each example's gradient, as one flat vector, scaled to L2 norm <= C.
    noisy_clipped_mean     the clipped gradients summed over the mask, plus N(0, (sigma C)^2) noise per coordinate,
                           divided by the *expected* batch size q N (a constant: dividing by the drawn size would
                           make the normaliser depend on the data).
    Accounting             `epsilon` and `calibrate_noise` compose the Poisson-sampled Gaussian mechanism once per
                           gradient query with Google's dp-accounting (RDP by default, PLD as an option).

Overflow. The mechanism that runs equals the ideal Poisson one except on the event E that some query draws more than
`max_size` examples, of probability p <= queries * P[Binomial(N + 1, q) > max_size] on a dataset or its neighbour
(N + 1 examples). For any outcome set S, P[M'(D) in S] <= P[M(D) in S] + p <= e^eps P[M(D') in S] + delta + p
<= e^eps P[M'(D') in S] + delta + (1 + e^eps) p, so the run is (eps, delta + (1 + e^eps) p)-DP: `overflow_delta`.

JAX's random number generator (threefry) is not a cryptographically secure source, as for the other DP libraries built
on a framework's PRNG; the guarantee assumes the noise is truly random.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.errors import ConfigError

PyTree = Any
ACCOUNTANTS = ("rdp", "pld")
# Noise multipliers searched by `calibrate_noise`; a budget that needs more noise than the top is refused (at sigma
# 1000 the noise's norm is 1000x a clipped gradient's for every coordinate: nothing would be learned).
SIGMA_RANGE = (1e-3, 1e3)


class PrivacyError(ConfigError):
    """A privacy budget that cannot be met, or a run that would make more private queries than it accounted for."""


# ---- the mechanism ---------------------------------------------------------------------------------------------------
def poisson_batch(key: jax.Array, num_examples: int, rate: float, max_size: int) -> tuple[jax.Array, jax.Array]:
    """(indices (max_size,) int32, mask (max_size,) bool): every example of [0, num_examples) drawn independently with
    probability `rate`; the first `max_size` drawn examples in index order are kept (an overflow drops the rest, see
    the module docstring), and unused slots hold index 0 with mask False."""
    drawn = jax.random.bernoulli(key, rate, (num_examples,))
    (indices,) = jnp.nonzero(drawn, size=max_size, fill_value=0)
    mask = jnp.arange(max_size) < jnp.sum(drawn)
    return indices.astype(jnp.int32), mask


def per_example_gradients(loss: Callable[[PyTree, Any], jax.Array], params: PyTree, batch: Any) -> PyTree:
    """The gradient of `loss(params, example)` for every example of `batch` (a pytree with a leading example axis):
    a pytree shaped like params with that leading axis."""
    return jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)


def global_norms(per_example: PyTree) -> jax.Array:
    """(B,) the L2 norm of each example's gradient taken as one flat vector over all leaves."""
    squares = [jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in jax.tree.leaves(per_example)]
    return jnp.sqrt(sum(squares))


def clip_per_example(per_example: PyTree, clip_norm: float) -> PyTree:
    """Each example's gradient scaled by min(1, C / norm): its flat L2 norm is then at most C. C = inf: unchanged."""
    if math.isinf(clip_norm):
        return per_example
    norms = global_norms(per_example)
    scale = jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12))
    return jax.tree.map(lambda g: g * scale.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), per_example)


def noisy_clipped_mean(per_example: PyTree, mask: jax.Array, clip_norm: float, noise_multiplier: float,
                       expected_batch_size: float, key: jax.Array) -> PyTree:
    """(sum over masked-in examples of the clipped gradients + N(0, (noise_multiplier * clip_norm)^2 I)) divided by
    `expected_batch_size`. The noise is drawn for every leaf from `key`; noise_multiplier 0 adds none (then C may
    be inf)."""
    clipped = clip_per_example(per_example, clip_norm)
    weights = mask.astype(jnp.float32)
    total = jax.tree.map(lambda g: jnp.tensordot(weights, g, axes=1), clipped)
    if noise_multiplier:
        if math.isinf(clip_norm):
            raise PrivacyError("Gaussian noise needs a finite clipping norm (its std is noise_multiplier x clip_norm)")
        leaves, tree = jax.tree.flatten(total)
        keys = jax.random.split(key, len(leaves))
        std = noise_multiplier * clip_norm
        total = jax.tree.unflatten(tree, [g + std * jax.random.normal(k, g.shape, g.dtype)
                                          for g, k in zip(leaves, keys)])
    return jax.tree.map(lambda g: g / expected_batch_size, total)


# ---- overflow of the fixed-size Poisson batch ------------------------------------------------------------------------
def overflow_probability(num_examples: int, rate: float, max_size: int, queries: int) -> float:
    """Union bound over `queries` draws of P[Binomial(num_examples + 1, rate) > max_size] (the dataset or a
    neighbour with one example more), capped at 1."""
    from scipy.stats import binom
    if max_size >= num_examples + 1 or queries == 0:
        return 0.0
    return float(min(1.0, queries * binom.sf(max_size, num_examples + 1, rate)))


def overflow_delta(epsilon: float, num_examples: int, rate: float, max_size: int, queries: int) -> float:
    """What overflowing the fixed maximum batch adds to delta: (1 + e^epsilon) x `overflow_probability` (module
    docstring)."""
    p = overflow_probability(num_examples, rate, max_size, queries)
    if p == 0.0:
        return 0.0
    return float(min(1.0, (1.0 + math.exp(min(epsilon, 700.0))) * p))


def choose_max_batch(epsilon: float, num_examples: int, rate: float, queries: int, budget: float) -> int:
    """The smallest maximum batch whose `overflow_delta` is at most `budget` (at most num_examples + 1, where no
    overflow can happen)."""
    mean = num_examples * rate
    size = max(1, int(math.ceil(mean)))
    while size < num_examples + 1 and overflow_delta(epsilon, num_examples, rate, size, queries) > budget:
        size = int(math.ceil(size + max(1.0, 0.05 * math.sqrt(max(mean, 1.0)))))
    return min(size, num_examples + 1)


# ---- accounting ------------------------------------------------------------------------------------------------------
def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ConfigError(f"unknown privacy accountant {accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")


@contextlib.contextmanager
def _quiet_dp_accounting():
    """dp-accounting logs (through absl) every fractional RDP order it drops for not converging at large sampling
    rates, a warning per order per call; the orders are dropped either way, so the log is held back meanwhile."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _accountant(accountant: str):
    from dp_accounting import pld, rdp
    _check_accountant(accountant)
    # PLD discretised at 1e-4: at 1e-3 the pessimistic rounding, summed over 1e5 queries, made PLD looser than RDP
    return rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant(value_discretization_interval=1e-4)


def _event(rate: float, noise_multiplier: float, queries: int):
    from dp_accounting import dp_event
    return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(
        noise_multiplier)), int(queries))


def epsilon(noise_multiplier: float, rate: float, queries: int, delta: float, accountant: str = "rdp") -> float:
    """Epsilon at `delta` of `queries` compositions of the Poisson-sampled (rate q) Gaussian mechanism with noise
    multiplier sigma (dp-accounting; add/remove neighbours). 0 queries: 0; sigma 0 with queries: inf."""
    if queries == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    with _quiet_dp_accounting():
        acc = _accountant(accountant)
        acc.compose(_event(rate, noise_multiplier, queries))
        return float(acc.get_epsilon(delta))


def moments_accountant_epsilon(noise_multiplier: float, rate: float, queries: int, delta: float,
                               orders: tuple[int, ...] = tuple(range(2, 33))) -> float:
    """Epsilon by the moments accountant's conversion (Abadi et al. 2016): min over integer orders a of
    RDP(a) + log(1/delta) / (a - 1). Looser than `epsilon`'s; here to compare with numbers published that way."""
    from dp_accounting import rdp
    acc = rdp.RdpAccountant(orders=list(orders))
    acc.compose(_event(rate, noise_multiplier, queries))
    values, alphas = np.asarray(acc.rdp, np.float64), np.asarray(orders, np.float64)
    return float(np.min(values + math.log(1.0 / delta) / (alphas - 1.0)))


def calibrate_noise(target_epsilon: float, delta: float, rate: float, queries: int, accountant: str = "rdp") -> float:
    """The smallest noise multiplier with which `queries` Poisson-sampled Gaussian queries meet (target_epsilon,
    delta), to dp-accounting's tolerance. PrivacyError when none in SIGMA_RANGE does.

    PLD is searched near the RDP multiplier (below it, or above where PLD's discretisation makes it the looser of
    the two): a PLD at a far too small multiplier has a huge support, and a blind search there runs out of memory."""
    from dp_accounting import mechanism_calibration as mc
    _check_accountant(accountant)
    if not target_epsilon > 0:
        raise PrivacyError(f"epsilon must be > 0, got {target_epsilon}")
    if not 0 < delta < 1:
        raise PrivacyError(f"delta must lie in (0, 1), got {delta}")
    low, high = SIGMA_RANGE
    if epsilon(high, rate, queries, delta) > target_epsilon:
        raise PrivacyError(
            f"epsilon {target_epsilon} at delta {delta:g} cannot be met by {queries} queries at sampling rate "
            f"{rate:.4g}: even a noise multiplier of {high:g} spends more; raise epsilon, or make fewer queries "
            f"(fewer iterations, outer loops or batch loops) or smaller batches")

    def search(name: str, bracket) -> float:
        with _quiet_dp_accounting():
            return float(mc.calibrate_dp_mechanism(lambda: _accountant(name),
                                                   lambda sigma: _event(rate, sigma, queries), target_epsilon, delta,
                                                   bracket_interval=bracket, tol=1e-4))

    sigma = search("rdp", mc.LowerEndpointAndGuess(low, 1.0))
    if accountant == "rdp":
        return sigma

    def meets(s: float) -> bool:
        return epsilon(s, rate, queries, delta, "pld") <= target_epsilon

    upper = sigma  # PLD's discretisation can make it looser than RDP over very many queries: then search above
    while not meets(upper):
        if upper >= high:
            raise PrivacyError(f"the PLD accountant finds no noise multiplier up to {high:g} meeting epsilon "
                               f"{target_epsilon} over {queries} queries; use the RDP accountant")
        upper = min(upper * 1.5, high)
    lower = upper / 2
    while lower > low and meets(lower):
        lower /= 2
    return search("pld", mc.ExplicitBracketInterval(max(lower, low), upper))


class Accounting(NamedTuple):
    """What a private run spends, as recorded: the mechanism's settings and the guarantee of one released set."""
    noise_multiplier: float
    clip_norm: float
    sampling_rate: float
    expected_batch_size: float
    max_batch_size: int
    queries: int  # compositions of the Poisson-sampled Gaussian mechanism the run makes
    accountant: str
    target_epsilon: float
    target_delta: float
    epsilon: float  # what `queries` queries spend at `accountant_delta`
    accountant_delta: float  # delta given to the accountant: target_delta minus overflow_delta
    overflow_delta: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self._asdict())

    def summary(self) -> str:
        """One line for people: the guarantee and the mechanism behind it."""
        return (f"({self.epsilon:.4g}, {self.target_delta:g})-DP per synthetic set ({self.accountant.upper()}, "
                f"target epsilon {self.target_epsilon:g}): {self.queries} Poisson-sampled Gaussian queries, "
                f"q = {self.sampling_rate:.4g} (expected batch {self.expected_batch_size:g}, at most "
                f"{self.max_batch_size}), noise multiplier {self.noise_multiplier:.4g}, clip norm {self.clip_norm:g}")


__all__ = ["ACCOUNTANTS", "Accounting", "PrivacyError", "calibrate_noise", "choose_max_batch", "clip_per_example",
           "epsilon", "global_norms", "moments_accountant_epsilon", "noisy_clipped_mean", "overflow_delta",
           "overflow_probability", "per_example_gradients", "poisson_batch"]
