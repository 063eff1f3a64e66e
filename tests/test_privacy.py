"""Property tests of every privacy claim (jax_privacy's style): clipped norms, noise std, Poisson inclusion, the
accountant against published values, and the overflow bound."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxdistill import privacy
from jaxdistill.privacy import PrivacyError

MNIST_RATE = 256 / 60000


def _tree(seed: int, batch: int, shapes, scale: float):
    rng = np.random.default_rng(seed)
    return {f"leaf{i}": jnp.asarray(scale * rng.standard_normal((batch,) + tuple(s)), jnp.float32)
            for i, s in enumerate(shapes)}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 6),
       shapes=st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=3), min_size=1, max_size=3),
       scale=st.floats(1e-4, 1e4), clip=st.floats(1e-3, 10.0))
@pytest.mark.slow
def test_every_clipped_per_example_gradient_has_norm_at_most_c(seed, batch, shapes, scale, clip):
    grads = _tree(seed, batch, shapes, scale)
    norms_before = np.asarray(privacy.global_norms(grads))
    norms = np.asarray(privacy.global_norms(privacy.clip_per_example(grads, clip)))
    assert np.all(norms <= clip * (1 + 1e-5))
    small = norms_before <= clip  # a gradient already inside the ball is left as it is ...
    np.testing.assert_allclose(norms[small], norms_before[small], rtol=1e-5)
    np.testing.assert_allclose(norms[~small], clip, rtol=1e-4)  # ... one outside lands on its surface


def test_clipping_keeps_each_example_s_direction_and_infinite_c_changes_nothing():
    grads = _tree(0, 3, [(4,), (2, 3)], 10.0)
    clipped = privacy.clip_per_example(grads, 0.5)
    for k in grads:
        ratio = np.asarray(clipped[k]).reshape(3, -1) / np.asarray(grads[k]).reshape(3, -1)
        np.testing.assert_allclose(ratio, ratio[:, :1].repeat(ratio.shape[1], 1), rtol=1e-5)  # one scale per example
    assert all(np.array_equal(privacy.clip_per_example(grads, math.inf)[k], grads[k]) for k in grads)


def test_noise_std_is_sigma_times_c_over_the_expected_batch():
    sigma, clip, expected = 1.7, 0.3, 4.0
    zeros = {"w": jnp.zeros((2, 400, 500)), "b": jnp.zeros((2, 1000))}
    out = privacy.noisy_clipped_mean(zeros, jnp.array([True, False]), clip, sigma, expected, jax.random.PRNGKey(0))
    for leaf in out.values():
        values = np.asarray(leaf).ravel() * expected
        assert abs(values.mean()) < 5 * sigma * clip / math.sqrt(values.size)
        assert values.std() == pytest.approx(sigma * clip, rel=0.05 if values.size < 10**4 else 0.01)
    w, b = np.asarray(out["w"]).ravel(), np.asarray(out["b"]).ravel()
    assert abs(np.corrcoef(w[:1000], b)[0, 1]) < 0.15  # the leaves draw independent noise


def test_the_sum_covers_exactly_the_masked_in_examples():
    grads = {"w": jnp.arange(12, dtype=jnp.float32).reshape(4, 3)}
    mask = jnp.array([True, False, True, False])
    out = privacy.noisy_clipped_mean(grads, mask, math.inf, 0.0, 2.0, jax.random.PRNGKey(0))
    np.testing.assert_allclose(out["w"], (np.arange(3) + np.arange(6, 9)) / 2.0)


def test_noise_needs_a_finite_clipping_norm():
    with pytest.raises(PrivacyError, match="finite clipping norm"):
        privacy.noisy_clipped_mean({"w": jnp.zeros((1, 2))}, jnp.array([True]), math.inf, 1.0, 1.0,
                                   jax.random.PRNGKey(0))


def test_poisson_sampler_includes_each_example_at_the_rate_independently():
    n, rate, draws = 400, 0.05, 2000
    keys = jax.random.split(jax.random.PRNGKey(1), draws)
    idx, mask = jax.jit(jax.vmap(lambda k: privacy.poisson_batch(k, n, rate, n)))(keys)
    idx, mask = np.asarray(idx), np.asarray(mask)
    counts = mask.sum(1)
    included = np.zeros((draws, n), bool)
    for d in range(draws):
        chosen = idx[d][mask[d]]
        assert len(set(chosen.tolist())) == len(chosen)  # no example twice
        included[d, chosen] = True
    per_example = included.mean(0)  # each example's inclusion rate: Binomial(draws, rate) / draws
    assert abs(per_example.mean() - rate) < 4 * math.sqrt(rate * (1 - rate) / (draws * n))
    assert np.all(np.abs(per_example - rate) < 6 * math.sqrt(rate * (1 - rate) / draws))
    assert counts.mean() == pytest.approx(n * rate, rel=0.02)  # batch sizes vary as Binomial(n, rate) ...
    assert counts.var() == pytest.approx(n * rate * (1 - rate), rel=0.15)  # ... not a fixed size
    a, b = included[:, 0], included[:, 1]  # inclusions of two examples are independent
    assert abs(np.mean(a & b) - np.mean(a) * np.mean(b)) < 4 * rate / math.sqrt(draws)


def test_poisson_batch_overflow_keeps_the_first_drawn_examples_and_masks_unused_slots():
    key = jax.random.PRNGKey(3)
    full_idx, full_mask = privacy.poisson_batch(key, 50, 0.5, 51)
    drawn = np.asarray(full_idx)[np.asarray(full_mask)]
    idx, mask = privacy.poisson_batch(key, 50, 0.5, 5)
    assert np.all(np.asarray(mask)) and np.array_equal(np.asarray(idx), drawn[:5])
    assert not np.any(np.asarray(full_mask)[len(drawn):]) and np.all(np.asarray(full_idx)[len(drawn):] == 0)


def test_overflow_delta_is_zero_when_no_batch_can_overflow_and_falls_with_the_maximum():
    assert privacy.overflow_delta(10.0, 100, 0.1, 101, 1000) == 0.0
    values = [privacy.overflow_delta(1.0, 1000, 0.05, m, 100) for m in (50, 60, 70, 80)]
    assert values == sorted(values, reverse=True) and values[-1] < values[0]
    from scipy.stats import binom
    assert privacy.overflow_probability(1000, 0.05, 70, 100) == pytest.approx(100 * binom.sf(70, 1001, 0.05))
    assert privacy.overflow_delta(1.0, 1000, 0.05, 70, 100) == pytest.approx(
        (1 + math.e) * privacy.overflow_probability(1000, 0.05, 70, 100))


def test_choose_max_batch_is_the_smallest_meeting_the_budget():
    size = privacy.choose_max_batch(2.0, 1000, 0.05, 500, 1e-9)
    assert privacy.overflow_delta(2.0, 1000, 0.05, size, 500) <= 1e-9
    assert privacy.overflow_delta(2.0, 1000, 0.05, size - 1, 500) > 1e-9


def test_accountant_reproduces_abadi_et_al_s_published_epsilon():
    # Abadi et al. (CCS 2016), section 5: q = 0.01, sigma = 4, 10,000 steps, delta 1e-5 -> epsilon about 1.26 with
    # the moments accountant; RDP's tighter conversion and PLD give less (and never more)
    moments = privacy.moments_accountant_epsilon(4.0, 0.01, 10_000, 1e-5)
    assert moments == pytest.approx(1.26, rel=0.05)
    rdp = privacy.epsilon(4.0, 0.01, 10_000, 1e-5, "rdp")
    pld = privacy.epsilon(4.0, 0.01, 10_000, 1e-5, "pld")
    assert pld <= rdp <= moments


@pytest.mark.parametrize("queries, reference_sigma", [(1000 * 1 * 10, 0.60), (1000 * 10 * 10, 0.97),
                                                      (1000 * 20 * 10, 1.21)])
@pytest.mark.slow
def test_calibrated_sigma_agrees_with_the_reference_at_its_mnist_defaults(queries, reference_sigma):
    # the PSG reference (its rdp_accountant.compute_sigma) at eps 10, delta 1e-5, q = 256/60000 and
    # iteration x outer_loop x batch_loop queries at ipc 1 / 10 / 20
    sigma = privacy.calibrate_noise(10.0, 1e-5, MNIST_RATE, queries)
    assert sigma == pytest.approx(reference_sigma, rel=0.03)
    assert privacy.epsilon(sigma, MNIST_RATE, queries, 1e-5) == pytest.approx(10.0, rel=1e-3)
    pld = privacy.calibrate_noise(10.0, 1e-5, MNIST_RATE, queries, "pld")
    assert 0.85 * sigma < pld <= sigma  # PLD is tighter: less noise for the same guarantee


def test_more_noise_spends_less_and_fewer_queries_spend_less():
    eps = [privacy.epsilon(s, 0.01, 1000, 1e-5) for s in (0.8, 1.0, 2.0)]
    assert eps == sorted(eps, reverse=True)
    assert privacy.epsilon(1.0, 0.01, 100, 1e-5) < privacy.epsilon(1.0, 0.01, 1000, 1e-5)
    assert privacy.epsilon(1.0, 0.01, 0, 1e-5) == 0.0 and privacy.epsilon(0.0, 0.01, 10, 1e-5) == math.inf


@pytest.mark.parametrize("kw, match", [(dict(target_epsilon=0.0), "epsilon must be > 0"),
                                       (dict(delta=1.0), "delta must lie"),
                                       (dict(target_epsilon=1e-4, rate=0.5, queries=10**6), "cannot be met"),
                                       (dict(accountant="moments"), "unknown privacy accountant")])
def test_impossible_budgets_are_refused_with_a_message(kw, match):
    args = dict(target_epsilon=1.0, delta=1e-5, rate=0.01, queries=100, accountant="rdp") | kw
    with pytest.raises((PrivacyError, Exception), match=match):
        privacy.calibrate_noise(**args)


def test_pld_is_tighter_than_rdp_also_over_many_queries_at_a_small_epsilon():
    # 100,000 queries at epsilon 1 (PSG at ipc 10): with a coarse discretisation (1e-3) PLD's pessimistic rounding
    # added up to more than RDP's bound, and calibration failed to bracket a solution
    rdp = privacy.calibrate_noise(1.0, 1e-5, MNIST_RATE, 100_000)
    pld = privacy.calibrate_noise(1.0, 1e-5, MNIST_RATE, 100_000, "pld")
    assert 0.85 * rdp < pld < rdp
    assert privacy.epsilon(pld, MNIST_RATE, 100_000, 1e-5, "pld") == pytest.approx(1.0, rel=1e-3)
