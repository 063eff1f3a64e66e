"""The named evaluation protocols (DC's and IDC's) and the lr milestones IDC's needs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.data.augment import get_augment
from jaxdistill.data.registry import REGISTRY
from jaxdistill.errors import ConfigError
from jaxdistill.evaluate import protocol_train_config
from jaxdistill.models import ModelConfig
from jaxdistill.train import Trainer, TrainConfig
from tests.helpers import SMALL_MODEL


def test_idc_protocol_is_the_reference_s_training_per_dataset():
    mnist = protocol_train_config("idc", REGISTRY["mnist"], factor=2)
    assert (mnist.batch_size, mnist.epochs, mnist.lr, mnist.momentum, mnist.weight_decay) == (64, 1000, 0.01, 0.9, 5e-4)
    assert mnist.lr_milestones == pytest.approx((2 / 3, 5 / 6)) and mnist.lr_gamma == 0.2
    assert mnist.augment == "idc:color_crop_scale_rotate"  # DSA's digit strategy without cutout
    fashion = protocol_train_config("idc", REGISTRY["fashion_mnist"], epochs=300, factor=2)
    assert fashion.augment == "idc:color_crop_flip_scale_rotate+cutmix:0.5" and fashion.epochs == 300
    # CutMix as the reference: not for MNIST sets of factor 2 (IDC), for IDC-I's and other methods' sets
    assert protocol_train_config("idc", REGISTRY["mnist"], factor=1).augment.endswith("+cutmix:0.5")
    dc = protocol_train_config("dc", REGISTRY["mnist"], augment="crop_scale_rotate")
    assert (dc.batch_size, dc.lr_drop_fraction, dc.lr_milestones) == (256, 0.5, ())
    with pytest.raises(ConfigError, match="unknown evaluation protocol"):
        protocol_train_config("mtt", REGISTRY["mnist"])


def test_lr_milestones_multiply_the_lr_after_each_fraction_of_the_epochs():
    cfg = TrainConfig(epochs=12, batch_size=4, lr_milestones=(2 / 3, 5 / 6), lr_gamma=0.2, momentum=0.0,
                      weight_decay=0.0)
    trainer = Trainer(ModelConfig.parse(SMALL_MODEL).build(2), cfg, num_examples=8)  # 2 steps per epoch
    params = {"w": jnp.ones(())}
    state = trainer.tx.init(params)
    lrs = []
    for _ in range(24):  # plain SGD: the update is -lr * gradient
        updates, state = trainer.tx.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    np.testing.assert_allclose(lrs[:16], 0.01, rtol=1e-6)  # epochs 0-7
    np.testing.assert_allclose(lrs[16:20], 0.002, rtol=1e-5)  # epochs 8-9: after 2/3 of 12
    np.testing.assert_allclose(lrs[20:], 0.0004, rtol=1e-5)  # epochs 10-11: after 5/6


@pytest.mark.parametrize("bad", [(0.5, 0.3), (1.0,), (0.0,)])
def test_milestones_must_be_increasing_fractions(bad):
    with pytest.raises(ConfigError, match="lr_milestones"):
        TrainConfig(lr_milestones=bad)


def test_idc_augmentation_by_name_draws_per_image():
    augment = get_augment("idc:color_crop")
    images = jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(0), (1, 8, 8, 1)), (4, 8, 8, 1))
    out = augment(jax.random.PRNGKey(1), images)
    assert out.shape == images.shape and not np.allclose(out[0], out[1])  # one image, four different draws
    with pytest.raises(ConfigError, match="names no DSA operations"):
        get_augment("idc:")


def test_networks_evaluated_before_are_reused_only_as_the_first_of_as_many_or_more():
    import dataclasses

    from jax._src.config import threefry_partitionable

    from jaxdistill.evaluate import EvalConfig, check_first_networks_reusable
    cfg = EvalConfig(num_models=3, model=SMALL_MODEL)
    check_first_networks_reusable(cfg, [{"accuracy": 0.5}] * 3)
    check_first_networks_reusable(cfg, [0.5])
    with pytest.raises(ConfigError, match="4 networks evaluated before, more than the 3"):
        check_first_networks_reusable(cfg, [0.5] * 4)
    with pytest.raises(ConfigError, match="lack the metrics balanced_accuracy"):
        check_first_networks_reusable(dataclasses.replace(cfg, metrics=("accuracy", "balanced_accuracy")), [0.5])
    with threefry_partitionable(False), pytest.raises(ConfigError, match="jax_threefry_partitionable is off"):
        check_first_networks_reusable(cfg, [0.5])  # split(key, 1) is not split(key, 3)[:1] there
