import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.errors import ConfigError
from jaxdistill.models import ConvNet
from jaxdistill.train import (Trainer, TrainConfig, balanced_class_weights, cross_entropy, epoch_batch_indices,
                              predict_logits)
from tests.helpers import tiny_images

IMAGES, LABELS = tiny_images(num_per_class=5, num_classes=2)
NET = ConvNet(2, width=8, depth=2)


def make(epochs=6, batch_size=4, **kw):
    return Trainer(NET, TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.05, **kw), IMAGES.shape[0])


@pytest.fixture(scope="module")
def python_run():
    trainer = make(driver="python", parallel="vmap")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    return trainer, keys, trainer.run(keys, IMAGES, LABELS)


def close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_every_example_once_per_epoch_last_batch_masked():
    key = jax.random.PRNGKey(3)
    seen = []
    for step in range(3):  # 10 examples, batch 4 -> 3 steps per epoch, the last with 2 real rows
        idx, mask = epoch_batch_indices(key, jnp.int32(step), 10, 4)
        seen += [int(i) for i, m in zip(idx, mask) if m]
    assert sorted(seen) == list(range(10))
    _, mask = epoch_batch_indices(key, jnp.int32(2), 10, 4)
    assert mask.tolist() == [1, 1, 0, 0]
    idx_next, _ = epoch_batch_indices(key, jnp.int32(3), 10, 4)  # a new epoch draws a new permutation
    idx_first, _ = epoch_batch_indices(key, jnp.int32(0), 10, 4)
    assert not np.array_equal(idx_next, idx_first)


def test_training_fits_separable_data(python_run):
    trainer, keys, states = python_run
    assert states.step.tolist() == [trainer.total_steps] * 2 == [18, 18]
    for i in range(2):
        one = jax.tree.map(lambda a: a[i], states)
        logits = predict_logits(NET, one.params, one.batch_stats, jnp.asarray(IMAGES))
        assert float(jnp.mean(jnp.argmax(logits, -1) == LABELS)) == 1.0


def test_seeds_give_different_networks(python_run):
    _, _, states = python_run
    k = states.params["Conv_0"]["kernel"]
    assert not np.allclose(k[0], k[1])


def test_scan_driver_equals_python_driver(python_run):
    _, keys, states = python_run
    scanned = make(driver="scan", parallel="vmap").run(keys, IMAGES, LABELS)
    close(scanned.params, states.params, rtol=2e-4, atol=2e-5)


def test_sequential_equals_vmap(python_run):
    _, keys, states = python_run
    seq = make(driver="python", parallel="sequential").run(keys, IMAGES, LABELS)
    close(seq.params, states.params, rtol=2e-4, atol=2e-5)


def test_resume_from_saved_epoch_gives_the_same_run(python_run):
    trainer, keys, states = python_run
    saved = {}

    class Stop(Exception):
        pass

    def on_epoch(epoch, st):
        if epoch == 2:
            saved["states"] = jax.tree.map(np.array, st)
            raise Stop

    with pytest.raises(Stop):
        trainer.run(keys, IMAGES, LABELS, on_epoch=on_epoch)
    resumed = trainer.run(keys, IMAGES, LABELS, states=jax.tree.map(jnp.asarray, saved["states"]))
    close(resumed.params, states.params, rtol=0, atol=0)


def test_soft_one_hot_labels_equal_hard_labels():
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    labels = jnp.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(cross_entropy(logits, jax.nn.one_hot(labels, 3)), cross_entropy(logits, labels),
                               rtol=1e-6)
    mask = jnp.array([1, 1, 0, 0, 0.0])
    np.testing.assert_allclose(cross_entropy(logits, labels, mask), cross_entropy(logits[:2], labels[:2]), rtol=1e-6)


