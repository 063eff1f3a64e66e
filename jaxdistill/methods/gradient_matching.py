"""The gradient-matching engine: the pure pieces that DC, DSA, IDC and PSG compose.

A match compares, for each *group* (a class for DC, DSA and IDC; one mixed-class batch for PSG), the gradient of a
network's loss on a real batch (a constant) with its gradient on the group's synthetic images (differentiated
through), and sums a gradient distance (`matching.py`) over groups:

    real_gradients   the groups' real-batch gradients, stacked on a leading group axis. The gradient function is a
                     parameter (`GradientFn`): `mean_gradient` for DC; PSG puts per-example clipping and noise there.
                     Each batch may be split into equal chunks (same gradient, less memory), chained so that the
                     memory-minimising scheduler keeps one chunk's activations alive at a time.
    matching_loss    the summed distance on the *decoded* synthetic images: `decode` maps the stored images to the
                     training images (identity for DC; IDC's multi-formation splits and upsamples), so the gradient
                     reaches the stored form.
    match            both, one optimiser step on the stored images, and the loss.
    train_network    the network's training between matches, on whatever `batch_at(t)` yields (the synthetic set for
                     DC, real data for IDC).
    group_loop       the one loop over groups. Its form, one copy of the work per group ('unroll', as a Python loop in
                     the reference) or a `lax.scan` (a program `groups` times smaller, faster to compile), is the
                     policy's (`jaxdistill.policy`), not the method's.

Every function is pure; keys are split by name: group g uses `group_keys(key, g)` = (sampling, augmentation), and its
real and synthetic batches share the augmentation key (DSA's siamese draw).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdistill.data.arrays import RealData, sample_class
from jaxdistill.train import apply_model, cross_entropy, epoch_batch_indices

PyTree = Any
Batch = Any  # a tuple (images, labels[, more]) of arrays with a leading example axis, images first
# (net, params, batch_stats, batch) -> gradient pytree shaped like params
GradientFn = Callable[[nn.Module, PyTree, PyTree, Batch], PyTree]


class Matching(NamedTuple):
    """What a gradient-matching method plugs into the engine (everything but the network's parameters)."""
    groups: int  # matches per network state: classes (DC) or 1 (PSG's mixed batch)
    real_batch: Callable[[jax.Array, jax.Array, Any], Batch]  # (k_sample, k_aug, g) -> group g's real batch
    syn_batch: Callable[[jax.Array, jax.Array, Any], Batch]  # (decoded images, k_aug, g) -> group g's synthetic batch
    real_gradient: GradientFn  # of a real batch (PSG: clipped, noised)
    syn_gradient: GradientFn  # of a synthetic batch
    distance: Callable[[PyTree, PyTree], jax.Array]  # (g_syn, g_real) -> scalar
    decode: Callable[[jax.Array], jax.Array]  # stored synthetic images -> training images
    real_chunks: int = 1  # equal parts each real batch is split into (must divide its size; 1 for PSG, whose noise
    #                       is drawn once per batch)


def class_matching(real: RealData, batch_real: int, images_per_class: int, augment: Callable, distance: Callable,
                   decode: Callable[[jax.Array], jax.Array] = lambda images: images, real_chunks: int = 1
                   ) -> Matching:
    """Matching per class (DC, DSA, IDC): group c pairs `batch_real` real images of class c with the class's
    `images_per_class` decoded synthetic images (class-major), both through `augment(key, images, siamese=True)`
    with the group's shared augmentation key."""
    def real_batch(k_sample, k_aug, c):
        images = augment(k_aug, sample_class(k_sample, real, c, batch_real), True)
        return images, jnp.full((batch_real,), c, jnp.int32)

    def syn_batch(decoded, k_aug, c):
        own = jax.lax.dynamic_slice_in_dim(decoded, c * images_per_class, images_per_class)
        return augment(k_aug, own, True), jnp.full((images_per_class,), c, jnp.int32)

    return Matching(real.num_classes, real_batch, syn_batch, mean_gradient, mean_gradient, distance, decode,
                    real_chunks)


def per_class_images(key: jax.Array, real: RealData, n: int) -> jax.Array:
    """n random real images of each class, class c drawn with fold_in(key, c) (e.g. to set batch-norm statistics)."""
    return jnp.concatenate([sample_class(jax.random.fold_in(key, c), real, c, n) for c in range(real.num_classes)])


def mean_gradient(net: nn.Module, params: PyTree, batch_stats: PyTree, batch: Batch) -> PyTree:
    """Gradient of the mean cross-entropy of (images, labels[, mask]); batch norm in evaluation mode (its frozen
    statistics, as the reference matches), a no-op for other norms."""
    images, labels, *mask = batch
    return jax.grad(lambda p: cross_entropy(apply_model(net, p, batch_stats, images, False)[0], labels,
                                            mask[0] if mask else None))(params)


def group_keys(key: jax.Array, group) -> tuple[jax.Array, jax.Array]:
    """(sampling key, augmentation key) of group `group` (an int or a traced int32)."""
    k = jax.random.fold_in(key, group)
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)


