"""Dataset Condensation with gradient matching (DC; Zhao, Mopuri, Bilen, ICLR 2021) and its augmented variant with
Differentiable Siamese Augmentation (DSA; Zhao, Bilen, ICML 2021).

One outer iteration (`step`):
  1. a fresh randomly initialised network (PyTorch-default init, see models/layers.py);
  2. `outer_loop` times: for every class c, the gradient of the cross-entropy of `batch_real` random real images of
     class c (a constant) is matched against the gradient of the class-c synthetic images (differentiated through)
     with a gradient distance (`matching.py`); the synthetic images take one SGD step (lr 0.1, momentum 0.5) on the
     summed distance; then, except after the last match, the network trains `inner_loop` epochs of plain SGD
     (lr 0.01, batch 256) on the current synthetic set.
(outer_loop, inner_loop) follow the reference's table for ipc 1/10/20/30/40/50.

DSA (`dsa_strategy` other than 'none'; method name 'dsa' sets the paper's strategy): before the gradients of class c
are taken, its real batch and its synthetic images go through the same randomly drawn differentiable augmentation
(one parameter draw shared by both batches, `jaxdistill.data.dsa`); the inner-loop training augments every batch with
per-image draws, as the reference's training epochs do.

Batch norm (norm='batchnorm'), as the reference: before every match the network runs in training mode on 16 real
images per class to update its running statistics, which are then frozen for the match (evaluation mode); the
inner-loop training runs in training mode.

The real-data gradients (256 images per class, nearly all of the work) are computed one class after another, chained
by `lax.optimization_barrier`, so that XLA keeps one class's activations alive at a time: peak memory is that of one
class, not of all of them. On CPU their convolutions take the fast weight-gradient kernel (models/layers.py,
`conv_fastgrad`); the synthetic gradients, on ipc images, take XLA's own conv.

Deviations from the reference (VICO-UoE/DatasetCondensation): synthetic images are initialised from real images by
default (the reference's flag default is noise; its paper results use real initialisation); DSA's random draws come
from `jax.random`, keyed per iteration and class, where the reference seeds PyTorch from the wall clock.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill.data.arrays import RealData, sample_class
from jaxdistill.data.dsa import DSA_STRATEGY, DSAParams, default_dsa_strategy, dsa_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods.base import Method, StepLoop, register_method, run_loop
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ConvNet
from jaxdistill.synthetic import INITS, SyntheticSet, init_synthetic
from jaxdistill.train import apply_model, cross_entropy, epoch_batch_indices, sgd_optimizer

# The reference's get_loops: ipc -> (outer_loop, inner_loop).
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
CLASS_LOOPS = ("unroll", "scan")


@dataclasses.dataclass(frozen=True)
class DCConfig:
    ipc: int = 1
    iterations: int = 1000
    init: str = "real"
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    outer_loop: int | None = None  # None: from LOOPS by ipc
    inner_loop: int | None = None
    distance: str = "ours"
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    pooling: str = "avgpooling"
    conv_impl: str = "auto"  # models/layers.py: 'auto' (per backend and shape) or a name in CONV_IMPLS
    dsa_strategy: str = "none"  # DSA: augmentation names joined by '_' (jaxdistill.data.dsa); 'none' is plain DC
    batch_bn: int = 16  # real images per class that set a batch-norm network's statistics before each match
    # Split each class's real batch into this many equal parts, taken one after another: the same gradient in less
    # memory. None: 2 on CPU (with cpu_tuning and Winograd convolutions an ipc-1 MNIST iteration peaks at 1.50 GiB,
    # against 1.84 with 1 chunk and 1.81 with 4), 1 elsewhere.
    real_chunks: int | None = None
    # How the per-class work runs inside a match: 'unroll' (each class its own code, as in the reference's Python
    # loop) or 'scan' (one `lax.scan` over classes and chunks: the same computation in a program about num_classes
    # times smaller, which compiles 3-4x faster; on a 2-core CPU an ipc-1 MNIST iteration runs 2x slower that way,
    # in 1.0 instead of 1.6 GiB: scripts/bench_dc.py --class-loop).
    class_loop: str = "unroll"

    # Tests compile the class loop as a scan (tests/methods/test_dc.py checks it equals the unrolled loop).
    TEST_OVERRIDES: ClassVar[dict] = {"batch_real": 2, "width": 8, "depth": 2, "outer_loop": 2, "inner_loop": 1,
                                      "class_loop": "scan"}

    def __post_init__(self):
        if self.ipc < 1:
            raise ConfigError(f"ipc (images per class) must be >= 1, got {self.ipc}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if (self.outer_loop is None or self.inner_loop is None) and self.ipc not in LOOPS:
            raise ConfigError(f"no (outer_loop, inner_loop) in the reference's table for ipc {self.ipc} "
                              f"(it has {sorted(LOOPS)}); set both outer_loop and inner_loop")
        if self.outer_loop is not None and self.outer_loop < 1:
            raise ConfigError(f"outer_loop must be >= 1, got {self.outer_loop}")
        if self.inner_loop is not None and self.inner_loop < 0:
            raise ConfigError(f"inner_loop must be >= 0, got {self.inner_loop}")
        parse_dsa_strategy(self.dsa_strategy)
        if self.real_chunks is not None and (self.real_chunks < 1 or self.batch_real % self.real_chunks):
            raise ConfigError(f"real_chunks must be >= 1 and divide batch_real ({self.batch_real}), "
                              f"got {self.real_chunks}")
        for name in ("iterations", "batch_real", "batch_train", "batch_bn"):
            if getattr(self, name) < (0 if name == "iterations" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        get_gradient_distance(self.distance)
        if self.class_loop not in CLASS_LOOPS:
            raise ConfigError(f"unknown class_loop {self.class_loop!r}; choose one of {', '.join(CLASS_LOOPS)}")

    @property
    def loops(self) -> tuple[int, int]:
        outer, inner = LOOPS.get(self.ipc, (None, None))
        return (self.outer_loop if self.outer_loop is not None else outer,
                self.inner_loop if self.inner_loop is not None else inner)


@dataclasses.dataclass(frozen=True)
class DSAConfig(DCConfig):
    """DC with the DSA paper's augmentation strategy."""
    dsa_strategy: str = DSA_STRATEGY
    # The shared battery checks the method interface; two operations keep a real switch between augmentations while
    # compiling in a fraction of the full strategy's time (every operation is tested in tests/data/test_dsa.py).
    TEST_OVERRIDES: ClassVar[dict] = {**DCConfig.TEST_OVERRIDES, "dsa_strategy": "crop_rotate"}


