import functools

import jax
import numpy as np
import pytest

from jaxdistill import policy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import make_method
from jaxdistill.methods.base import RunPlan, StepInputs
from jaxdistill.methods.dc import LOOPS, DCConfig
from tests import helpers

REAL = helpers.tiny_real(num_per_class=4, num_classes=3)
INPUTS = StepInputs(REAL)
TINY = dict(helpers.TINY_DC)
BATCHNORM = "convnet:depth=2,width=8,norm=batchnorm"


def test_loops_follow_the_reference_table():
    assert DCConfig(ipc=1).loops == (1, 1)
    assert DCConfig(ipc=10).loops == (10, 50)
    assert DCConfig(ipc=50).loops == (50, 10)
    assert DCConfig(ipc=7, outer_loop=3, inner_loop=2).loops == (3, 2)
    assert set(LOOPS) == {1, 10, 20, 30, 40, 50}


@pytest.mark.parametrize("bad,match", [(dict(ipc=0), "ipc"), (dict(ipc=7), "outer_loop"),
                                       (dict(outer_loop=0), "outer_loop"), (dict(inner_loop=-1), "inner_loop"),
                                       (dict(dsa_strategy="blur"), "DSA operation"), (dict(distance="l1"), "distance"),
                                       (dict(init="zeros"), "init")])
def test_bad_configs(bad, match):
    with pytest.raises(ConfigError, match=match):
        DCConfig(**bad)


def test_batch_real_larger_than_a_class_is_refused_before_the_run():
    m = make_method("dc", DCConfig(ipc=1, **{**TINY, "batch_real": 5}))
    with pytest.raises(ConfigError, match="batch_real"):
        m.prepare(RunPlan.of("tiny", REAL, iterations=1))


@pytest.mark.slow
@pytest.mark.parametrize("outer", [1, 2])
def test_an_update_lowers_the_matching_loss_against_the_same_network_and_batch(outer):
    # Same key twice = same fresh network and real batches: the second match sees images after one SGD step on it.
    # A small step (lr 1e-3, no momentum) along the negative gradient must lower a smooth loss.
    m = make_method("dc", DCConfig(ipc=1, lr_img=1e-3, momentum_img=0.0,
                                   **{**TINY, "outer_loop": outer, "batch_real": 4}))
    step = jax.jit(m.step)
    key = jax.random.PRNGKey(3)
    state = m.init(jax.random.PRNGKey(0), INPUTS)
    with policy.use(**helpers.TEST_POLICY):
        state1, m1 = step(state, key, INPUTS)
        _, m2 = step(state1, key, INPUTS)
    assert float(m2["match_loss"]) < float(m1["match_loss"])
    assert not np.allclose(state1.synthetic.images, state.synthetic.images)
    np.testing.assert_array_equal(state1.synthetic.labels, state.synthetic.labels)


def test_noise_init_is_standard_normal_class_major():
    m = make_method("dc", DCConfig(ipc=2, **{**TINY, "init": "noise"}))
    state = m.init(jax.random.PRNGKey(0), INPUTS)
    assert state.synthetic.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert abs(float(state.synthetic.images.std()) - 1) < 0.2


@pytest.mark.slow
def test_network_trains_between_matches_only():
    # With one match there is nothing in between, so inner_loop changes nothing; with two it changes the second match.
    def images_after(outer, inner):
        return np.asarray(_one_step("dc", outer_loop=outer, inner_loop=inner)[1].synthetic.images)

    np.testing.assert_array_equal(images_after(1, 0), images_after(1, 3))
    assert not np.allclose(images_after(2, 0), images_after(2, TINY["inner_loop"]))  # the second shared by others


def _one_step(method, key=1, policy_changes=(), **overrides):
    """(initial state, state after one step, metrics) under the tests' policy with `policy_changes`; cached, since
    several tests compare the same runs."""
    config = {"ipc": 1, **TINY, **overrides}  # the full config is the cache key: equal configs share a run
    changes = {**helpers.TEST_POLICY, **dict(policy_changes)}
    return _cached_step(method, key, tuple(sorted(config.items())), tuple(sorted(changes.items())))


@functools.lru_cache(maxsize=None)
def _cached_step(method, key, config, changes):
    m = make_method(method, **dict(config))
    state = m.init(jax.random.PRNGKey(0), INPUTS)
    with policy.use(**dict(changes)):
        new_state, metrics = jax.jit(m.step)(state, jax.random.PRNGKey(key), INPUTS)
    return state, new_state, metrics


def test_dsa_with_every_augmentation_off_is_exactly_dc():
    _, dc_state, dc_metrics = _one_step("dc")
    _, dsa_state, dsa_metrics = _one_step("dsa", dsa_strategy="none")
    np.testing.assert_array_equal(dsa_state.synthetic.images, dc_state.synthetic.images)
    assert float(dsa_metrics["match_loss"]) == float(dc_metrics["match_loss"])


