"""Training networks: TrainState, the DC evaluation optimiser, and whole training runs as compiled code.

A training run is a pure function of (PRNG key, images, labels): step t draws its minibatch from the epoch's
permutation `permutation(fold_in(shuffle_key, epoch))` and its augmentation from `fold_in(key, t)`, so a run is
reproducible bit for bit and can be resumed from any step.

How the steps are driven is a per-backend choice of the policy (`jaxdistill.policy`; measured, see README
"Performance"):
- driver 'scan': the whole run is one `lax.scan`; right for GPU/TPU.
- driver 'python': one jitted step called from Python per step (asynchronous dispatch, no host sync). On XLA:CPU a
  rolled scan body runs several times slower than the same step jitted on its own, so this is the CPU default.
and how K networks (seeds) are trained:
- parallel 'vmap': one program over all K (right for GPU/TPU, where one small net leaves the chip idle);
- parallel 'sequential': one network after another (the CPU default: a 10-image step is already compute bound there,
  and vmapping per-network convolutions makes grouped convs that XLA:CPU runs slowly).

For imbalanced training sets (MHIST has about 2.2 benign HP images per precancerous SSA) two options correct for the
imbalance, one at a time, both off by default (the defaults are the programs above, unchanged):
- class_weighting 'balanced': example i's loss is weighted n / (C n_c) for its class c (n examples, n_c of class c,
  C classes present; sklearn's 'balanced' class weights), so every class carries the same total weight and the
  weights average 1 over the training set (the loss keeps its scale, the lr needs no retuning);
- sampling 'balanced': each minibatch is drawn with replacement with probability proportional to those weights, so
  every class is equally likely in every draw; an epoch keeps its number of steps.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdistill import policy
from jaxdistill.data.augment import get_augment, mixes_labels
from jaxdistill.errors import ConfigError, positive_finite

PyTree = Any


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (a pytree)."""
    params: PyTree
    batch_stats: PyTree  # {} for models without batch norm
    opt_state: PyTree
    step: jax.Array  # int32 scalar


CLASS_WEIGHTINGS = ("none", "balanced")
SAMPLINGS = ("shuffle", "balanced")
LR_SCHEDULES = ("step", "cosine", "exponential")
OPTIMIZERS = ("sgd", "adam", "dropout_sgd")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The DC evaluation protocol by default: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at
    half the epochs. `augment` names an augmentation of `jaxdistill.data.augment`."""
    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_drop_fraction: float = 0.5  # lr x0.1 after this fraction of the epochs; 1.0 = never
    # instead, when given: lr x lr_gamma after each of these fractions of the epochs (IDC's MultiStepLR at 2/3, 5/6)
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 0.1
    # 'step' (lr_drop_fraction / lr_milestones) | 'cosine' (cosine decay to 0 over the run) | 'exponential' (lr x
    # lr_gamma ** (epoch / epochs), decayed once per epoch: lr_gamma is then the factor over the whole run)
    lr_schedule: str = "step"
    # 'sgd' (PyTorch's, with `momentum`) | 'adam' (PyTorch's defaults; `momentum` unused) | 'dropout_sgd' (the
    # dropout papers' momentum, v <- p v - (1 - p) lr g, p ramping from momentum_start to `momentum`)
    optimizer: str = "sgd"
    momentum_start: float = 0.5  # dropout_sgd: the momentum at epoch 0, ramped linearly to `momentum` over ...
    momentum_ramp: float = 0.0  # ... this fraction of the epochs (0: `momentum` from the start)
    max_norm: float = 0.0  # > 0: each hidden unit's incoming weight vector projected to L2 norm <= max_norm per step
    augment: str = "none"
    driver: str = "auto"  # 'auto' | 'scan' | 'python'
    parallel: str = "auto"  # 'auto' | 'vmap' | 'sequential'
    class_weighting: str = "none"  # 'none' | 'balanced': loss weight n / (C n_c) per example (see module docstring)
    sampling: str = "shuffle"  # 'shuffle' (every example once per epoch) | 'balanced' (classes equally likely)

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not positive_finite(self.lr):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if self.driver not in ("auto", "scan", "python"):
            raise ConfigError(f"driver must be 'auto', 'scan' or 'python', got {self.driver!r}")
        if self.parallel not in ("auto", "vmap", "sequential"):
            raise ConfigError(f"parallel must be 'auto', 'vmap' or 'sequential', got {self.parallel!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ConfigError(f"class_weighting must be 'none' or 'balanced', got {self.class_weighting!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be 'shuffle' or 'balanced', got {self.sampling!r}")
        if self.class_weighting == "balanced" and self.sampling == "balanced":
            raise ConfigError("class_weighting='balanced' and sampling='balanced' both correct for class imbalance "
                              "and together over-correct it (the minority weighted twice); choose one")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.momentum_start < 1 or not 0 <= self.momentum_ramp < 1:
            raise ConfigError(f"momentum_start must be in [0, 1) and momentum_ramp a fraction of the epochs in [0, 1), "
                              f"got {self.momentum_start}, {self.momentum_ramp}")
        if self.momentum_ramp and self.optimizer != "dropout_sgd":
            raise ConfigError("momentum_ramp ramps dropout_sgd's momentum; the other optimizers keep theirs constant")
        if self.optimizer == "dropout_sgd" and not 0 <= self.momentum < 1:
            raise ConfigError(f"dropout_sgd needs momentum in [0, 1), got {self.momentum}")
        if self.max_norm < 0:
            raise ConfigError(f"max_norm must be >= 0 (0: no constraint), got {self.max_norm}")
        if self.lr_schedule == "exponential" and not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"the exponential schedule needs 0 < lr_gamma <= 1 (the lr factor over the whole run), "
                              f"got {self.lr_gamma}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        object.__setattr__(self, "lr_milestones", tuple(float(m) for m in self.lr_milestones))
        if any(not 0 < m < 1 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(self.lr_milestones):
            raise ConfigError(f"lr_milestones must be increasing fractions of the epochs in (0, 1), got "
                              f"{self.lr_milestones}")
        get_augment(self.augment)  # fails early, naming the known augmentations


def resolve_driver(driver: str) -> str:
    """'auto' -> the policy's Trainer driver ('python' on CPU, 'scan' elsewhere)."""
    return policy.current().train_driver if driver == "auto" else driver