def test_lr_drops_tenfold_at_half_the_epochs():
    # 2 steps per epoch, so the drop comes after epoch 2 = step 4; read the lr off the updates of a unit gradient.
    trainer = make(epochs=4, batch_size=5)
    params = {"w": jnp.zeros(())}
    state = trainer.tx.init(params)
    steps = []
    for t in range(6):
        upd, state = trainer.tx.update({"w": jnp.ones(())}, state, params)
        steps.append(float(upd["w"]))
    # momentum 0.9 accumulates: first update is -lr, and the step after the drop is smaller than a no-drop run.
    assert steps[0] == pytest.approx(-0.05)
    no_drop = Trainer(NET, TrainConfig(epochs=4, batch_size=5, lr=0.05, lr_drop_fraction=1.0), 10).tx
    s2 = no_drop.init(params)
    ref = []
    for t in range(6):
        upd, s2 = no_drop.update({"w": jnp.ones(())}, s2, params)
        ref.append(float(upd["w"]))
    assert steps[:4] == pytest.approx(ref[:4])
    assert abs(steps[4]) < abs(ref[4]) / 5


def test_bad_config_values_raise_config_errors():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="driver"):
        TrainConfig(driver="fast")
    with pytest.raises(ConfigError):
        TrainConfig(augment="no-such-augmentation")
    for lr in (0.0, -0.01, float("nan"), float("inf")):  # nan passed a plain `lr <= 0` check
        with pytest.raises(ConfigError, match="lr must be a finite number > 0"):
            TrainConfig(lr=lr)


