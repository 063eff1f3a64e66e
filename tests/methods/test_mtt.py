import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.methods.mtt import ExpertWindow, MTTConfig, mtt, student_trajectory, trajectory_loss
from jaxdistill.models import ConvNet
from jaxdistill.train import apply_model, cross_entropy
from tests.helpers import tiny_images

NET = ConvNet(2, width=4, depth=1)
IMAGES, LABELS = tiny_images(num_per_class=3, num_classes=2)
START = NET.init(jax.random.PRNGKey(0), IMAGES[:1])["params"]
NO_AUG = lambda key, x: x  # noqa: E731


def test_trajectory_loss_is_zero_at_the_target_and_one_at_the_start():
    target = jax.tree.map(lambda a: a + 1.0, START)
    assert float(trajectory_loss(target, START, target)) == pytest.approx(0.0)
    assert float(trajectory_loss(START, START, target)) == pytest.approx(1.0)


def test_student_steps_are_plain_sgd_on_the_synthetic_batches():
    lr, steps = 0.1, 3
    got = student_trajectory(NET, jnp.asarray(IMAGES), jnp.asarray(LABELS), jnp.float32(lr), START,
                             jax.random.PRNGKey(1), steps, len(LABELS), NO_AUG)
    params = START
    for _ in range(steps):  # full batch: every step sees all images, whatever the permutation
        g = jax.grad(lambda p: cross_entropy(apply_model(NET, p, {}, jnp.asarray(IMAGES), True)[0], LABELS))(params)
        params = jax.tree.map(lambda p, d: p - lr * d, params, g)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    zero = student_trajectory(NET, jnp.asarray(IMAGES), jnp.asarray(LABELS), jnp.float32(0.0), START,
                              jax.random.PRNGKey(1), steps, 2, NO_AUG)
    for a, b in zip(jax.tree.leaves(zero), jax.tree.leaves(START)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_rematerialisation_changes_neither_the_loss_nor_its_gradients():
    target = jax.tree.map(lambda a: a * 0.9, START)

    def loss(images, lr, remat):
        final = student_trajectory(NET, images, jnp.asarray(LABELS), lr, START, jax.random.PRNGKey(2), 4, 4,
                                   NO_AUG, remat=remat)
        return trajectory_loss(final, START, target)
    grads = [jax.value_and_grad(loss, argnums=(0, 1))(jnp.asarray(IMAGES), jnp.float32(0.05), r) for r in (True, False)]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(grads[0][1][1])) > 0  # the learning rate is learned


def test_an_update_lowers_the_matching_loss_on_the_same_window_and_key():
    from tests.helpers import tiny_real
    real = tiny_real(num_per_class=3, num_classes=2)
    from jaxdistill.methods.base import StepInputs
    cfg = MTTConfig(ipc=2, syn_steps=3, dsa_strategy="none", model="convnet:depth=1,width=4", lr_img=1.0,
                    lr_lr=0.0, buffer_dir="unused")
    m = mtt(cfg)
    target = jax.tree.map(lambda a: a * 0.5, START)
    window = StepInputs(real, ExpertWindow(START, target))
    state = m.init(jax.random.PRNGKey(0), StepInputs(real))
    key = jax.random.PRNGKey(3)
    step = jax.jit(m.step)
    s1, metrics1 = step(state, key, window)
    _, metrics2 = step(s1, key, window)
    assert float(metrics2["match_loss"]) < float(metrics1["match_loss"])
    assert float(metrics1["syn_lr"]) == pytest.approx(0.01)  # lr_lr = 0 keeps it


@pytest.mark.parametrize("clip", [False, True])
def test_clip_to_real_keeps_every_pixel_in_the_real_images_range(clip):
    from jaxdistill.methods.base import StepInputs
    from tests.helpers import tiny_real
    real = tiny_real(num_per_class=3, num_classes=2)
    low, high = float(jnp.min(real.images)), float(jnp.max(real.images))
    cfg = MTTConfig(ipc=2, syn_steps=3, dsa_strategy="none", model="convnet:depth=1,width=4", lr_img=1e6,
                    lr_lr=0.0, buffer_dir="unused", init="noise", clip_to_real=clip)
    m = mtt(cfg)
    state = m.init(jax.random.PRNGKey(0), StepInputs(real))  # standard-normal noise: outside the range too
    window = StepInputs(real, ExpertWindow(START, jax.tree.map(lambda a: a * 0.5, START)))
    new, _ = jax.jit(m.step)(state, jax.random.PRNGKey(3), window)
    start, updated = np.asarray(state.synthetic.images), np.asarray(new.synthetic.images)
    if clip:
        for images in (start, updated):
            assert low <= images.min() and images.max() <= high
        assert np.isclose(updated, low).any() and np.isclose(updated, high).any()  # the update reached both bounds
    else:  # the bound bites: unclamped, the same noise and update leave the range
        assert start.min() < low or start.max() > high
        assert updated.min() < low and updated.max() > high


def test_without_a_buffer_the_error_says_how_to_make_one():
    from jaxdistill.errors import ConfigError
    from jaxdistill.methods.base import RunPlan
    from tests.helpers import tiny_real
    m = mtt(MTTConfig())
    with pytest.raises(ConfigError, match="jaxdistill experts"):
        m.prepare(RunPlan.of("tiny", tiny_real(), iterations=1))  # before the run starts
    with pytest.raises(ConfigError, match="jaxdistill experts"):
        m.host_data(0, 0)


def test_the_run_is_refused_when_the_experts_do_not_fit_the_method(tmp_path):
    from jaxdistill.errors import ConfigError
    from jaxdistill.experts import ExpertConfig, train_experts
    from jaxdistill.methods.base import RunPlan
    from tests.helpers import tiny_real
    real = tiny_real(num_per_class=3, num_classes=2)
    train_experts(tmp_path, np.asarray(real.images), np.asarray(real.labels), "tiny", 2, [0],
                  ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=2, batch_size=6, augment="none"),
                  progress=False)
    plan = RunPlan.of("tiny", real, iterations=1)
    ok = dict(buffer_dir=str(tmp_path), model="convnet:depth=1,width=4", expert_epochs=1, max_start_epoch=2)
    mtt(MTTConfig(**ok)).prepare(plan)
    with pytest.raises(ConfigError, match="set model=convnet:depth=1,width=4"):
        mtt(MTTConfig(**{**ok, "model": "convnet:depth=2,width=4"})).prepare(plan)
    with pytest.raises(ConfigError, match="max_start_epoch"):
        mtt(MTTConfig(**{**ok, "max_start_epoch": 3})).prepare(plan)
    with pytest.raises(ConfigError, match="ZCA"):
        mtt(MTTConfig(**ok)).prepare(plan._replace(zca=True))


@pytest.mark.parametrize("field,value", [("syn_steps", 0), ("expert_epochs", 0), ("batch_syn", 0),
                                         ("dsa_strategy", "warp"), ("clip_to_real", "yes")])
def test_bad_settings_are_refused(field, value):
    from jaxdistill.errors import ConfigError
    with pytest.raises(ConfigError):
        MTTConfig(**{field: value})