def resolve_parallel(parallel: str) -> str:
    """'auto' -> the policy's way of running several networks ('sequential' on CPU, 'vmap' elsewhere)."""
    return policy.current().seeds if parallel == "auto" else parallel


def sgd_optimizer(lr: float | optax.Schedule, momentum: float = 0.0, weight_decay: float = 0.0
                  ) -> optax.GradientTransformation:
    """PyTorch-style SGD: weight decay added to the gradient before momentum, as torch.optim.SGD does."""
    return optax.chain(*coupled_weight_decay(weight_decay), optax.sgd(lr, momentum=momentum or None))


def coupled_weight_decay(weight_decay: float) -> list[optax.GradientTransformation]:
    """The transformations (none, or one) that add weight_decay * w to the gradient, PyTorch's L2 `weight_decay`,
    to put first in an optimiser's chain."""
    return [optax.add_decayed_weights(weight_decay)] if weight_decay else []


def adam_optimizer(lr: float | optax.Schedule, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """PyTorch-style Adam (betas 0.9, 0.999, eps 1e-8): weight decay, when given, added to the gradient (L2, as
    torch.optim.Adam's weight_decay), not decoupled."""
    return optax.chain(*coupled_weight_decay(weight_decay), optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))


def train_config_defaults(prefix: str) -> dict[str, Any]:
    """`RunDir.open` defaults for a TrainConfig stored under the dotted key `prefix`: a workdir whose config.json
    predates a field resumes as the field's default (which reproduces what the earlier version did)."""
    return {f"{prefix}.{f.name}": f.default for f in dataclasses.fields(TrainConfig)}


def dropout_sgd(lr: optax.Schedule, momentum: optax.Schedule) -> optax.GradientTransformation:
    """SGD with the momentum of the dropout papers (Hinton et al. 2012, appendix A; Srivastava et al. 2014):
    v <- p_t v - (1 - p_t) lr_t g, w <- w + v. The (1 - p_t) keeps the step's steady-state size lr_t g while the
    momentum p_t changes; both are schedules of the step count."""
    def init(params):
        return {"velocity": jax.tree.map(jnp.zeros_like, params), "count": jnp.zeros((), jnp.int32)}

    def update(grads, state, params=None):
        p, eta = momentum(state["count"]), lr(state["count"])
        velocity = jax.tree.map(lambda v, g: p * v - (1.0 - p) * eta * g, state["velocity"], grads)
        return velocity, {"velocity": velocity, "count": state["count"] + 1}

    return optax.GradientTransformation(init, update)


