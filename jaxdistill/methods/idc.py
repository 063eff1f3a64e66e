"""IDC: dataset condensation with an efficient synthetic-data parameterisation (Kim et al., ICML 2022), on the
gradient-matching engine.

Multi-formation: each stored synthetic image holds factor x factor smaller images; `synthetic.decode_multi_formation`
cuts it into factor^2 crops and resizes each back to full size (bilinear), so ipc stored images per class train as
factor^2 x ipc images. The stored images live in pixel space [0, 1], are clamped there at the start of every outer
iteration (where the reference code clamps; the paper does not say) and are normalised with the dataset's mean and
std inside the matching, before the augmentation. The exported set (`synthetic(state)`) is the stored form,
normalised like every other set, with its factor: `load_synthetic` decodes it for training.

One outer iteration, following the reference code (snu-mllab/Efficient-Dataset-Condensation, condense.py): a fresh
ConvNet (PyTorch-default init) with its own SGD (lr 0.01, momentum 0.9, weight decay 5e-4); then `inner_loop` (100)
times: for every class c in turn, `batch_real` (64) random real images of c and all of c's decoded synthetic images
(at most `batch_syn_max`) go through one shared augmentation draw (`dsa.idc_augment`), their gradients are matched
with the l1 distance over the convolution kernels, and the images take one SGD step (momentum 0.5) on that class's
loss alone; then the network trains `net_steps` (8: the reference's 500 examples in batches of 64) steps on random
real batches of every class with per-image augmentation. lr_img is the reference's 1e-4 x ipc / 10 on MNIST
(Fashion-MNIST: x 0.765625, the reference's size rule applied to 28 px against 32).

The switches `image_update='summed'` (one step on the classes' summed distance, as DC) and `net_data='synthetic'`
(`net_epochs` epochs on the synthetic set between matches, with no training after the last match, as DC) with
factor 1, DC's distance and DC's optimisers make the step DC's step exactly (tested).

The network's training between inner steps uses CutMix (probability 0.5 per batch, Beta(1, 1)) where the reference
does: IDC-I on MNIST and every factor on Fashion-MNIST, not IDC on MNIST.

Deviations from the reference: initial real images are drawn at random per class and seed (the reference takes the
first ones in file order); the per-class real batches are drawn independently each time (the reference cycles a
shuffled sampler).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxdistill import policy
from jaxdistill.data.arrays import sample_class
from jaxdistill.data.augment import cutmix
from jaxdistill.data.dsa import idc_augment, parse_dsa_strategy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods.base import Method, RunPlan, StepLoop, check_minimums, method, register_method
from jaxdistill.methods.matching import get_gradient_distance
from jaxdistill.models import ModelConfig
from jaxdistill.synthetic import (INITS, SyntheticSet, class_major_labels, decode_multi_formation, encode_tiles)
from jaxdistill.train import sgd_optimizer

IMAGE_UPDATES = ("per_class", "summed")
NET_DATA = ("real", "synthetic")


@dataclasses.dataclass(frozen=True)
class IDCConfig:
    ipc: int = 1
    factor: int = 2  # 1: IDC-I
    init: str = "real"  # 'real': factor^2 real images per stored image, downsampled and tiled; 'noise'
    lr_img: float | None = None  # None: lr_img_base x ipc / 10 (the reference's rule)
    lr_img_base: float = 1e-4
    momentum_img: float = 0.5
    inner_loop: int = 100
    batch_real: int = 64
    batch_syn_max: int = 128
    distance: str = "l1_conv"
    match_strategy: str | None = None  # None: 'color_crop' for digits at factor > 1, else 'color_crop_cutout'
    net_strategy: str = "color_crop"  # the per-image augmentation of the network's training
    net_mix_prob: float | None = None  # CutMix per batch of that training; None: 0 for digits at factor > 1, else 0.5
    image_update: str = "per_class"
    net_data: str = "real"
    net_steps: int = 8  # net_data 'real': steps of batch_real images after every inner step
    net_epochs: int = 1  # net_data 'synthetic': epochs of batch_train images between matches
    batch_train: int = 256
    lr_net: float = 0.01
    momentum_net: float = 0.9
    weight_decay_net: float = 5e-4
    digits: bool = False  # the dataset is MNIST-like (the reference's strategy rule)
    pixel_mean: tuple[float, ...] | None = None  # the dataset's normalisation; None: images stay normalised
    pixel_std: tuple[float, ...] | None = None
    model: ModelConfig = ModelConfig("convnet")

    def __post_init__(self):
        object.__setattr__(self, "model", ModelConfig.parse(self.model))
        for name in ("pixel_mean", "pixel_std"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        check_minimums(self, ipc=1, factor=1, inner_loop=1, batch_real=1, batch_syn_max=1, net_steps=0,
                       net_epochs=0, batch_train=1)
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.image_update not in IMAGE_UPDATES:
            raise ConfigError(f"image_update must be one of {', '.join(IMAGE_UPDATES)}, got {self.image_update!r}")
        if self.net_data not in NET_DATA:
            raise ConfigError(f"net_data must be one of {', '.join(NET_DATA)}, got {self.net_data!r}")
        if (self.pixel_mean is None) != (self.pixel_std is None):
            raise ConfigError("give both pixel_mean and pixel_std, or neither")
        parse_dsa_strategy(self.strategy)
        parse_dsa_strategy(self.net_strategy)
        get_gradient_distance(self.distance)

    @property
    def image_lr(self) -> float:
        return self.lr_img if self.lr_img is not None else self.lr_img_base * self.ipc / 10

    @property
    def mix_prob(self) -> float:
        if self.net_mix_prob is not None:
            return self.net_mix_prob
        return cutmix_probability(self.digits, self.factor)

    @property
    def strategy(self) -> str:
        if self.match_strategy is not None:
            return self.match_strategy
        return "color_crop" if self.digits and self.factor > 1 else "color_crop_cutout"


def cutmix_probability(digits: bool, factor: int) -> float:
    """The reference's CutMix rule, for the network trained between matches and for IDC's evaluation: none on
    MNIST-like data at factor > 1 ("cutmix is not much effective" there), else per batch with probability 0.5."""
    return 0.0 if digits and factor > 1 else 0.5


def _dataset_defaults(dataset: str) -> dict[str, Any]:
    from jaxdistill.data.registry import REGISTRY
    spec = REGISTRY.get(dataset.lower())
    if spec is None:
        return {}
    digits = dataset.lower() == "mnist"
    size_rule = 1.0 if digits else (spec.image_shape[0] / 32) ** 2  # the reference's tune_lr_img
    return {"pixel_mean": tuple(spec.mean), "pixel_std": tuple(spec.std), "digits": digits,
            "lr_img_base": 1e-4 * size_rule}


class IDCState(NamedTuple):
    stored: jax.Array  # (num_classes * ipc, H, W, C), class-major: pixel space when the config has pixel_mean
    opt_state: optax.OptState
    iteration: jax.Array


class Carry(NamedTuple):
    stored: jax.Array
    opt_state: optax.OptState
    params: Any
    net_opt_state: optax.OptState
    loss_sum: jax.Array
    loop_key: jax.Array
    iteration: jax.Array


def idc(config: IDCConfig) -> Method:
    f, ipc = config.factor, config.ipc
    image_opt = optax.sgd(config.image_lr, momentum=config.momentum_img)
    net_opt = sgd_optimizer(config.lr_net, config.momentum_net, config.weight_decay_net)
    pixel = config.pixel_mean is not None
    mean = jnp.asarray(config.pixel_mean if pixel else 0.0, jnp.float32)
    std = jnp.asarray(config.pixel_std if pixel else 1.0, jnp.float32)

    def normalise(stored):  # pixel space -> the networks' input space (identity without pixel_mean)
        return (stored - mean) / std if pixel else stored

    def augment_shared(key, images, siamese=True):  # one draw for a class's real and synthetic batch
        return idc_augment(key, images, config.strategy, siamese=True)

    def class_decoded(normalised_stored, c):
        """Class c's decoded images, normalised: its ipc stored images -> factor^2 x ipc."""
        own = jax.lax.dynamic_slice_in_dim(normalised_stored, c * ipc, ipc)
        return decode_multi_formation(own, f)

    def one_class(real, c) -> gm.Matching:
        """Class c alone (one group): real batch and decoded synthetic images under one augmentation draw."""
        n_syn = min(f * f * ipc, config.batch_syn_max)

        def real_batch(k_sample, k_aug, g):
            return augment_shared(k_aug, sample_class(k_sample, real, c, config.batch_real)), \
                jnp.full((config.batch_real,), c, jnp.int32)

        def syn_batch(normalised_stored, k_aug, g):
            decoded = class_decoded(normalised_stored, c)
            if n_syn < decoded.shape[0]:  # the reference's random subset of at most batch_syn_max
                decoded = decoded[jax.random.permutation(jax.random.fold_in(k_aug, 7), decoded.shape[0])[:n_syn]]
            return augment_shared(k_aug, decoded), jnp.full((n_syn,), c, jnp.int32)

        return gm.Matching(1, real_batch, syn_batch, gm.mean_gradient, gm.mean_gradient,
                           get_gradient_distance(config.distance), normalise,
                           policy.current().chunks_for(config.batch_real))

    def all_classes(real) -> gm.Matching:
        """Every class summed into one update (DC's): class c's decoded images against its real batch."""
        return gm.class_matching(real, config.batch_real, f * f * ipc, augment_shared,
                                 get_gradient_distance(config.distance),
                                 decode=lambda stored: _class_major_decode(normalise(stored)),
                                 real_chunks=policy.current().chunks_for(config.batch_real))

    def _class_major_decode(normalised_stored):
        return jnp.concatenate([class_decoded(normalised_stored, c) for c in range(normalised_stored.shape[0] // ipc)])

    def init(key, inputs) -> IDCState:
        real = inputs.real
        if config.init == "real":  # factor^2 random real images per stored image, tiled
            keys = jax.random.split(key, real.num_classes)
            stored = jnp.concatenate([encode_tiles(sample_class(keys[c], real, c, f * f * ipc), f)
                                      for c in range(real.num_classes)])
            stored = stored * std + mean if pixel else stored
        else:
            shape = (real.num_classes * ipc,) + real.image_shape
            stored = jax.random.normal(key, shape, jnp.float32)
            stored = jnp.clip(stored / 4 + 0.5, 0.0, 1.0) if pixel else stored  # the reference's noise
        return IDCState(stored, image_opt.init(stored), jnp.zeros((), jnp.int32))

    def begin(state: IDCState, key, inputs) -> Carry:
        net_key, loop_key = jax.random.split(key)
        stored = jnp.clip(state.stored, 0.0, 1.0) if pixel else state.stored  # the reference clamps here
        params = config.model.build(inputs.real.num_classes).init(net_key, normalise(stored[:1]), train=True)["params"]
        return Carry(stored, state.opt_state, params, net_opt.init(params), jnp.zeros((), jnp.float32), loop_key,
                     state.iteration)

    def match(c: Carry, t, inputs) -> Carry:
        real, net = inputs.real, config.model.build(inputs.real.num_classes)
        k_match = jax.random.split(jax.random.fold_in(c.loop_key, t), 3)[1]
        if config.image_update == "summed":
            stored, opt_state, loss = gm.match(all_classes(real), c.stored, c.opt_state, image_opt, net, c.params, {},
                                               k_match, policy.current().class_loop)
            return c._replace(stored=stored, opt_state=opt_state, loss_sum=c.loss_sum + loss)

        def per_class(carry, cls):
            stored, opt_state, loss_sum = carry
            stored, opt_state, loss = gm.match(one_class(real, cls), stored, opt_state, image_opt, net, c.params, {},
                                               jax.random.fold_in(k_match, cls), "unroll")
            return (stored, opt_state, loss_sum + loss), None

        (stored, opt_state, loss_sum), _ = gm.group_loop(policy.current().class_loop, real.num_classes, per_class,
                                                         (c.stored, c.opt_state, c.loss_sum))
        return c._replace(stored=stored, opt_state=opt_state, loss_sum=loss_sum)

    def train(c: Carry, t, inputs) -> Carry:
        real, net = inputs.real, config.model.build(inputs.real.num_classes)
        train_key = jax.random.split(jax.random.fold_in(c.loop_key, t), 3)[2]
        if config.net_data == "synthetic":
            images = jax.lax.stop_gradient(_class_major_decode(normalise(c.stored)))
            labels = jnp.repeat(jnp.arange(real.num_classes, dtype=jnp.int32), f * f * ipc)
            batch_at, per_epoch = gm.epoch_batches(images, labels, train_key, config.batch_train,
                                                   lambda key, x: net_augment(key, x))
            steps = config.net_epochs * per_epoch
        else:
            n = real.images.shape[0]
            sample_key, aug_key = jax.random.split(train_key)

            def batch_at(step):
                idx = jax.random.choice(jax.random.fold_in(sample_key, step), n, (config.batch_real,), replace=False)
                k_aug, k_mix = jax.random.split(jax.random.fold_in(aug_key, step))
                images, labels = net_augment(k_aug, real.images[idx]), real.labels[idx]
                if config.mix_prob > 0:
                    images, labels = cutmix(k_mix, images, jax.nn.one_hot(labels, real.num_classes), config.mix_prob)
                return images, labels, jnp.ones((config.batch_real,), bool)
            steps = config.net_steps
        if steps == 0:
            return c
        params, _, net_state = gm.train_network(net, net_opt, c.params, {}, c.net_opt_state, batch_at, steps,
                                                policy.current().unroll_inner)
        return c._replace(params=params, net_opt_state=net_state)

    def net_augment(key, images):  # strategy 'none' leaves the images as they are
        return idc_augment(key, images, config.net_strategy, siamese=False)

    def body(c: Carry, t, inputs) -> Carry:
        return train(match(c, t, inputs), t, inputs)

    last_trains = config.net_data == "real"  # DC's structure: no training after its last match

    def end(c: Carry, inputs):
        if not last_trains:
            c = match(c, config.inner_loop - 1, inputs)
        return IDCState(c.stored, c.opt_state, c.iteration + 1), {
            "match_loss": c.loss_sum / (config.inner_loop * inputs.real.num_classes)}

    def synthetic(state: IDCState) -> SyntheticSet:
        labels = class_major_labels(state.stored.shape[0] // ipc, ipc)
        return SyntheticSet(normalise(state.stored), labels, None, jnp.asarray(f, jnp.int32))

    def check(plan: RunPlan):
        h, w = plan.image_shape[:2]
        if h % f or w % f:
            raise ConfigError(f"factor {f} does not divide the {h}x{w} images; choose a factor that does")
        if config.batch_real > plan.min_class_count:
            raise ConfigError(f"batch_real {config.batch_real} exceeds the smallest class ({plan.min_class_count} "
                              f"images); lower batch_real")
        if config.init == "real" and f * f * ipc > plan.min_class_count:
            raise ConfigError(f"init 'real' needs factor^2 x ipc = {f * f * ipc} images of every class; the smallest "
                              f"has {plan.min_class_count}")
        return {"decoded_images_per_class": f * f * ipc, "image_lr": config.image_lr,
                "pixel_space": pixel, "strategy": config.strategy, "cutmix_probability": config.mix_prob}

    length = config.inner_loop if last_trains else config.inner_loop - 1
    return method(init, synthetic, check=check, loop=StepLoop(begin, body, length, end))


register_method("idc", IDCConfig, "efficient synthetic-data parameterisation, multi-formation (Kim et al., ICML "
                                  "2022)", iterations=2000, dataset_defaults=_dataset_defaults)(idc)