def group_loop(form: str, groups: int, body: Callable[[Any, Any], tuple[Any, Any]], carry: Any) -> tuple[Any, Any]:
    """for g in range(groups): carry, out_g = body(carry, g); returns (carry, outs), out_g = group_item(outs, g).
    form 'unroll': g is a Python int, each group is its own code and outs a list (no stacking copies); 'scan': one
    `lax.scan`, g traced, outs stacked on a leading axis."""
    if form == "scan":
        return jax.lax.scan(body, carry, jnp.arange(groups))
    outs = []
    for g in range(groups):
        carry, out = body(carry, g)
        outs.append(out)
    return carry, outs


def group_item(outs: Any, g) -> Any:
    """Group g's output of `group_loop`, whichever its form."""
    return outs[g] if isinstance(outs, list) else jax.tree.map(lambda a: a[g], outs)


def real_gradients(m: Matching, net: nn.Module, params: PyTree, batch_stats: PyTree, key: jax.Array,
                   form: str = "unroll") -> PyTree:
    """Every group's real-batch gradient (`group_item(grads, g)`); constants (stop_gradient).

    A batch split into equal chunks gives the mean of their gradients: the same value up to the order of float
    additions. Each chunk waits for the previous chunk's gradient (`optimization_barrier`), so XLA keeps one chunk's
    activations alive at a time: peak memory is that of one chunk, not of every group's batch.
    """
    def one_group(previous, g):
        k_sample, k_aug = group_keys(key, g)
        batch = m.real_batch(k_sample, k_aug, g)
        size = jax.tree.leaves(batch)[0].shape[0] // m.real_chunks
        total = None
        for i in range(m.real_chunks):
            # one chunk is the batch itself, whatever it holds (PSG's carries its noise key)
            chunk = batch if m.real_chunks == 1 else jax.tree.map(lambda a: a[i * size:(i + 1) * size], batch)
            if previous is not None:  # only the images wait: labels and masks stay constants XLA can fold
                images, _ = jax.lax.optimization_barrier((chunk[0], previous))
                chunk = (images, *chunk[1:])
            previous = m.real_gradient(net, params, batch_stats, chunk)
            total = previous if total is None else jax.tree.map(jnp.add, total, previous)
        return previous, jax.tree.map(lambda t: t / m.real_chunks, total)

    first = jax.tree.map(jnp.zeros_like, params) if form == "scan" else None  # a scan's carry needs a value
    _, grads = group_loop(form, m.groups, one_group, first)
    return jax.lax.stop_gradient(grads)


