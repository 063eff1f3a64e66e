import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.experts import ExpertConfig, train_experts
from jaxdistill.methods.base import INIT_ITERATION, StepInputs
from jaxdistill.methods.datm import DATMConfig, datm, select_correct, start_epoch_bounds
from jaxdistill.methods.mtt import MTTConfig, MTTState, mtt
from jaxdistill.synthetic import SyntheticSet
from tests.helpers import tiny_real

REAL = tiny_real(num_per_class=6, num_classes=2)
NET_KW = (("depth", 1), ("width", 4))
NET = "convnet:depth=1,width=4"


def inputs(method, seed, iteration):
    return StepInputs(REAL, jax.tree.map(jnp.asarray, method.host_data(seed, iteration)))


@pytest.fixture(scope="module")
def buffer(tmp_path_factory):
    path = tmp_path_factory.mktemp("experts")
    train_experts(path, np.asarray(REAL.images), np.asarray(REAL.labels), "tiny", 2, [0, 1],
                  ExpertConfig(model_kwargs=NET_KW, epochs=4, batch_size=4, augment="none", lr=0.05,
                               parallel="vmap"), progress=False)
    return str(path)


def _cfg(buffer, **kw):
    base = dict(ipc=2, buffer_dir=buffer, syn_steps=3, expert_epochs=1, max_start_epoch=3, min_start_epoch=0,
                current_max_start_epoch=1, expansion_end_epoch=4, model=NET, dsa_strategy="none",
                lr_img=10.0, label_experts=2, candidate_pool=6)
    base.update(kw)
    return DATMConfig(**base)


@pytest.mark.slow
def test_with_hard_frozen_labels_and_a_fixed_window_the_update_is_mtt_s(buffer):
    cfg = _cfg(buffer, soft_labels=False, sequential_generation=False, threshold=float("inf"), init="real")
    d = datm(cfg)
    m = mtt(MTTConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(MTTConfig)}))
    d_state = d.init(jax.random.PRNGKey(0), inputs(d, 0, INIT_ITERATION))
    m_state = MTTState(SyntheticSet(d_state.images, d_state.hard_labels), d_state.syn_lr,
                       d_state.opt_images, d_state.opt_lr)
    window, m_window = inputs(d, 0, 5), inputs(m, 0, 5)
    for a, b in zip(jax.tree.leaves(window.host), jax.tree.leaves(m_window.host)):  # same (seed, iteration): same draw
        np.testing.assert_array_equal(a, b)
    key = jax.random.PRNGKey(7)
    d_new, d_metrics = jax.jit(d.step)(d_state, key, window)
    m_new, m_metrics = jax.jit(m.step)(m_state, key, window)
    np.testing.assert_allclose(d_new.images, m_new.synthetic.images, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d_new.syn_lr, m_new.syn_lr, rtol=1e-6)
    assert float(d_metrics["match_loss"]) == pytest.approx(float(m_metrics["match_loss"]), rel=1e-6)


def test_soft_labels_start_from_the_experts_logits_and_are_learned(buffer):
    d = datm(_cfg(buffer, threshold=float("inf")))
    state = jax.jit(d.init)(jax.random.PRNGKey(0), inputs(d, 0, INIT_ITERATION))
    syn = d.synthetic(state)
    assert syn.labels.shape == (4, 2)
    np.testing.assert_allclose(syn.labels.sum(-1), 1.0, rtol=1e-6)
    assert (np.argmax(syn.labels, -1) == np.asarray(state.hard_labels)).all()  # experts see the init images right
    new, _ = jax.jit(d.step)(state, jax.random.PRNGKey(1), inputs(d, 0, 0))
    assert not np.allclose(new.label_logits, state.label_logits)


def test_clip_to_real_keeps_the_updated_images_in_the_real_images_range(buffer):
    low, high = float(jnp.min(REAL.images)), float(jnp.max(REAL.images))
    d = datm(_cfg(buffer, threshold=float("inf"), lr_img=1e6, clip_to_real=True))
    state = jax.jit(d.init)(jax.random.PRNGKey(0), inputs(d, 0, INIT_ITERATION))
    new, metrics = jax.jit(d.step)(state, jax.random.PRNGKey(1), inputs(d, 0, 0))
    assert float(metrics["accepted"]) == 1.0
    images = np.asarray(new.images)
    assert low <= images.min() and images.max() <= high
    assert np.isclose(images, low).any() and np.isclose(images, high).any()  # lr 1e6 pushes pixels onto both bounds


def test_an_update_above_the_threshold_changes_nothing(buffer):
    d = datm(_cfg(buffer, threshold=-1.0))
    state = jax.jit(d.init)(jax.random.PRNGKey(0), inputs(d, 0, INIT_ITERATION))
    new, metrics = jax.jit(d.step)(state, jax.random.PRNGKey(1), inputs(d, 0, 0))
    assert float(metrics["accepted"]) == 0.0
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)


def test_the_matching_range_grows_then_stops(buffer):
    cfg = _cfg(buffer, current_max_start_epoch=1, max_start_epoch=3, expansion_end_epoch=4)
    assert [start_epoch_bounds(cfg, it)[1] for it in (0, 1, 2, 4, 100)] == [1, 1, 2, 3, 3]
    assert start_epoch_bounds(dataclasses.replace(cfg, sequential_generation=False), 0) == (0, 3)
    d = datm(cfg)
    from jaxdistill.experts import ExpertBuffer
    buf = ExpertBuffer(buffer)
    epoch0 = [buf.load(seed, 0)["Conv_0"]["bias"] for seed in buf.experts]
    for it in range(6):  # before the range grows (iterations 0 and 1), every window starts at epoch 0
        bias = d.host_data(0, it).start["Conv_0"]["bias"]
        assert any(np.array_equal(bias, b) for b in epoch0) or it >= 2


def test_select_correct_prefers_correctly_classified_candidates():
    # 2 classes x pool 3; class 0 candidates: right, wrong, right; class 1: wrong, wrong, right.
    labels = jnp.array([0, 0, 0, 1, 1, 1])
    predicted = jnp.array([0, 1, 0, 0, 0, 1])
    logits = jax.nn.one_hot(predicted, 2)
    for seed in range(5):
        idx = np.asarray(select_correct(jax.random.PRNGKey(seed), None, labels, logits, 2, 3, 2))
        assert set(idx[:2]) == {0, 2}
        assert idx[2] == 5 and idx[3] in (3, 4)


def test_bad_schedules_are_refused(buffer):
    with pytest.raises(ConfigError):
        _cfg(buffer, current_max_start_epoch=5, max_start_epoch=3)
    with pytest.raises(ConfigError):
        _cfg(buffer, min_start_epoch=3, max_start_epoch=3)