def output_layer(params: PyTree) -> str | None:
    """The name of the model's last top-level layer with a 2-D kernel (the highest-numbered `Dense_k` of an MLP):
    its units are the outputs, not hidden units."""
    def index(name):
        tail = name.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else -1
    dense = [k for k, v in params.items() if any(getattr(x, "ndim", 0) == 2 for x in jax.tree.leaves(v))]
    return max(dense, key=index) if dense else None


def project_max_norm(params: PyTree, max_norm: float) -> PyTree:
    """Every hidden unit's incoming weight vector (a column of each 2-D `kernel` but the output layer's) scaled
    down to L2 norm `max_norm` where it is longer; biases and the output layer as they are."""
    out_name = output_layer(params)

    def project(path, w):
        names = [getattr(k, "key", None) for k in path]
        if names[-1] != "kernel" or w.ndim != 2 or names[0] == out_name:
            return w
        norms = jnp.sqrt(jnp.sum(jnp.square(w), axis=0, keepdims=True))
        return w * jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-12))
    return jax.tree_util.tree_map_with_path(project, params)


def max_norm_constraint(max_norm: float) -> optax.GradientTransformation:
    """An update transformation (last in an optax chain) that makes params + updates satisfy `project_max_norm`:
    the dropout papers' max-norm constraint, a projection after every step."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError("max_norm_constraint needs the params passed to update()")
        new = project_max_norm(optax.apply_updates(params, updates), max_norm)
        return jax.tree.map(jnp.subtract, new, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def apply_model(model: nn.Module, params: PyTree, batch_stats: PyTree, images: jax.Array, train: bool,
                dropout_key: jax.Array | None = None) -> tuple[jax.Array, PyTree]:
    """Logits and the (possibly updated) batch statistics; handles batch norm and dropout uniformly."""
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    rngs = {"dropout": dropout_key} if dropout_key is not None else None
    if train and batch_stats:
        logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"], rngs=rngs)
        return logits, updates["batch_stats"]
    return model.apply(variables, images, train=train, rngs=rngs), batch_stats


def cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None,
                  weights: jax.Array | None = None) -> jax.Array:
    """Mean cross-entropy. labels: int (N,) hard labels, or float (N, C) probabilities (soft labels).

    mask: optional (N,) 0/1, rows with 0 left out; weights: optional (N,) per-example loss weights, the mean still
    taken over the (unmasked) examples, so weights that average 1 keep the loss's scale."""
    if labels.ndim == logits.ndim:
        per_example = optax.softmax_cross_entropy(logits, labels)
    else:
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    if weights is not None:
        per_example = per_example * weights
    if mask is None:
        return per_example.mean()
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def epoch_batch_indices(shuffle_key: jax.Array, step: jax.Array, num_examples: int, batch_size: int
                        ) -> tuple[jax.Array, jax.Array]:
    """Indices and 0/1 mask of minibatch `step` of a shuffled pass over `num_examples` (last batch padded).

    Matches a shuffled DataLoader without drop_last: every example once per epoch, the last batch smaller. Padding
    rows repeat real examples (so batch-norm statistics see real data) and carry mask 0 (no loss).
    """
    steps_per_epoch = -(-num_examples // batch_size)
    perm = epoch_permutation(shuffle_key, step // steps_per_epoch, num_examples)
    return batch_from_permutation(perm, step, num_examples, batch_size)


def epoch_permutation(shuffle_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """The order in which epoch `epoch` visits the examples."""
    return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_examples)


def example_classes(labels: jax.Array) -> jax.Array:
    """The class of each training example: hard labels (N,) as they are, soft labels (N, C) by their argmax."""
    if not isinstance(labels, (jax.Array, np.ndarray)) or labels.ndim not in (1, 2):
        raise ConfigError("class_weighting='balanced' and sampling='balanced' need the training labels as one array, "
                          f"(N,) hard or (N, C) soft; got {jax.tree.map(jnp.shape, labels)}")
    return jnp.argmax(labels, -1) if labels.ndim == 2 else labels


def balanced_class_weights(labels: jax.Array, num_classes: int) -> jax.Array:
    """(N,) weight n / (C n_c) of each example of class c: n examples, n_c of class c, C classes present in `labels`
    (sklearn's compute_class_weight('balanced')). Every present class gets the same total weight n / C, and the
    weights average 1. Soft labels count by their argmax."""
    classes = example_classes(labels)
    counts = jnp.bincount(classes, length=num_classes).astype(jnp.float32)
    present = jnp.sum(counts > 0).astype(jnp.float32)
    per_class = classes.shape[0] / (present * jnp.maximum(counts, 1.0))
    return per_class[classes]


def balanced_batch_indices(sample_key: jax.Array, step: jax.Array, weights: jax.Array, batch_size: int
                           ) -> tuple[jax.Array, jax.Array]:
    """Minibatch `step` drawn with replacement, example i with probability weights[i] / sum(weights) (with
    `balanced_class_weights`, every class equally likely); every row is real, so the mask is all ones."""
    idx = jax.random.choice(jax.random.fold_in(sample_key, step), weights.shape[0], (batch_size,), replace=True,
                            p=weights)
    return idx, jnp.ones(batch_size, jnp.float32)


def batch_from_permutation(perm: jax.Array, step: jax.Array, num_examples: int, batch_size: int
                           ) -> tuple[jax.Array, jax.Array]:
    """Minibatch `step` (indices and 0/1 mask) of the epoch whose order is `perm` (see epoch_batch_indices)."""
    steps_per_epoch = -(-num_examples // batch_size)
    pos = (step % steps_per_epoch) * batch_size + jnp.arange(batch_size)
    mask = (pos < num_examples).astype(jnp.float32)
    return perm[pos % num_examples], mask


LossFn = Callable[[jax.Array, PyTree, jax.Array], jax.Array]  # (logits, batch targets, mask) -> scalar


class Trainer:
    """Trains `model` on arrays (images (N,H,W,C) float, labels (N,) int or (N,C) soft) under `config`.

    Build one per (model, config, number of examples) and reuse it: its compiled functions are cached on it.
    `batch_size` larger than the data means full-batch steps of exactly the data (the synthetic-set case).
    `loss(logits, targets, mask)` replaces the cross-entropy: the labels passed to `run` may then be any pytree of
    per-example arrays (leading axis N), sliced per minibatch alike (e.g. hard labels and cached teacher logits for
    knowledge distillation, see `jaxdistill.kd`).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, num_examples: int, loss: LossFn = cross_entropy):
        if config.class_weighting != "none" and loss is not cross_entropy:
            raise ConfigError(f"class_weighting={config.class_weighting!r} weights the cross-entropy loss, and this "
                              "Trainer has another loss (e.g. knowledge distillation's): weight the examples inside "
                              "that loss, or use sampling='balanced'")
        self.model = model
        self.config = config
        self.loss = loss
        self.num_examples = num_examples
        self.batch_size = min(config.batch_size, num_examples)
        self.steps_per_epoch = -(-num_examples // self.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        drop_epoch = math.floor(config.epochs * config.lr_drop_fraction)
        spe = self.steps_per_epoch
        if config.lr_schedule == "cosine":
            schedule = optax.cosine_decay_schedule(config.lr, self.total_steps)
        elif config.lr_schedule == "exponential":
            def schedule(step, lr=config.lr, per_epoch=config.lr_gamma ** (1.0 / config.epochs)):
                return lr * per_epoch ** (step // spe)
        elif config.lr_milestones:
            boundaries: dict[int, float] = {}
            for fraction in config.lr_milestones:
                step = math.floor(config.epochs * fraction) * self.steps_per_epoch
                if 0 < step < self.total_steps:
                    boundaries[step] = boundaries.get(step, 1.0) * config.lr_gamma
            schedule = optax.piecewise_constant_schedule(config.lr, boundaries) if boundaries else config.lr
        elif 0 < drop_epoch < config.epochs:
            schedule = optax.piecewise_constant_schedule(
                config.lr, {drop_epoch * self.steps_per_epoch: 0.1})
        else:
            schedule = config.lr
        self.schedule = schedule if callable(schedule) else (lambda step, lr=schedule: lr)  # lr at a step
        self.momentum = lambda step, m=config.momentum: m  # momentum at a step (dropout_sgd's ramps)
        if config.optimizer == "adam":
            self.tx = adam_optimizer(schedule, config.weight_decay)
        elif config.optimizer == "dropout_sgd":
            ramp_epochs = max(1, math.floor(config.epochs * config.momentum_ramp))
            start, final = (config.momentum_start, config.momentum) if config.momentum_ramp else (config.momentum,) * 2

            def momentum(step):  # linear in whole epochs, as the papers ramp it
                return start + (final - start) * jnp.minimum(1.0, (step // spe) / ramp_epochs)
            self.momentum = momentum
            self.tx = optax.chain(*coupled_weight_decay(config.weight_decay), dropout_sgd(self.schedule, momentum))
        else:
            self.tx = sgd_optimizer(schedule, config.momentum, config.weight_decay)
        if config.max_norm:
            self.tx = optax.chain(self.tx, max_norm_constraint(config.max_norm))
        self.augment = get_augment(config.augment)
        self.driver = resolve_driver(config.driver)
        self.parallel = resolve_parallel(config.parallel)
        self._jit_cache: dict[str, Callable] = {}

    # ---- pure functions -------------------------------------------------------------------------------------
    def init_state(self, key: jax.Array, sample_images: jax.Array) -> TrainState:
        variables = self.model.init({"params": key, "dropout": key}, sample_images[:1], train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return TrainState(params, batch_stats, self.tx.init(params), jnp.zeros((), jnp.int32))

    def train_step(self, state: TrainState, key: jax.Array, images: jax.Array, labels: jax.Array,
                   perm: jax.Array | None = None) -> tuple[TrainState, jax.Array]:
        """One SGD step of the run keyed by `key` (the run's key; the step's randomness is fold_in(key, step)).

        `perm`: this epoch's `epoch_order(key, epoch)`, when the caller computed it once for the epoch (a sort of
        the whole training set per step otherwise: the cost of a small network's step on a large set). With
        class_weighting or sampling 'balanced' the class weights are computed here from the whole `labels`, so
        they follow whatever labels a network trains on (per-network labels included)."""
        shuffle_key, step_key = jax.random.split(key)
        idx, mask = self.batch_indices(shuffle_key, state.step, labels, perm)
        aug_key, dropout_key = jax.random.split(jax.random.fold_in(step_key, state.step))
        batch_labels = jax.tree.map(lambda a: a[idx], labels)
        if mixes_labels(self.augment):  # CutMix-like: images and their targets change together
            targets = batch_labels if batch_labels.ndim == 2 else jax.nn.one_hot(batch_labels, self.model.num_classes)
            batch, batch_labels = self.augment(aug_key, images[idx], targets)
        else:
            batch = self.augment(aug_key, images[idx])

        if self.config.class_weighting == "balanced":
            weights = balanced_class_weights(labels, self.model.num_classes)[idx]
            batch_loss = functools.partial(cross_entropy, weights=weights)
        else:
            batch_loss = self.loss

        def loss_fn(params):
            logits, new_stats = apply_model(self.model, params, state.batch_stats, batch, True, dropout_key)
            return batch_loss(logits, batch_labels, mask), new_stats

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, new_stats, opt_state, state.step + 1), loss

    def batch_indices(self, shuffle_key: jax.Array, step: jax.Array, labels: PyTree, perm: jax.Array | None = None
                      ) -> tuple[jax.Array, jax.Array]:
        """Indices into the training set and 0/1 mask of minibatch `step`: the shuffled pass of the epoch (from
        `perm` when given), or with sampling='balanced' a class-balanced draw with replacement keyed by
        fold_in(shuffle_key, step)."""
        if self.config.sampling == "balanced":
            weights = balanced_class_weights(labels, self.model.num_classes)
            return balanced_batch_indices(shuffle_key, step, weights, self.batch_size)
        if perm is None:
            return epoch_batch_indices(shuffle_key, step, self.num_examples, self.batch_size)
        return batch_from_permutation(perm, step, self.num_examples, self.batch_size)

    def epoch_order(self, key: jax.Array, epoch: jax.Array) -> jax.Array:
        """The example order of epoch `epoch` of the run keyed by `key` (what train_step computes itself)."""
        return epoch_permutation(jax.random.split(key)[0], epoch, self.num_examples)

    def train_steps(self, state: TrainState, key: jax.Array, images: jax.Array, labels: jax.Array,
                    num_steps: int, unroll: int | bool = 1) -> tuple[TrainState, jax.Array]:
        """`num_steps` steps as one lax.scan; returns the final state and the per-step losses."""
        def body(carry, _):
            return self.train_step(carry, key, images, labels)
        return jax.lax.scan(body, state, None, length=num_steps, unroll=unroll)

    # ---- compiled drivers -----------------------------------------------------------------------------------
    def _compiled(self, name: str, build: Callable[[], Callable]) -> Callable:
        if name not in self._jit_cache:
            self._jit_cache[name] = build()
        return self._jit_cache[name]

    def run(self, keys: jax.Array, images: jax.Array, labels: jax.Array, *, states: TrainState | None = None,
            progress: Callable[[int], None] | None = None,
            on_epoch: Callable[[int, TrainState], None] | None = None,
            per_network_labels: bool = False) -> TrainState:
        """Train len(keys) networks, one per key; returns their states stacked on a leading axis.

        `states` resumes runs from their `step` (as saved by `on_epoch`, which is called with (epoch, states) after
        every completed epoch; with parallel='sequential' it sees one network at a time). `progress(n)` is told of
        every n steps done, summed over networks. `per_network_labels`: every leaf of `labels` has a leading axis
        of len(keys), network k training on labels[k] (e.g. student k distilled from teacher k).
        """
        images = jnp.asarray(images)
        labels = jax.tree.map(jnp.asarray, labels)
        if images.shape[0] != self.num_examples:
            raise ConfigError(f"Trainer was built for {self.num_examples} examples, got {images.shape[0]}")
        for leaf in jax.tree.leaves(labels):
            if per_network_labels and leaf.shape[0] != keys.shape[0]:
                raise ConfigError(f"per-network labels need a leading axis of {keys.shape[0]} (one per network), "
                                  f"got shape {leaf.shape}")
            if leaf.shape[int(per_network_labels)] != self.num_examples:
                raise ConfigError(f"got {images.shape[0]} images but {leaf.shape[int(per_network_labels)]} "
                                  f"labels (or targets)")
        if self.parallel == "vmap" or keys.shape[0] == 1:
            return self._run_batched(keys, images, labels, states, progress, on_epoch, per_network_labels)
        done = []
        for i in range(keys.shape[0]):
            one = None if states is None else jax.tree.map(lambda a: a[i:i + 1], states)
            own = jax.tree.map(lambda a: a[i:i + 1], labels) if per_network_labels else labels
            done.append(self._run_batched(keys[i:i + 1], images, own, one, progress, on_epoch, per_network_labels))
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *done)

    def _run_batched(self, keys, images, labels, states, progress, on_epoch, per_network_labels=False):
        if states is None:
            init = self._compiled("init", lambda: jax.jit(jax.vmap(self.init_state, in_axes=(0, None))))
            states = init(keys, images)
        step = int(states.step[0])
        # The scan driver runs whole epochs per call, at least ~100 steps so that dispatch never dominates, or
        # exactly one epoch when the caller wants to see every epoch.
        epochs_per_call = 1 if on_epoch else max(1, -(-100 // self.steps_per_epoch))
        chunk = self.steps_per_epoch * epochs_per_call if self.driver == "scan" else 1
        # The Python driver computes each epoch's example order once, not in every step.
        per_epoch_order = self.driver == "python" and self.steps_per_epoch > 1 and self.config.sampling == "shuffle"
        order_fn = self._compiled("order", lambda: jax.jit(jax.vmap(self.epoch_order, in_axes=(0, None))))
        order, order_epoch = None, -1
        while step < self.total_steps:
            n = min(chunk, self.total_steps - step)
            if per_epoch_order:
                if step // self.steps_per_epoch != order_epoch:
                    order_epoch = step // self.steps_per_epoch
                    order = order_fn(keys, order_epoch)
                states = self._ordered_step_fn(per_network_labels)(states, keys, images, labels, order)
            else:
                states = self._steps_fn(n, per_network_labels)(states, keys, images, labels)
            step += n
            if progress:
                progress(n * keys.shape[0])
            if on_epoch and step % self.steps_per_epoch == 0:
                on_epoch(step // self.steps_per_epoch, states)
        return states

    def _ordered_step_fn(self, per_network_labels: bool) -> Callable:
        """Compiled (states, keys, images, labels, orders) -> states: one step given the epoch's example orders."""
        in_axes = (0, 0, None, 0 if per_network_labels else None, 0)
        return self._compiled(f"ordered{in_axes}", lambda: jax.jit(jax.vmap(
            lambda s, k, x, y, p: self.train_step(s, k, x, y, p)[0], in_axes=in_axes), donate_argnums=0))

    def _steps_fn(self, n: int, per_network_labels: bool = False) -> Callable:
        """Compiled (states, keys, images, labels) -> states doing n steps for each vmapped network."""
        in_axes = (0, 0, None, 0 if per_network_labels else None)
        if self.driver == "python":
            return self._compiled(f"step{in_axes}", lambda: jax.jit(jax.vmap(
                lambda s, k, x, y: self.train_step(s, k, x, y)[0], in_axes=in_axes), donate_argnums=0))
        return self._compiled(f"scan{n}{in_axes}", lambda: jax.jit(jax.vmap(
            lambda s, k, x, y: self.train_steps(s, k, x, y, n)[0], in_axes=in_axes), donate_argnums=0))


def predict_logits(model: nn.Module, params: PyTree, batch_stats: PyTree, images: jax.Array,
                   batch_size: int = 1000) -> jax.Array:
    """Inference logits of one network over `images` in chunks (batch norm uses running statistics)."""
    fn = _predict_fn(model)
    chunks = [fn(params, batch_stats, images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return jnp.concatenate(chunks)


_PREDICT_CACHE: dict[nn.Module, Callable] = {}  # Flax modules compare by value: one compiled fn per config


def _predict_fn(model: nn.Module) -> Callable:
    if model not in _PREDICT_CACHE:
        _PREDICT_CACHE[model] = jax.jit(lambda p, s, x: apply_model(model, p, s, x, train=False)[0])
    return _PREDICT_CACHE[model]


def predict_logits_stacked(model: nn.Module, params: PyTree, batch_stats: PyTree, images: jax.Array,
                           batch_size: int = 1000, vmap: bool = True) -> jax.Array:
    """Inference logits (K, N, C) of K networks whose params and batch_stats are stacked on a leading axis.

    vmap=True: the K networks run as one vmapped program on chunks of about batch_size / K images each, so one call
    holds about `batch_size` images' activations whatever K is; vmap=False: one network after another on chunks of
    `batch_size` (same compiled program, K = 1), for backends where vmapped convolutions run slowly (XLA:CPU).
    The last chunk is padded with repeated images (inference is per example) so every call has one shape.
    """
    images = jnp.asarray(images)
    num_networks, num_images = jax.tree.leaves(params)[0].shape[0], images.shape[0]
    if not vmap and num_networks > 1:
        return jnp.concatenate([predict_logits_stacked(
            model, *jax.tree.map(lambda a: a[k:k + 1], (params, batch_stats)), images, batch_size)
            for k in range(num_networks)])
    chunk = max(1, min(batch_size // num_networks, num_images))
    padded = -(-num_images // chunk) * chunk
    if padded > num_images:
        images = jnp.concatenate([images, images[:padded - num_images]])
    fn = _predict_stacked_fn(model)
    chunks = [fn(params, batch_stats, images[i:i + chunk]) for i in range(0, padded, chunk)]
    return jnp.concatenate(chunks, axis=1)[:, :num_images]


_PREDICT_STACKED_CACHE: dict[nn.Module, Callable] = {}


def _predict_stacked_fn(model: nn.Module) -> Callable:
    if model not in _PREDICT_STACKED_CACHE:
        _PREDICT_STACKED_CACHE[model] = jax.jit(jax.vmap(
            lambda p, s, x: apply_model(model, p, s, x, train=False)[0], in_axes=(0, 0, None)))
    return _PREDICT_STACKED_CACHE[model]


def accuracy(logits: jax.Array, labels: jax.Array) -> float:
    """Fraction of rows whose argmax logit is the label."""
    return float(jnp.mean(jnp.argmax(logits, -1) == labels))