def matching_loss(m: Matching, stored: jax.Array, net: nn.Module, params: PyTree, batch_stats: PyTree,
                  key: jax.Array, g_real: PyTree, form: str = "unroll") -> jax.Array:
    """Sum over groups of distance(gradient on group g's decoded synthetic batch, g_real[g]); differentiable in
    `stored` (the stored synthetic images)."""
    decoded = m.decode(stored)

    def one_group(total, g):
        _, k_aug = group_keys(key, g)
        g_syn = m.syn_gradient(net, params, batch_stats, m.syn_batch(decoded, k_aug, g))
        return total + m.distance(g_syn, group_item(g_real, g)), None

    total, _ = group_loop(form, m.groups, one_group, jnp.zeros((), jnp.float32))
    return total


def match(m: Matching, stored: jax.Array, opt_state: optax.OptState, image_opt: optax.GradientTransformation,
          net: nn.Module, params: PyTree, batch_stats: PyTree, key: jax.Array, form: str = "unroll"
          ) -> tuple[jax.Array, optax.OptState, jax.Array]:
    """One match: real gradients, the matching loss and its gradient in the stored images, one optimiser step.
    Returns (new stored images, new optimiser state, loss)."""
    g_real = real_gradients(m, net, params, batch_stats, key, form)
    loss, grads = jax.value_and_grad(matching_loss, argnums=1)(m, stored, net, params, batch_stats, key, g_real, form)
    updates, opt_state = image_opt.update(grads, opt_state, stored)
    return optax.apply_updates(stored, updates), opt_state, loss


def batch_norm_statistics(net: nn.Module, params: PyTree, batch_stats: PyTree, images: jax.Array) -> PyTree:
    """The reference's handling of batch norm: running statistics from one training-mode pass on `images`, frozen
    for the match that follows; unchanged for networks without batch norm."""
    if not batch_stats:
        return batch_stats
    return apply_model(net, params, batch_stats, images, True)[1]


def epoch_batches(images: jax.Array, labels: jax.Array, key: jax.Array, batch_size: int,
                  augment: Callable[[jax.Array, jax.Array], jax.Array]) -> tuple[Callable, int]:
    """(batch_at, steps per epoch) for training on (images, labels) in shuffled epochs: batch_at(t) = (augmented
    images, labels, mask) of step t, the batch `min(batch_size, N)`, the last batch of an epoch padded and masked
    (`train.epoch_batch_indices`). `key` splits into the shuffling key and the augmentation key (fold_in(., t))."""
    n = images.shape[0]
    batch = min(batch_size, n)
    shuffle_key, aug_key = jax.random.split(key)

    def batch_at(t):
        idx, mask = epoch_batch_indices(shuffle_key, t, n, batch)
        return augment(jax.random.fold_in(aug_key, t), images[idx]), labels[idx], mask
    return batch_at, -(-n // batch)


def train_network(net: nn.Module, tx: optax.GradientTransformation, params: PyTree, batch_stats: PyTree,
                  opt_state: optax.OptState, batch_at: Callable[[jax.Array], Batch], steps: int, unroll: bool
                  ) -> tuple[PyTree, PyTree, optax.OptState]:
    """`steps` training steps (training mode) on `batch_at(t)` = (images, labels, mask) for t = 0..steps-1, as one
    `lax.scan`, unrolled when `unroll` (the policy's choice: a rolled body is slow on XLA:CPU)."""
    def body(carry, t):
        params, batch_stats, opt_state = carry
        images, labels, mask = batch_at(t)

        def loss(p):
            logits, new_stats = apply_model(net, p, batch_stats, images, True)
            return cross_entropy(logits, labels, mask), new_stats

        grads, batch_stats = jax.grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), None

    (params, batch_stats, opt_state), _ = jax.lax.scan(body, (params, batch_stats, opt_state), jnp.arange(steps),
                                                       unroll=max(1, steps if unroll else 1))
    return params, batch_stats, opt_state


__all__ = ["GradientFn", "Matching", "batch_norm_statistics", "class_matching", "epoch_batches", "group_item",
           "group_keys", "group_loop", "match", "matching_loss", "mean_gradient", "per_class_images", "real_gradients",
           "train_network"]
