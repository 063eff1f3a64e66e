"""The gradient-matching engine with the plug-ins the next methods need, before those methods exist: PSG's one
mixed-class real batch with a per-example clipped gradient, and IDC's multi-formation decode (factor 2)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdistill.data.arrays import sample_class, sample_per_class
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ModelConfig
from jaxdistill.train import apply_model, cross_entropy
from tests import helpers

REAL = helpers.tiny_real(num_per_class=4, num_classes=3)
NET = ModelConfig.parse("convnet:depth=1,width=4").build(3)
PARAMS = NET.init(jax.random.PRNGKey(0), REAL.images[:1])["params"]
DISTANCE = get_gradient_distance("ours")
IPC = 2
SYN_IMAGES, SYN_LABELS = sample_per_class(jax.random.PRNGKey(1), REAL, IPC)


def clipped_gradient(clip: float):
    """PSG's shape of a real gradient: per-example gradients, each clipped to L2 norm `clip`, averaged."""
    def grad_fn(net, params, stats, batch):
        images, labels = batch

        def one(x, y):
            return jax.grad(lambda p: cross_entropy(apply_model(net, p, stats, x[None], False)[0], y[None]))(params)
        per_example = jax.vmap(one)(images, labels)
        norms = jnp.sqrt(sum(jnp.sum(jnp.square(g).reshape(g.shape[0], -1), -1)
                             for g in jax.tree.leaves(per_example)))
        scale = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-12))
        return jax.tree.map(lambda g: jnp.mean(g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), 0), per_example)
    return grad_fn


def mixed_batch(k_sample, k_aug, g):
    """One batch of 2 images of every class, with their labels (PSG matches one mixed batch)."""
    images, labels = sample_per_class(k_sample, REAL, 2)
    return images, labels


def whole_set(images, k_aug, g):
    return images, SYN_LABELS


def psg_matching(clip: float) -> gm.Matching:
    return gm.Matching(1, mixed_batch, whole_set, clipped_gradient(clip), gm.mean_gradient, DISTANCE,
                       lambda x: x)


@pytest.mark.slow
def test_mixed_class_batch_with_unbounded_clipping_is_the_mean_gradient():
    key = jax.random.PRNGKey(2)
    for form in ("unroll", "scan"):
        clipped = gm.real_gradients(psg_matching(np.inf), NET, PARAMS, {}, key, form)
        plain = gm.real_gradients(psg_matching(np.inf)._replace(real_gradient=gm.mean_gradient), NET, PARAMS, {}, key,
                                  form)
        for a, b in zip(jax.tree.leaves(gm.group_item(clipped, 0)), jax.tree.leaves(gm.group_item(plain, 0))):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_mixed_class_batch_clipping_bounds_the_real_gradient_and_the_match_runs():
    clip = 1e-3
    key = jax.random.PRNGKey(2)
    g_real = gm.real_gradients(psg_matching(clip), NET, PARAMS, {}, key)
    norm = float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(g_real))))
    assert norm <= clip * (1 + 1e-5)  # a mean of vectors of norm <= C has norm <= C
    opt = optax.sgd(0.1)
    new, _, loss = gm.match(psg_matching(clip), SYN_IMAGES, opt.init(SYN_IMAGES), opt, NET, PARAMS, {}, key)
    assert np.isfinite(float(loss)) and not np.allclose(new, SYN_IMAGES)


def decode_factor(factor: int):
    """IDC's multi-formation: each stored image holds factor x factor smaller images; decoding crops them and
    upsamples each back to full size (bilinear), class-major order kept (the stored image's crops stay together)."""
    def decode(stored):
        n, h, w, c = stored.shape
        ch, cw = h // factor, w // factor
        crops = stored.reshape(n, factor, ch, factor, cw, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, ch, cw, c)
        return jax.image.resize(crops, (crops.shape[0], h, w, c), "bilinear")
    return decode


def idc_matching(factor: int) -> gm.Matching:
    per_class = IPC * factor * factor

    def real_batch(k_sample, k_aug, c):
        return sample_class(k_sample, REAL, c, 4), jnp.full((4,), c, jnp.int32)

    def syn_batch(decoded, k_aug, c):
        return jax.lax.dynamic_slice_in_dim(decoded, c * per_class, per_class), jnp.full((per_class,), c, jnp.int32)

    return gm.Matching(3, real_batch, syn_batch, gm.mean_gradient, gm.mean_gradient, DISTANCE, decode_factor(factor),
                       2)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["unroll", "scan"])
def test_factor_two_decode_matches_decoded_images_and_updates_the_stored_ones(form):
    decode = decode_factor(2)
    assert decode(SYN_IMAGES).shape == (4 * SYN_IMAGES.shape[0], 8, 8, 1)
    key = jax.random.PRNGKey(5)
    g_real = gm.real_gradients(idc_matching(2), NET, PARAMS, {}, key, form)
    loss, grads = jax.value_and_grad(gm.matching_loss, argnums=1)(idc_matching(2), SYN_IMAGES, NET, PARAMS, {}, key,
                                                                   g_real, form)
    assert grads.shape == SYN_IMAGES.shape and float(jnp.abs(grads).sum()) > 0  # reaches the stored form
    # the loss is that of the decoded images, matched per class
    by_hand = 0.0
    decoded = decode(SYN_IMAGES)
    for c in range(3):
        own = decoded[c * 4 * IPC:(c + 1) * 4 * IPC]
        g_syn = gm.mean_gradient(NET, PARAMS, {}, (own, jnp.full((own.shape[0],), c)))
        by_hand += DISTANCE(g_syn, gm.group_item(g_real, c))
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-4)


def test_network_training_on_real_data_between_matches():
    """IDC trains the network on real data between matches: train_network takes any batch source."""
    tx = optax.sgd(0.1)

    def batch_at(t):
        images, labels = sample_per_class(jax.random.fold_in(jax.random.PRNGKey(7), t), REAL, 2)
        return images, labels, jnp.ones(labels.shape, jnp.float32)

    params, stats, _ = gm.train_network(NET, tx, PARAMS, {}, tx.init(PARAMS), batch_at, 5, unroll=False)
    before = cross_entropy(apply_model(NET, PARAMS, {}, REAL.images, False)[0], REAL.labels)
    after = cross_entropy(apply_model(NET, params, {}, REAL.images, False)[0], REAL.labels)
    assert float(after) < float(before)