@pytest.mark.slow
def test_scan_driver_over_several_chunks_with_epoch_callbacks():
    # 40 epochs x 3 steps = 120 steps: without a callback the scan driver runs chunks of 102 and 18 steps; with
    # one it runs one epoch per call and reports every epoch. Both equal the step-by-step python driver.
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    reference = make(epochs=40, driver="python").run(keys, IMAGES, LABELS)
    chunked = make(epochs=40, driver="scan").run(keys, IMAGES, LABELS)
    seen = []
    per_epoch = make(epochs=40, driver="scan").run(keys, IMAGES, LABELS, on_epoch=lambda e, s: seen.append(e))
    assert seen == list(range(1, 41))
    close(chunked.params, reference.params, rtol=1e-3, atol=1e-4)
    close(per_epoch.params, reference.params, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_networks_train_on_soft_labels():
    # Soft labels that put 0.8 on the true class (the DATM / KD-carrying synthetic set case) train a separable set.
    from jaxdistill.evaluate import EvalConfig, evaluate_set
    soft = np.full((len(LABELS), 2), 0.2, np.float32)
    soft[np.arange(len(LABELS)), LABELS] = 0.8
    cfg = EvalConfig(model="convnet:depth=2,width=8", num_models=1,
                     train=TrainConfig(epochs=6, batch_size=4, lr=0.05, driver="python", parallel="vmap"))
    soft_rec = evaluate_set(IMAGES, soft, IMAGES, LABELS, 2, cfg)
    hard_rec = evaluate_set(IMAGES, LABELS, IMAGES, LABELS, 2, cfg)
    assert soft_rec["accuracy_mean"] == 1.0
    assert soft_rec["accuracies"] == hard_rec["accuracies"]  # both fit; but the loss differs:
    trainer = make(driver="python", parallel="vmap")
    state = trainer.init_state(jax.random.PRNGKey(0), IMAGES)
    _, soft_loss = trainer.train_step(state, jax.random.PRNGKey(1), jnp.asarray(IMAGES), jnp.asarray(soft))
    _, hard_loss = trainer.train_step(state, jax.random.PRNGKey(1), jnp.asarray(IMAGES), jnp.asarray(LABELS))
    assert abs(float(soft_loss) - float(hard_loss)) > 1e-4


def test_a_label_mixing_augmentation_trains_on_the_targets_it_returns():
    """Augmentations may return (images, targets): CutMix-like mixing changes the labels a network trains on."""
    import jax.numpy as jnp

    from jaxdistill.data import augment as augment_lib
    from jaxdistill.models import ModelConfig
    from jaxdistill.train import Trainer, TrainConfig
    from tests.helpers import tiny_images

    seen = []

    @augment_lib.label_mixing
    def swap_to_uniform(key, images, targets):
        seen.append(targets.shape)
        return images, jnp.full_like(targets, 1.0 / targets.shape[-1])  # every label mixed into a uniform one

    name = "test_uniform_mixing"
    if name not in augment_lib._REGISTERED:
        augment_lib.register_augmentation(name, swap_to_uniform)
    images, labels = tiny_images(num_per_class=4, num_classes=2)
    net = ModelConfig.parse("mlp:8").build(2)
    trainer = Trainer(net, TrainConfig(epochs=30, batch_size=8, lr=0.5, momentum=0.0, augment=name,
                                       parallel="vmap"), images.shape[0])
    states = trainer.run(jax.random.PRNGKey(0)[None], images, labels)
    assert seen and seen[0] == (8, 2)  # hard labels arrive one-hot
    logits = net.apply({"params": jax.tree.map(lambda a: a[0], states.params)}, jnp.asarray(images), train=False)
    # trained on uniform targets, the network predicts ~1/2 for both classes: it learned the mixed labels
    np.testing.assert_allclose(jax.nn.softmax(logits), 0.5, atol=0.05)
    with pytest.raises(ConfigError, match="already registered"):
        augment_lib.register_augmentation(name, swap_to_uniform)


# ---- imbalanced training sets ---------------------------------------------------------------------------------------
class ConstantLogits(nn.Module):
    """Logits = a learned bias, whatever the image: the loss of each class is set by hand through the bias."""
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        return jnp.broadcast_to(self.param("bias", nn.initializers.zeros, (self.num_classes,)),
                                (x.shape[0], self.num_classes))


def test_balanced_class_weighting_gives_the_weighted_loss():
    # 3 examples of class 0, 1 of class 1; softmax p = (3/4, 1/4) everywhere. Weights n / (C n_c) = 2/3 and 2, so
    # the loss is the mean of the two classes' losses instead of the mean over examples.
    images, labels = np.zeros((4, 2, 2, 1), np.float32), np.array([0, 0, 1, 0], np.int32)
    net = ConstantLogits(2)
    state = {}
    for weighting in ("none", "balanced"):
        trainer = Trainer(net, TrainConfig(epochs=1, batch_size=4, class_weighting=weighting), 4)
        state = trainer.init_state(jax.random.PRNGKey(0), jnp.asarray(images))
        state = state._replace(params={"bias": jnp.log(jnp.array([3.0, 1.0]))})
        for targets in (labels, np.eye(2, dtype=np.float32)[labels]):  # soft labels count by their argmax
            _, loss = trainer.train_step(state, jax.random.PRNGKey(1), jnp.asarray(images), jnp.asarray(targets))
            want = (np.log(4 / 3) + np.log(4)) / 2 if weighting == "balanced" else (3 * np.log(4 / 3) + np.log(4)) / 4
            assert float(loss) == pytest.approx(want, rel=1e-6)
    weights = balanced_class_weights(jnp.asarray(labels), 2)
    np.testing.assert_allclose(weights, [2 / 3, 2 / 3, 2, 2 / 3], rtol=1e-6)
    # on a balanced set every weight is 1: the weighted loss is the plain one
    np.testing.assert_allclose(balanced_class_weights(jnp.asarray(LABELS), 2), 1.0)


def test_balanced_sampling_draws_every_class_equally_often():
    # 18 examples of class 0 to 2 of class 1; 2000 steps of 10 draws. Each draw is class 1 with probability 1/2, so
    # the fraction of 20000 draws has std 0.0035: a tolerance of 0.03 is 8.5 std (chance of failing ~1e-17, and the
    # draws are fixed by the key anyway). Plain shuffling gives 0.1.
    labels = jnp.asarray(np.r_[np.zeros(18), np.ones(2)].astype(np.int32))
    trainer = Trainer(ConstantLogits(2), TrainConfig(epochs=1, batch_size=10, sampling="balanced"), 20)
    assert trainer.steps_per_epoch == 2  # unchanged by the sampling
    idx, mask = jax.jit(jax.vmap(lambda t: trainer.batch_indices(jax.random.PRNGKey(0), t, labels)))(
        jnp.arange(2000))
    assert np.asarray(mask).min() == 1.0  # every row is a real draw
    assert abs(float(labels[idx].mean()) - 0.5) < 0.03
    counts = np.bincount(np.asarray(idx).ravel(), minlength=20)
    assert counts[18:].min() > 10 * counts[:18].max() / 2  # the two minority examples are drawn ~9x as often
    shuffled = make(batch_size=10).batch_indices(jax.random.PRNGKey(0), jnp.int32(0), labels)[0]
    assert sorted(np.asarray(shuffled).tolist()) == list(range(10))  # the default: one shuffled pass


@pytest.mark.parametrize("option", [{"class_weighting": "balanced"}, {"sampling": "balanced"}])
def test_imbalance_options_under_both_drivers_and_parallel_modes(option):
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    reference = make(epochs=3, driver="python", parallel="vmap", **option).run(keys, IMAGES, LABELS)
    other = make(epochs=3, driver="scan", parallel="sequential", **option).run(keys, IMAGES, LABELS)
    close(other.params, reference.params, rtol=2e-4, atol=2e-5)
    plain = make(epochs=3, driver="python", parallel="vmap").run(keys, IMAGES, LABELS)
    if "sampling" in option:  # other minibatches; class weights on this balanced set are all 1 (same run)
        assert not np.allclose(plain.params["Conv_0"]["kernel"], reference.params["Conv_0"]["kernel"])
    else:
        close(plain.params, reference.params, rtol=2e-5, atol=2e-6)


def test_imbalance_options_are_validated():
    with pytest.raises(ConfigError, match="class_weighting must be 'none' or 'balanced', got 'inverse'"):
        TrainConfig(class_weighting="inverse")
    with pytest.raises(ConfigError, match="sampling must be 'shuffle' or 'balanced'"):
        TrainConfig(sampling="oversample")
    with pytest.raises(ConfigError, match="choose one"):
        TrainConfig(class_weighting="balanced", sampling="balanced")
    with pytest.raises(ConfigError, match="another loss"):
        Trainer(NET, TrainConfig(class_weighting="balanced"), 10, loss=lambda logits, targets, mask: 0.0)
    trainer = make(sampling="balanced")
    state = trainer.init_state(jax.random.PRNGKey(0), jnp.asarray(IMAGES))
    with pytest.raises(ConfigError, match="labels as one array"):
        trainer.train_step(state, jax.random.PRNGKey(0), jnp.asarray(IMAGES), {"labels": jnp.asarray(LABELS)})


def test_cosine_schedule_decays_to_zero_and_bad_schedules_fail():
    from jaxdistill.models import make_model

    def trainer(**kw):
        return Trainer(make_model("mlp", 3, widths=(4,)), TrainConfig(epochs=4, batch_size=5, lr=0.1, **kw), 10)
    cosine = trainer(lr_schedule="cosine")
    assert cosine.total_steps == 8
    assert [float(cosine.schedule(t)) for t in (0, 4, 8)] == pytest.approx([0.1, 0.05, 0.0], abs=1e-7)
    step = trainer()  # DC's: x0.1 after half the epochs (4 of 8 steps)
    assert [float(step.schedule(t)) for t in (0, 3, 4, 7)] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


def test_adam_optimizer_matches_optax_adam_and_bad_names_fail():
    import optax

    from jaxdistill.models import make_model
    trainer = Trainer(make_model("mlp", 3, widths=(4,)), TrainConfig(epochs=1, lr=1e-3, optimizer="adam",
                                                                      weight_decay=0.0), 10)
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}
    ours, _ = trainer.tx.update(grads, trainer.tx.init(params), params)
    ref, _ = optax.adam(1e-3).update(grads, optax.adam(1e-3).init(params), params)
    np.testing.assert_allclose(np.asarray(ours["w"]), np.asarray(ref["w"]), rtol=1e-6)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")


