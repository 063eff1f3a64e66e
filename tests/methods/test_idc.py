"""IDC: factor 1 with DC's pieces is DC; the reference's per-dataset settings; pixel space, clamping, init, refusals."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import policy
from jaxdistill.data.dsa import dsa_augment, idc_augment
from jaxdistill.errors import ConfigError
from jaxdistill.methods import make_method, method_config
from jaxdistill.methods.base import RunPlan, StepInputs
from jaxdistill.methods.idc import IDCState
from jaxdistill.methods.matching import l1_conv_distance
from jaxdistill.synthetic import decode_multi_formation
from tests.helpers import SMALL_MODEL, TEST_POLICY, TINY_DC, tiny_real

REAL = tiny_real(num_per_class=8, num_classes=2)
INPUTS = StepInputs(REAL, ())


@pytest.mark.slow
def test_with_factor_1_and_dc_s_pieces_the_step_is_dc_s_step():
    dc = make_method("dc", method_config("dc", ipc=2, **TINY_DC))
    idc = make_method("idc", method_config(
        "idc", ipc=2, factor=1, distance="ours", image_update="summed", net_data="synthetic", net_epochs=1,
        inner_loop=TINY_DC["outer_loop"], batch_real=TINY_DC["batch_real"], model=TINY_DC["model"], lr_img=0.1,
        momentum_net=0.0, weight_decay_net=0.0, match_strategy="none", net_strategy="none"))
    key, step_key = jax.random.split(jax.random.PRNGKey(0))
    with policy.use(**TEST_POLICY):
        state = jax.jit(dc.init)(key, INPUTS)
        dc_state, dc_metrics = jax.jit(dc.step)(state, step_key, INPUTS)
        idc_state = IDCState(state.synthetic.images, state.opt_state, state.iteration)
        idc_state, idc_metrics = jax.jit(idc.step)(idc_state, step_key, INPUTS)
    np.testing.assert_allclose(idc_state.stored, dc_state.synthetic.images, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(idc_state.opt_state), jax.tree.leaves(dc_state.opt_state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(idc_metrics["match_loss"], dc_metrics["match_loss"], rtol=1e-5)
    assert not np.allclose(idc_state.stored, state.synthetic.images)  # the step did move the images


def test_the_reference_s_settings_per_dataset_and_ipc():
    mnist1, mnist10 = (method_config("idc", dataset="mnist", ipc=i) for i in (1, 10))
    assert (mnist1.image_lr, mnist10.image_lr) == pytest.approx((1e-5, 1e-4))
    assert mnist1.strategy == "color_crop" and mnist1.pixel_mean == (0.1307,) and mnist1.factor == 2
    assert method_config("idc", dataset="mnist", ipc=1, factor=1).strategy == "color_crop_cutout"  # IDC-I
    fashion = method_config("idc", dataset="fashion_mnist", ipc=10)
    assert fashion.image_lr == pytest.approx(1e-4 * (28 / 32) ** 2) and fashion.strategy == "color_crop_cutout"
    assert method_config("idc", dataset="mnist", ipc=1, lr_img=0.5).image_lr == 0.5
    assert (mnist1.mix_prob, method_config("idc", dataset="mnist", ipc=1, factor=1).mix_prob, fashion.mix_prob) == (
        0.0, 0.5, 0.5)  # the network's CutMix between inner steps


PIXEL = dict(pixel_mean=(0.5,), pixel_std=(0.25,), model=SMALL_MODEL, batch_real=2, inner_loop=1, net_steps=1,
             match_strategy="color_crop")


def test_real_init_tiles_downsampled_real_images_in_pixel_space_and_exports_them_normalised():
    m = make_method("idc", method_config("idc", ipc=1, **PIXEL))
    state = m.init(jax.random.PRNGKey(1), INPUTS)
    stored = np.asarray(state.stored)
    assert stored.shape == (2, 8, 8, 1)
    syn = m.synthetic(state)
    assert syn.labels.tolist() == [0, 1]
    np.testing.assert_allclose(syn.images, (stored - 0.5) / 0.25, rtol=1e-6)  # exported: normalised, stored form
    assert int(syn.factor) == 2
    real = np.asarray(REAL.images)
    for c in range(2):
        own = real[np.asarray(REAL.labels) == c][:, ::2, ::2]
        for i in range(2):
            for j in range(2):  # every tile is a downsampled real image of the class
                tile = np.asarray(syn.images[c, 4 * i:4 * i + 4, 4 * j:4 * j + 4])
                assert np.min(np.abs(own - tile).reshape(len(own), -1).max(1)) < 1e-5
    decoded = decode_multi_formation(syn.images, 2)
    assert decoded.shape == (8, 8, 8, 1)


def test_pixel_space_images_are_clamped_to_0_1_at_the_start_of_an_iteration():
    m = make_method("idc", method_config("idc", ipc=1, lr_img=1e-12, **PIXEL))
    state = m.init(jax.random.PRNGKey(1), INPUTS)
    state = state._replace(stored=state.stored.at[0].set(3.0).at[1].set(-2.0))
    with policy.use(**TEST_POLICY):
        after, _ = jax.jit(m.step)(state, jax.random.PRNGKey(2), INPUTS)
    np.testing.assert_allclose(after.stored[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(after.stored[1], 0.0, atol=1e-6)


@pytest.mark.parametrize("kw, match", [(dict(factor=3), "does not divide"),
                                       (dict(ipc=3), "factor\\^2 x ipc = 12"),
                                       (dict(batch_real=9), "exceeds the smallest class")])
def test_runs_the_data_cannot_support_are_refused(kw, match):
    m = make_method("idc", method_config("idc", **{"ipc": 1, "batch_real": 2, **kw}))
    with pytest.raises(ConfigError, match=match):
        m.prepare(RunPlan.of("tiny", REAL, 1))


@pytest.mark.parametrize("kw, match", [(dict(image_update="each"), "image_update"), (dict(net_data="both"), "net_data"),
                                       (dict(pixel_mean=(0.5,)), "both pixel_mean and pixel_std"),
                                       (dict(match_strategy="warp"), "warp")])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        method_config("idc", **kw)


def test_l1_conv_distance_counts_convolution_kernels_only():
    g_real = {"conv": jnp.ones((3, 3, 1, 2)), "dense": jnp.ones((4, 2)), "bias": jnp.ones((2,))}
    g_syn = {"conv": jnp.zeros((3, 3, 1, 2)), "dense": jnp.zeros((4, 2)), "bias": jnp.zeros((2,))}
    assert float(l1_conv_distance(g_syn, g_real)) == 18.0


def test_idc_augmentation_is_colour_then_one_geometric_group_then_cutout_shared_by_siamese_calls():
    images = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
    key = jax.random.PRNGKey(5)
    out = idc_augment(key, images, "color_crop_cutout", siamese=True)
    k_color, k_geo, k_cut = jax.random.split(key, 3)
    manual = dsa_augment(k_cut, dsa_augment(k_geo, dsa_augment(k_color, images, "color", siamese=True), "crop",
                                            siamese=True), "cutout", siamese=True)
    np.testing.assert_allclose(out, manual, rtol=1e-6)
    other = idc_augment(key, images[:1], "color_crop_cutout", siamese=True)  # a batch of another size, same draw
    np.testing.assert_allclose(other[0], out[0], rtol=1e-6)
