import dataclasses

import jax
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.methods import make_method
from jaxdistill.methods.dc import LOOPS, DCConfig
from tests import helpers

REAL = helpers.tiny_real(num_per_class=4, num_classes=3)
TINY = dict(DCConfig.TEST_OVERRIDES)


def test_loops_follow_the_reference_table():
    assert DCConfig(ipc=1).loops == (1, 1)
    assert DCConfig(ipc=10).loops == (10, 50)
    assert DCConfig(ipc=50).loops == (50, 10)
    assert DCConfig(ipc=7, outer_loop=3, inner_loop=2).loops == (3, 2)
    assert set(LOOPS) == {1, 10, 20, 30, 40, 50}


@pytest.mark.parametrize("bad,match", [(dict(ipc=0), "ipc"), (dict(ipc=7), "outer_loop"),
                                       (dict(outer_loop=0), "outer_loop"), (dict(inner_loop=-1), "inner_loop"),
                                       (dict(norm="batchnorm"), "batch-norm"), (dict(distance="l1"), "distance"),
                                       (dict(init="zeros"), "init")])
def test_bad_configs(bad, match):
    with pytest.raises(ConfigError, match=match):
        DCConfig(**bad)


def test_batch_real_larger_than_a_class_is_refused():
    m = make_method("dc", DCConfig(ipc=1, **{**TINY, "batch_real": 5}))
    with pytest.raises(ConfigError, match="batch_real"):
        m.init(jax.random.PRNGKey(0), REAL)


@pytest.mark.parametrize("outer", [1, 2])
def test_an_update_lowers_the_matching_loss_against_the_same_network_and_batch(outer):
    # Same key twice = same fresh network and real batches: the second match sees images after one SGD step on it.
    # A small step (lr 1e-3, no momentum) along the negative gradient must lower a smooth loss.
    m = make_method("dc", DCConfig(ipc=1, lr_img=1e-3, momentum_img=0.0,
                                   **{**TINY, "outer_loop": outer, "batch_real": 4}))
    step = jax.jit(m.step)
    key = jax.random.PRNGKey(3)
    state = m.init(jax.random.PRNGKey(0), REAL)
    state1, m1 = step(state, key, REAL)
    _, m2 = step(state1, key, REAL)
    assert float(m2["match_loss"]) < float(m1["match_loss"])
    assert not np.allclose(state1.synthetic.images, state.synthetic.images)
    np.testing.assert_array_equal(state1.synthetic.labels, state.synthetic.labels)


def test_noise_init_is_standard_normal_class_major():
    m = make_method("dc", DCConfig(ipc=2, **{**TINY, "init": "noise"}))
    state = m.init(jax.random.PRNGKey(0), REAL)
    assert state.synthetic.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert abs(float(state.synthetic.images.std()) - 1) < 0.2


def test_network_trains_between_matches_only():
    # With one match there is nothing in between, so inner_loop changes nothing; with two it changes the second match.
    def images_after(outer, inner):
        m = make_method("dc", DCConfig(ipc=1, **{**TINY, "outer_loop": outer, "inner_loop": inner}))
        state, _ = jax.jit(m.step)(m.init(jax.random.PRNGKey(0), REAL), jax.random.PRNGKey(1), REAL)
        return np.asarray(state.synthetic.images)

    np.testing.assert_array_equal(images_after(1, 0), images_after(1, 3))
    assert not np.allclose(images_after(2, 0), images_after(2, 3))