def test_exponential_schedule_and_dropout_momentum_ramp_follow_the_epochs():
    from jaxdistill.models import make_model
    cfg = TrainConfig(epochs=4, batch_size=5, lr=1.0, lr_schedule="exponential", lr_gamma=0.0625,
                      optimizer="dropout_sgd", momentum=0.9, momentum_start=0.5, momentum_ramp=0.5)
    trainer = Trainer(make_model("mlp", 3, widths=(4,)), cfg, 10)  # 2 steps per epoch
    # lr x 0.0625 ** (epoch / 4), constant within an epoch
    assert [float(trainer.schedule(t)) for t in (0, 1, 2, 4, 7)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])
    # momentum 0.5 -> 0.9 linearly over the first 2 epochs, then 0.9
    assert [float(trainer.momentum(t)) for t in (0, 1, 2, 4, 7)] == pytest.approx([0.5, 0.5, 0.7, 0.9, 0.9])


def test_dropout_sgd_is_the_dropout_papers_momentum_update():
    from jaxdistill.train import dropout_sgd
    tx = dropout_sgd(lambda t: 0.1 * (t + 1), lambda t: jnp.where(t == 0, 0.5, 0.8))
    params = {"w": jnp.array([1.0, -2.0])}
    g1, g2 = {"w": jnp.array([0.5, 0.25])}, {"w": jnp.array([-1.0, 2.0])}
    u1, state = tx.update(g1, tx.init(params), params)
    u2, _ = tx.update(g2, state, params)
    v1 = -(1 - 0.5) * 0.1 * np.array([0.5, 0.25])
    v2 = 0.8 * v1 - (1 - 0.8) * 0.2 * np.array([-1.0, 2.0])
    np.testing.assert_allclose(np.asarray(u1["w"]), v1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(u2["w"]), v2, rtol=1e-6)