class DCState(NamedTuple):
    synthetic: SyntheticSet
    opt_state: optax.OptState  # of the synthetic images' SGD (momentum persists across iterations)
    iteration: jax.Array


def gradient_matching(config: DCConfig) -> Method:
    outer_loop, inner_loop = config.loops
    distance = get_gradient_distance(config.distance)
    image_opt = optax.sgd(config.lr_img, momentum=config.momentum_img)
    net_opt = sgd_optimizer(config.lr_net)
    use_dsa = bool(parse_dsa_strategy(config.dsa_strategy))
    real_chunks = config.real_chunks
    if real_chunks is None:
        real_chunks = 2 if jax.default_backend() == "cpu" and config.batch_real % 2 == 0 else 1
    dsa_params = DSAParams()
    scan_classes = config.class_loop == "scan"

    def augment(key, images, siamese):
        if not use_dsa:
            return images
        return dsa_augment(key, images, config.dsa_strategy, dsa_params, siamese=siamese)

    def network(real: RealData) -> ConvNet:
        return ConvNet(real.num_classes, width=config.width, depth=config.depth, norm=config.norm,
                       pooling=config.pooling, conv_impl=config.conv_impl)

    def init(key: jax.Array, real: RealData) -> DCState:
        if config.batch_real > real.min_class_count:
            raise ConfigError(f"batch_real {config.batch_real} exceeds the smallest class "
                              f"({real.min_class_count} images); lower batch_real")
        if config.norm == "batchnorm" and config.batch_bn > real.min_class_count:
            raise ConfigError(f"batch_bn {config.batch_bn} exceeds the smallest class "
                              f"({real.min_class_count} images); lower batch_bn")
        syn = init_synthetic(key, real, config.ipc, config.init)
        return DCState(syn, image_opt.init(syn.images), jnp.zeros((), jnp.int32))

    def class_gradient(net, params, stats, images, label):
        # Evaluation mode: a batch-norm network uses its frozen running statistics (no-op for other norms).
        labels = jnp.full((images.shape[0],), label, jnp.int32)
        return jax.grad(lambda p: cross_entropy(apply_model(net, p, stats, images, False)[0], labels))(params)

    def class_keys(key, c):
        k = jax.random.fold_in(key, c)
        return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)  # real-batch sampling, augmentation

    def real_gradients_scan(params, stats, key, real, net):
        """real_gradients as one scan over classes (and one over chunks): gradients stacked along a class axis."""
        def one_class(_, c):
            k_sample, k_aug = class_keys(key, c)
            batch = augment(k_aug, sample_class(k_sample, real, c, config.batch_real), True)
            chunks = batch.reshape(real_chunks, -1, *batch.shape[1:])

            def one_chunk(total, chunk):
                return jax.tree.map(jnp.add, total, class_gradient(net, params, stats, chunk, c)), None

            total, _ = jax.lax.scan(one_chunk, jax.tree.map(jnp.zeros_like, params), chunks)
            return None, jax.tree.map(lambda g: g / real_chunks, total)

        _, grads = jax.lax.scan(one_class, None, jnp.arange(real.num_classes))
        return jax.lax.stop_gradient(grads)

    def matching_loss_scan(images, params, stats, key, g_real, net):
        def one_class(total, xs):
            c, syn_c, g_real_c = xs
            _, k_aug = class_keys(key, c)
            return total + distance(class_gradient(net, params, stats, augment(k_aug, syn_c, True), c), g_real_c), None

        per_class = images.reshape(-1, config.ipc, *images.shape[1:])  # class-major (init_synthetic)
        total, _ = jax.lax.scan(one_class, jnp.zeros((), jnp.float32),
                                (jnp.arange(per_class.shape[0]), per_class, g_real))
        return total

    def real_gradients(params, stats, key, real, net):
        """Per-class gradients on real batches (constants), one class (and one chunk of it) at a time.

        The mean loss over the batch is the mean of its equal chunks' mean losses, so chunking changes only the
        order of float additions. Each chunk waits for the previous one's gradient (optimization_barrier), so the
        memory-minimising scheduler (cpu_tuning.py) keeps one chunk's activations alive at a time.
        """
        grads, previous = [], None
        for c in range(real.num_classes):
            k_sample, k_aug = class_keys(key, c)
            batch = augment(k_aug, sample_class(k_sample, real, c, config.batch_real), True)
            total = None
            for chunk in jnp.split(batch, real_chunks):
                if previous is not None:
                    chunk, _ = jax.lax.optimization_barrier((chunk, previous))
                previous = class_gradient(net, params, stats, chunk, c)
                total = previous if total is None else jax.tree.map(jnp.add, total, previous)
            grads.append(jax.tree.map(lambda g: g / real_chunks, total))
        return jax.lax.stop_gradient(grads)

    def matching_loss(images, params, stats, key, g_real, net):
        total = jnp.zeros((), jnp.float32)
        for c, g_real_c in enumerate(g_real):
            _, k_aug = class_keys(key, c)
            syn_c = jax.lax.dynamic_slice_in_dim(images, c * config.ipc, config.ipc)
            total = total + distance(class_gradient(net, params, stats, augment(k_aug, syn_c, True), c), g_real_c)
        return total

    def bn_statistics(params, stats, key, real, net):
        """The reference's handling of batch norm: running statistics from one training-mode pass on real data."""
        if not stats:
            return stats
        batch = jnp.concatenate([sample_class(jax.random.fold_in(key, c), real, c, config.batch_bn)
                                 for c in range(real.num_classes)])
        return apply_model(net, params, stats, batch, True)[1]

    def train_network(params, stats, opt_state, key, syn: SyntheticSet, net):
        n = syn.images.shape[0]
        batch = min(config.batch_train, n)
        steps = inner_loop * -(-n // batch)

        shuffle_key, aug_key = jax.random.split(key)

        def body(carry, t):
            params, stats, opt_state = carry
            idx, mask = epoch_batch_indices(shuffle_key, t, n, batch)
            images = augment(jax.random.fold_in(aug_key, t), syn.images[idx], False)

            def loss(p):
                logits, new_stats = apply_model(net, p, stats, images, True)
                return cross_entropy(logits, syn.labels[idx], mask), new_stats

            grads, stats = jax.grad(loss, has_aux=True)(params)
            updates, opt_state = net_opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), stats, opt_state), None

        # Unrolled on CPU, where a rolled loop body runs ~1.5x slower (methods/base.py); rolled elsewhere.
        unroll = steps if jax.default_backend() == "cpu" else 1
        (params, stats, opt_state), _ = jax.lax.scan(body, (params, stats, opt_state), jnp.arange(steps),
                                                     unroll=max(1, unroll))
        return params, stats, opt_state

    def begin(state: DCState, key: jax.Array, real: RealData):
        net_key, loop_key = jax.random.split(key)
        variables = network(real).init(net_key, state.synthetic.images[:1], train=True)
        params, stats = variables["params"], variables.get("batch_stats", {})
        return (state.synthetic, state.opt_state, params, stats, net_opt.init(params), jnp.zeros((), jnp.float32),
                loop_key, state.iteration)

    def match_keys(loop_key, ol):
        """Keys of match `ol`: batch-norm statistics, matching (real batches, DSA draws), the training after it."""
        return jax.random.split(jax.random.fold_in(loop_key, ol), 3)

    def match(carry, ol, real: RealData):
        """One match: gradients of real and synthetic batches, one SGD step on the images."""
        syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration = carry
        net = network(real)
        k_bn, k_match, _ = match_keys(loop_key, ol)
        stats = bn_statistics(params, stats, k_bn, real, net)
        if scan_classes:
            g_real = real_gradients_scan(params, stats, k_match, real, net)
            loss, grads = jax.value_and_grad(matching_loss_scan)(syn.images, params, stats, k_match, g_real, net)
        else:
            g_real = real_gradients(params, stats, k_match, real, net)
            loss, grads = jax.value_and_grad(matching_loss)(syn.images, params, stats, k_match, g_real, net)
        updates, opt_state = image_opt.update(grads, opt_state, syn.images)
        syn = syn._replace(images=optax.apply_updates(syn.images, updates))
        return syn, opt_state, params, stats, net_state, loss_sum + loss, loop_key, iteration

    def match_then_train(carry, ol, real: RealData):
        """Every match but the last is followed by `inner_loop` epochs of network training on the synthetic set."""
        syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration = match(carry, ol, real)
        _, _, k_train = match_keys(loop_key, ol)
        params, stats, net_state = train_network(params, stats, net_state, k_train, jax.lax.stop_gradient(syn),
                                                 network(real))
        return syn, opt_state, params, stats, net_state, loss_sum, loop_key, iteration

    def end(carry, real: RealData):
        syn, opt_state, _, _, _, loss_sum, _, iteration = match(carry, outer_loop - 1, real)
        metrics = {"match_loss": loss_sum / (real.num_classes * outer_loop)}
        return DCState(syn, opt_state, iteration + 1), metrics

    loop = StepLoop(begin, match_then_train, outer_loop - 1, end)
    return Method(init, functools.partial(run_loop, loop), lambda state: state.synthetic, loop)


register_method("dc", DCConfig, "gradient matching (Zhao et al., ICLR 2021)")(gradient_matching)
register_method("dsa", DSAConfig, "gradient matching with differentiable siamese augmentation (Zhao & Bilen, "
                                  "ICML 2021)",
                dataset_defaults=lambda dataset: {"dsa_strategy": default_dsa_strategy(dataset)})(gradient_matching)