@pytest.mark.slow
def test_dsa_augmentation_changes_the_update_and_stays_finite():
    _, dc_state, _ = _one_step("dc")
    _, dsa_state, metrics = _one_step("dsa", dsa_strategy="color_crop_cutout_scale_rotate")
    assert np.isfinite(float(metrics["match_loss"]))
    assert np.all(np.isfinite(dsa_state.synthetic.images))
    assert not np.allclose(dsa_state.synthetic.images, dc_state.synthetic.images)


def test_dsa_strategy_defaults_per_dataset_and_yields_to_overrides():
    from jaxdistill.data.dsa import DSA_DIGIT_STRATEGY, DSA_STRATEGY
    from jaxdistill.methods import method_config
    assert method_config("dsa").dsa_strategy == DSA_STRATEGY
    assert method_config("dsa", dataset="mnist").dsa_strategy == DSA_DIGIT_STRATEGY  # no flips on digits
    assert method_config("dsa", dataset="fashion_mnist").dsa_strategy == DSA_STRATEGY
    assert method_config("dsa", dataset="mnist", dsa_strategy="crop").dsa_strategy == "crop"
    assert method_config("dc", dataset="mnist").dsa_strategy == "none"


@pytest.mark.slow
def test_batchnorm_network_matches_with_running_statistics_from_real_data():
    # The reference sets a batch-norm net's running statistics from a training-mode pass over real images and
    # matches in evaluation mode; the result must differ from instance norm's and be finite; batch_bn is checked.
    _, bn_state, metrics = _one_step("dc", model=BATCHNORM, batch_bn=2)
    _, in_state, _ = _one_step("dc")
    assert np.isfinite(float(metrics["match_loss"])) and np.all(np.isfinite(bn_state.synthetic.images))
    assert not np.allclose(bn_state.synthetic.images, in_state.synthetic.images)
    m = make_method("dc", **{"ipc": 1, **TINY, "model": BATCHNORM, "batch_bn": 5})
    with pytest.raises(ConfigError, match="batch_bn"):
        m.prepare(RunPlan.of("tiny", REAL, iterations=1))


@pytest.mark.slow
def test_batchnorm_statistics_come_from_the_real_batch_norm_pass():
    # How many real images per class set the running statistics (batch_bn) changes a batch-norm net's match, and
    # nothing else: with instance norm, batch_bn is unused.
    bn = [np.asarray(_one_step("dc", model=BATCHNORM, batch_bn=b)[1].synthetic.images) for b in (2, 4)]
    assert not np.allclose(bn[0], bn[1])
    inst = [np.asarray(_one_step("dc", **b)[1].synthetic.images) for b in ({}, {"batch_bn": 4})]
    np.testing.assert_array_equal(inst[0], inst[1])


@pytest.mark.slow
def test_real_batch_in_chunks_gives_the_same_update():
    _, whole, m1 = _one_step("dc", batch_real=4, policy_changes={"real_chunks": 1})
    _, chunked, m2 = _one_step("dc", batch_real=4, policy_changes={"real_chunks": 2})
    np.testing.assert_allclose(chunked.synthetic.images, whole.synthetic.images, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(m2["match_loss"]), float(m1["match_loss"]), rtol=1e-5)
    with pytest.raises(ConfigError, match="real_chunks"):
        policy.current().replace(real_chunks=0)
    assert policy.current().replace(real_chunks=3).chunks_for(4) == 1  # a split that does not divide is not made


@pytest.mark.slow
def test_host_driven_loop_equals_the_one_program_step():
    # On CPU the runner calls the jitted loop body from Python instead of the scanned step: same result.
    from jaxdistill.driver import HostDriven
    m = make_method("dc", **{"ipc": 1, **TINY, "outer_loop": 3, "inner_loop": 2})
    assert m.loop.length == 2  # matches followed by training; the last match ends it
    state = m.init(jax.random.PRNGKey(0), INPUTS)
    with policy.use(**helpers.TEST_POLICY):
        a, ma = jax.jit(m.step)(state, jax.random.PRNGKey(1), INPUTS)
        b, mb = HostDriven(m.loop)(state, jax.random.PRNGKey(1), INPUTS)
    np.testing.assert_allclose(b.synthetic.images, a.synthetic.images, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(mb["match_loss"]), float(ma["match_loss"]), rtol=1e-5)
    assert int(b.iteration) == int(a.iteration) == 1


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_class_loop_as_a_scan_equals_the_unrolled_loop(method):
    # The tests above run the scan (TEST_POLICY); the default unrolls the classes. Same keys, same batches,
    # same chunks: the same update up to float summation order. ipc 2 checks the class-major slicing.
    kw = dict(ipc=2, batch_real=4, **({"dsa_strategy": "crop_rotate"} if method == "dsa" else {}))
    before, scanned, ms = _one_step(method, policy_changes={"real_chunks": 2}, **kw)
    _, unrolled, mu = _one_step(method, policy_changes={"real_chunks": 2, "class_loop": "unroll"}, **kw)
    np.testing.assert_allclose(unrolled.synthetic.images, scanned.synthetic.images, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(mu["match_loss"]), float(ms["match_loss"]), rtol=1e-5)
    assert not np.allclose(scanned.synthetic.images, before.synthetic.images)
    with pytest.raises(ConfigError, match="class_loop"):
        policy.current().replace(class_loop="vmap")