def test_max_norm_projects_hidden_units_only():
    from jaxdistill.train import project_max_norm
    params = {"Dense_0": {"Dense_0": {"kernel": jnp.array([[3.0, 0.1], [4.0, 0.1]]), "bias": jnp.array([9.0, 9.0])}},
              "Dense_1": {"Dense_0": {"kernel": jnp.array([[30.0], [40.0]]), "bias": jnp.array([9.0])}}}
    out = project_max_norm(params, 2.0)
    # unit 0's incoming weights (norm 5) scaled to norm 2; unit 1's (norm 0.14) untouched; biases and the output
    # layer (Dense_1, the last) untouched
    np.testing.assert_allclose(np.asarray(out["Dense_0"]["Dense_0"]["kernel"]), [[1.2, 0.1], [1.6, 0.1]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out["Dense_0"]["Dense_0"]["bias"]), [9.0, 9.0])
    np.testing.assert_allclose(np.asarray(out["Dense_1"]["Dense_0"]["kernel"]), [[30.0], [40.0]])


def test_trained_mlp_keeps_its_hidden_units_within_the_max_norm():
    from jaxdistill.models import make_model
    model = make_model("mlp", 2, widths=(6, 6))
    cfg = TrainConfig(epochs=3, batch_size=4, lr=5.0, momentum=0.9, weight_decay=0.0, optimizer="dropout_sgd",
                      max_norm=0.5, driver="python", parallel="vmap")
    states = Trainer(model, cfg, IMAGES.shape[0]).run(jax.random.PRNGKey(0)[None], IMAGES, LABELS)
    for name in ("Dense_0", "Dense_1"):
        norms = np.linalg.norm(np.asarray(states.params[name]["Dense_0"]["kernel"][0]), axis=0)
        assert norms.max() <= 0.5 + 1e-5 and norms.max() > 0.45  # at the bound: lr 5 pushes every unit to it
    with pytest.raises(ConfigError, match="max_norm"):
        TrainConfig(max_norm=-1.0)
    with pytest.raises(ConfigError, match="momentum_ramp"):
        TrainConfig(momentum_ramp=0.2)  # plain sgd keeps its momentum constant
    with pytest.raises(ConfigError, match="lr_gamma"):
        TrainConfig(lr_schedule="exponential", lr_gamma=2.0)


def test_a_workdir_from_before_a_train_config_field_resumes_under_its_default(tmp_path):
    import dataclasses

    from jaxdistill.checkpoint import RunDir
    from jaxdistill.train import train_config_defaults
    new = {"net": {"train": dataclasses.asdict(TrainConfig())}}
    old = {"net": {"train": {k: v for k, v in new["net"]["train"].items() if k not in ("max_norm", "momentum_ramp")}}}
    RunDir(tmp_path).open(old)
    with pytest.raises(ConfigError, match="max_norm"):
        RunDir(tmp_path).check_config(new)
    assert RunDir(tmp_path).open(new, defaults=train_config_defaults("net.train"))
    changed = {"net": {"train": {**new["net"]["train"], "max_norm": 3.0}}}
    with pytest.raises(ConfigError, match="max_norm"):  # a stored run with another value is still refused
        RunDir(tmp_path).open(changed, defaults=train_config_defaults("net.train"))
