"""Transfer learning and knowledge distillation with ImageNet backbones (ResNet50V2 teacher, MobileNetV2 student).

The protocol (the course brief's, for MHIST; `TransferConfig` defaults):
- Adam, batch 32, inputs scaled to [-1, 1] as Keras's `preprocess_input` does for both models.
- Pretrained (`pretrained='imagenet'` or a Keras file): phase 'head', `head_epochs` (10) of feature extraction at
  `lr` with only the new head training; then phase 'finetune', `finetune_epochs` (25) at lr x `finetune_lr_factor`
  (0.1) with the top of the backbone unfrozen (`fine_tune_from`: ResNet50V2's last stage, MobileNetV2 from Keras
  layer 100, as the Keras guide). Each phase starts a fresh Adam state, as Keras does when the model is compiled
  again. The backbone's batch norm runs in inference mode throughout (see `jaxdistill.models.applications`).
- From random initialisation (`pretrained=None`) there is nothing to extract: every layer trains in both phases
  ('all' at lr, then 'all' at lr x 0.1, the same schedule), batch norm in training mode.
- Augmentation suited to histology (`augment`): 'histology' = a random one of the 8 flip / 90-degree views
  (the dihedral group: tissue has no up or left) and mild colour jitter (brightness +-0.1, contrast and saturation
  x[0.9, 1.1], in [0, 1] pixel units); 'dihedral' = the views alone; 'none'.
- Knowledge distillation (`temperature` set): the student's loss is `kd.kd_loss` against the fine-tuned teacher's
  logits *of the same view*. The teacher is frozen and deterministic in inference mode, so its logits are computed
  once per discrete view (8 per training image, `teacher_view_logits`) and cached, and KD students train with
  augment='dihedral' (colour jitter off, which the cache could not reproduce). Student k learns from teacher k.
- `class_weighting='balanced'` weights the cross-entropy per class (n / (C n_c), `train.balanced_class_weights`);
  with KD it weights the hard-label term.

Several seeds train as one vmapped program or one after another (the policy's `seeds` choice, as everywhere);
each run checkpoints after every epoch in its workdir and resumes from it.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxdistill import metrics
from jaxdistill.checkpoint import RunDir
from jaxdistill.errors import ConfigError, DivergedError, positive_finite
from jaxdistill.kd import check_kd_settings, kd_loss
from jaxdistill.models import ModelConfig
from jaxdistill.models.applications import APPLICATIONS, DEFAULT_FINE_TUNE_FROM, HEAD_LAYERS, trainable_mask
from jaxdistill.models.keras_weights import import_keras_weights
from jaxdistill.train import (TrainState, apply_model, balanced_class_weights, cross_entropy, epoch_batch_indices,
                              predict_logits_stacked, resolve_parallel)

AUGMENTATIONS = ("histology", "dihedral", "none")
NUM_VIEWS = 8


# ---- augmentation -------------------------------------------------------------------------------------------------
def dihedral_view(image: jax.Array, view: jax.Array) -> jax.Array:
    """View `view` (0..7) of one square image (H, W, C): a left-right flip when view >= 4, then view % 4 quarter
    turns counter-clockwise. View 0 is the image itself."""
    flipped = jnp.where(view >= 4, image[:, ::-1], image)
    turns = [jnp.rot90(flipped, k, axes=(0, 1)) for k in range(4)]
    return jax.lax.switch(view % 4, [lambda t=t: t for t in turns])


def colour_jitter(key: jax.Array, image: jax.Array, strength: float = 0.1) -> jax.Array:
    """Mild colour jitter of one image in [-1, 1]: brightness +- strength, contrast and saturation x[1 - s, 1 + s]
    (s = strength), in [0, 1] pixel units, clipped back into range."""
    kb, kc, ks = jax.random.split(key, 3)
    x = (image + 1.0) / 2.0
    x = x + jax.random.uniform(kb, (), minval=-strength, maxval=strength)
    mean = jnp.mean(x)
    x = (x - mean) * jax.random.uniform(kc, (), minval=1 - strength, maxval=1 + strength) + mean
    grey = jnp.mean(x, axis=-1, keepdims=True)
    x = (x - grey) * jax.random.uniform(ks, (), minval=1 - strength, maxval=1 + strength) + grey
    return jnp.clip(x, 0.0, 1.0) * 2.0 - 1.0


def augment_batch(kind: str, key: jax.Array, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(augmented images, the dihedral view of each (B,) int32) for a batch (B, H, W, C) in [-1, 1]."""
    if kind == "none":
        return images, jnp.zeros(images.shape[0], jnp.int32)
    kv, kj = jax.random.split(key)
    views = jax.random.randint(kv, (images.shape[0],), 0, NUM_VIEWS)
    out = jax.vmap(dihedral_view)(images, views)
    if kind == "histology":
        out = jax.vmap(colour_jitter)(jax.random.split(kj, images.shape[0]), out)
    return out, views


# ---- the configuration --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training: its epochs, learning rate, which layers train (None: the head only; 'all'; or a Keras
    layer index / name from which the backbone trains) and whether batch norm runs in inference mode."""
    name: str
    epochs: int
    lr: float
    fine_tune_from: Any
    frozen_bn: bool


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """One model trained on MHIST by the transfer protocol (see the module docstring)."""
    model: str = "resnet50v2"  # a ModelConfig spelling: 'resnet50v2', 'mobilenetv2:alpha=0.35'
    pretrained: str | None = None  # None (random init), 'imagenet' or a Keras weights file
    batch_size: int = 32
    lr: float = 1e-4
    head_epochs: int = 10
    finetune_epochs: int = 25
    finetune_lr_factor: float = 0.1
    fine_tune_from: str | int | None = None  # None: the model's default (DEFAULT_FINE_TUNE_FROM)
    dropout: float = 0.2
    augment: str = "histology"
    class_weighting: str = "none"  # 'none' | 'balanced'
    seeds: tuple = (0, 1, 2)
    temperature: float | None = None  # set: knowledge distillation from a teacher's view logits
    alpha: float = 0.5  # weight of the hard-label term under KD

    def __post_init__(self):
        model = ModelConfig.parse(self.model)
        if model.name not in APPLICATIONS:
            raise ConfigError(f"transfer learning takes {' or '.join(APPLICATIONS)}, got {self.model!r}")
        object.__setattr__(self, "model", str(model))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"give one or more distinct seeds, got {list(self.seeds)}")
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.class_weighting not in ("none", "balanced"):
            raise ConfigError(f"class_weighting must be 'none' or 'balanced', got {self.class_weighting!r}")
        if (self.batch_size < 1 or not positive_finite(self.lr) or self.head_epochs < 0
                or self.finetune_epochs < 0):
            raise ConfigError("batch_size >= 1, a finite lr > 0 and non-negative epochs, please")
        if self.head_epochs + self.finetune_epochs < 1:
            raise ConfigError("train for at least one epoch (head_epochs + finetune_epochs >= 1)")
        if self.temperature is not None:
            check_kd_settings(self.temperature, self.alpha)
            if self.augment == "histology":
                raise ConfigError("a KD student learns from the teacher's logits cached per flip / 90-degree view, "
                                  "which colour jitter would change: use augment='dihedral' (or 'none')")

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.parse(self.model)

    def build(self, num_classes: int):
        return self.model_config.build(num_classes, dropout=self.dropout, frozen_bn=self.pretrained is not None)

    def phases(self) -> list[Phase]:
        low = self.lr * self.finetune_lr_factor
        if self.pretrained is None:
            return [p for p in (Phase("all", self.head_epochs, self.lr, "all", False),
                                Phase("all_low_lr", self.finetune_epochs, low, "all", False)) if p.epochs]
        start = DEFAULT_FINE_TUNE_FROM[self.model_config.name] if self.fine_tune_from is None else self.fine_tune_from
        return [p for p in (Phase("head", self.head_epochs, self.lr, None, True),
                            Phase("finetune", self.finetune_epochs, low, start, True)) if p.epochs]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        out["phases"] = [dataclasses.asdict(p) for p in self.phases()]
        return out


# ---- training -----------------------------------------------------------------------------------------------------
def _mask(model, params, fine_tune_from) -> Any:
    if fine_tune_from == "all":
        return jax.tree.map(lambda _: True, params)
    return trainable_mask(model, params, fine_tune_from)


class TransferTrainer:
    """Compiled training of one `TransferConfig` on (images (N, H, W, 3) in [-1, 1], labels (N,)): an Adam step per
    phase (frozen layers get no gradient: their backward pass is not even computed) and the initial states."""

    def __init__(self, config: TransferConfig, num_classes: int, num_examples: int):
        self.config = config
        self.num_classes = num_classes
        self.model = config.build(num_classes)
        self.num_examples = num_examples
        self.batch_size = min(config.batch_size, num_examples)
        self.steps_per_epoch = -(-num_examples // self.batch_size)
        self.phases = config.phases()
        self._steps: dict[str, Callable] = {}

    def init_state(self, key: jax.Array, sample: jax.Array, backbone: dict | None = None) -> TrainState:
        """A fresh network from `key`; with `backbone` ({'params', 'batch_stats'} from `load_pretrained`) every
        layer but the head is taken from it (each seed keeps its own randomly initialised head)."""
        variables = self.model.init({"params": key, "dropout": key}, sample[:1], train=False)
        params, stats = variables["params"], variables["batch_stats"]
        if backbone is not None:
            params = {name: params[name] if name in HEAD_LAYERS else backbone["params"][name] for name in params}
            stats = backbone["batch_stats"]
        return TrainState(params, stats, self.adam(self.phases[0]).init(params), jnp.zeros((), jnp.int32))

    def adam(self, phase: Phase) -> optax.GradientTransformation:
        """Keras's Adam (epsilon 1e-7) with the phase's lr held in the optimizer state, so phases that differ only in
        lr share one compiled step (and one state layout for checkpoints)."""
        return optax.inject_hyperparams(optax.adam)(learning_rate=phase.lr, eps=1e-7)

    def phase_at(self, epoch: int) -> tuple[int, Phase]:
        """The index and phase that epoch `epoch` (0-based) belongs to."""
        end = 0
        for i, phase in enumerate(self.phases):
            end += phase.epochs
            if epoch < end:
                return i, phase
        return len(self.phases) - 1, self.phases[-1]

    def step_fn(self, phase: Phase, kd: bool) -> Callable:
        """Compiled (states, keys, images, labels, teacher_view_logits | None) -> (states, losses), vmapped over
        the leading network axis of states, keys (and teacher logits)."""
        name = f"{phase.fine_tune_from}{phase.frozen_bn}{kd}"
        if name in self._steps:
            return self._steps[name]
        model, cfg = self.model, self.config
        tx = self.adam(phase)

        def step(state, key, images, labels, teacher):
            shuffle_key, step_key = jax.random.split(key)
            idx, mask = epoch_batch_indices(shuffle_key, state.step, self.num_examples, self.batch_size)
            aug_key, dropout_key = jax.random.split(jax.random.fold_in(step_key, state.step))
            batch, views = augment_batch(cfg.augment, aug_key, images[idx])
            batch_labels = labels[idx]
            weights = (balanced_class_weights(labels, self.num_classes)[idx]
                       if cfg.class_weighting == "balanced" else None)
            trainable = _mask(model, state.params, phase.fine_tune_from)

            def loss_fn(params):
                logits, new_stats = apply_model(model, params, state.batch_stats, batch, True, dropout_key)
                if teacher is None:
                    return cross_entropy(logits, batch_labels, mask, weights), new_stats
                return kd_loss(logits, teacher[idx, views], batch_labels, cfg.temperature, cfg.alpha, mask,
                               weights), new_stats

            (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            # Frozen layers: a zero gradient that does not depend on the backward pass, so XLA drops it.
            grads = jax.tree.map(lambda g, t: g if t else jnp.zeros_like(g), grads, trainable)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            return TrainState(params, new_stats, opt_state, state.step + 1), loss

        in_axes = (0, 0, None, None, 0 if kd else None)
        self._steps[name] = jax.jit(jax.vmap(step, in_axes=in_axes), donate_argnums=0)
        return self._steps[name]


def load_pretrained(config: TransferConfig, num_classes: int, image_shape: tuple[int, ...], path: str | Path
                    ) -> tuple[dict, dict]:
    """({'params', 'batch_stats'} with every backbone layer from the Keras file at `path`, the importer's facts).
    The head is as initialised with seed 0 and unused: each seed initialises its own (`TransferTrainer.init_state`)."""
    model = config.build(num_classes)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params, stats, facts = import_keras_weights(path, variables["params"], variables["batch_stats"])
    return {"params": params, "batch_stats": stats}, facts


def train_transfer(workdir: str | Path, config: TransferConfig, images: np.ndarray, labels: np.ndarray,
                   num_classes: int, weights: dict | None = None, teacher_view_logits: np.ndarray | None = None,
                   progress: bool = True, description: str = "train") -> TrainState:
    """Train one network per seed of `config` on (images in [-1, 1], labels); returns the stacked final states.

    weights: from `load_pretrained` (required when config.pretrained is set): every seed starts from the same
    backbone, its own head. teacher_view_logits (K, N, 8, C): network k learns from teacher k's logits of each view
    (`teacher_view_logits`). Checkpoints after every epoch in `workdir` and resumes from the newest."""
    if (config.pretrained is not None) != (weights is not None):
        raise ConfigError("pass the pretrained weights (load_pretrained) exactly when config.pretrained is set")
    if (config.temperature is not None) != (teacher_view_logits is not None):
        raise ConfigError("a KD config (temperature set) needs the teacher's view logits, and only it")
    seeds = list(config.seeds)
    trainer = TransferTrainer(config, num_classes, int(labels.shape[0]))
    images, labels = jnp.asarray(images), jnp.asarray(labels, jnp.int32)
    teacher = None if teacher_view_logits is None else jnp.asarray(teacher_view_logits, jnp.float32)
    if teacher is not None and teacher.shape != (len(seeds), labels.shape[0], NUM_VIEWS, num_classes):
        raise ConfigError(f"teacher view logits must be (seeds, N, 8, classes) = "
                          f"{(len(seeds), labels.shape[0], NUM_VIEWS, num_classes)}, got {teacher.shape}")
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    states = jax.jit(jax.vmap(lambda key: trainer.init_state(key, images, weights)))(keys)
    run = RunDir(workdir)
    run.open({"kind": "transfer_train", **config.to_dict(), "num_examples": int(labels.shape[0]),
              "teacher_view_logits": None if teacher is None else list(teacher.shape)})
    total_epochs = sum(p.epochs for p in trainer.phases)
    restored = run.restore(states)
    epoch = 0
    if restored is not None:
        epoch, states = restored[0], jax.tree.map(jnp.asarray, restored[1])
        run.truncate_metrics(epoch)
    sequential = resolve_parallel("auto") == "sequential" and len(seeds) > 1
    with tqdm(total=total_epochs * trainer.steps_per_epoch, initial=epoch * trainer.steps_per_epoch,
              desc=description, disable=not progress, unit="step", dynamic_ncols=True) as bar:
        while epoch < total_epochs:
            index, phase = trainer.phase_at(epoch)
            if epoch > 0 and trainer.phase_at(epoch - 1)[0] != index:  # a new phase: a fresh Adam (Keras recompiles)
                states = states._replace(opt_state=jax.vmap(trainer.adam(phase).init)(states.params))
            step = trainer.step_fn(phase, teacher is not None)
            losses = []
            for _ in range(trainer.steps_per_epoch):
                if sequential:  # one network after another, each as a batch of one (the CPU policy)
                    parts = [step(jax.tree.map(lambda a: a[k:k + 1], states), keys[k:k + 1], images, labels,
                                  None if teacher is None else teacher[k:k + 1]) for k in range(len(seeds))]
                    states = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[p[0] for p in parts])
                    loss = jnp.concatenate([p[1] for p in parts])
                else:
                    states, loss = step(states, keys, images, labels, teacher)
                losses.append(loss)
                bar.update(1)
            epoch += 1
            mean_loss = np.asarray(jnp.stack(losses)).mean(0)
            if not np.all(np.isfinite(mean_loss)):
                raise DivergedError(f"{description}: the training loss stopped being finite in epoch {epoch} "
                                    f"(phase {phase.name}, lr {phase.lr:g}); lower the learning rate")
            bar.set_postfix(loss=f"{float(mean_loss.mean()):.4f}", phase=phase.name)
            run.log_metrics(epoch, {"phase": phase.name, "loss": [float(v) for v in mean_loss]})
            run.save(epoch, states)
    run.close()
    return states


def teacher_view_logits(config: TransferConfig, num_classes: int, states: TrainState, images: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
    """(K, N, 8, C) inference logits of each of K trained teachers on each dihedral view of each image."""
    model = config.build(num_classes)
    images = jnp.asarray(images)
    views = []
    for v in range(NUM_VIEWS):
        viewed = jax.jit(jax.vmap(dihedral_view, in_axes=(0, None)))(images, v)
        views.append(np.asarray(predict_logits_stacked(model, states.params, states.batch_stats, viewed, batch_size,
                                                       vmap=resolve_parallel("auto") == "vmap")))
    return np.stack(views, axis=2)


def network_logits(config: TransferConfig, num_classes: int, states: TrainState, images: np.ndarray,
                batch_size: int = 256) -> np.ndarray:
    """(K, N, C) inference logits of K trained networks."""
    return np.asarray(predict_logits_stacked(config.build(num_classes), states.params, states.batch_stats,
                                             jnp.asarray(images), batch_size,
                                             vmap=resolve_parallel("auto") == "vmap"))


# ---- whole runs and their records ---------------------------------------------------------------------------------
#: The MHIST paper's (Wei et al. 2021) test AUCs for ResNet-18, the anchors printed beside ours.
MHIST_PAPER_AUC = {"ResNet-18 from scratch": 0.845, "ResNet-18 ImageNet-pretrained": 0.927}
ROLES = ("teacher", "student", "kd")
VIEW_LOGITS_FILE = "train_view_logits.npz"


def load_mhist(data_dir: str | None, resolution: int, min_agreement: int | None = None, progress: bool = True):
    """MHIST (or its stand-in) at `resolution` px, scaled to [-1, 1] as these Keras models expect (a
    `runner.LoadedData`)."""
    from jaxdistill.data.registry import get_spec
    from jaxdistill.models.applications import KERAS_INPUT_MEAN, KERAS_INPUT_STD
    from jaxdistill.runner import load_real
    spec = dataclasses.replace(get_spec("mhist"), mean=KERAS_INPUT_MEAN, std=KERAS_INPUT_STD)
    return load_real(spec, data_dir, progress=progress, resolution=resolution, min_agreement=min_agreement)


def _costs(config: TransferConfig, num_classes: int, image_shape: tuple[int, ...], states: TrainState) -> dict:
    from jaxdistill.costs import forward_flops, inference_latency, param_count
    model = config.build(num_classes)
    variables = {"params": jax.tree.map(lambda a: a[0], states.params),
                 "batch_stats": jax.tree.map(lambda a: a[0], states.batch_stats)}
    return {"params": param_count(config.model, num_classes, image_shape),
            "forward_flops_per_image": forward_flops(config.model, num_classes, image_shape),
            "latency_s_per_image": {str(b): inference_latency(model, variables, image_shape, b) for b in (1, 32)},
            "latency_device": jax.devices()[0].platform}


def run_transfer(workdir: str | Path, config: TransferConfig, data, role: str, *, teacher_dir: str | Path | None = None,
                 cache_dir: str | None = None, progress: bool = True, bootstrap_resamples: int = 1000,
                 measure_costs: bool = True) -> dict[str, Any]:
    """Train `config` on `data` (from `load_mhist`), evaluate it on the test split and write workdir/record.json.

    role 'teacher' also writes the teachers' logits of every view of every training image (VIEW_LOGITS_FILE) for KD
    students; role 'kd' reads them from `teacher_dir` (student k learns from teacher k). The record: config, data
    facts (stand-in or not, source checksum), the pretrained file's facts, per-network MHIST metrics and their mean
    and std, a bootstrap 95 % interval over test images of the mean balanced accuracy and AUC, the same metrics on
    the (un-augmented) training images (for choosing T and alpha), parameters, FLOPs and CPU latency, wall time."""
    from jaxdistill.evaluate import summarize_networks
    from jaxdistill.models.pretrained import resolve_weights
    from jaxdistill.records import device_info, read_json, versions, write_json, write_npz
    from jaxdistill.visualize import plot_confusion_matrix, plot_roc

    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if (role == "kd") != (config.temperature is not None):
        raise ConfigError("role 'kd' is a student with a temperature set; teachers and students alone have none")
    start = time.time()
    workdir = Path(workdir)
    spec = data.spec
    num_classes = spec.num_classes
    train_images, train_labels = np.asarray(data.train.images), np.asarray(data.train.labels)
    weights, weight_facts = None, None
    if config.pretrained is not None:
        name = config.model_config.name
        path, weight_facts = resolve_weights(config.pretrained, name, alpha=config.model_config.get("alpha") or 1.0,
                                             resolution=spec.image_shape[0], cache_dir=cache_dir, progress=progress)
        weights, import_facts = load_pretrained(config, num_classes, spec.image_shape, path)
        weight_facts = {**weight_facts, **import_facts}
    view_logits, teacher_ref = None, None
    if role == "kd":
        if teacher_dir is None:
            raise ConfigError("a KD student needs --teacher: the workdir of a finished teacher run")
        teacher_file = Path(teacher_dir) / VIEW_LOGITS_FILE
        if not teacher_file.exists():
            raise ConfigError(f"{teacher_file} does not exist: run the teacher stage into {teacher_dir} first")
        teacher_record = read_json(Path(teacher_dir) / "record.json")
        if teacher_record["data"] != data.facts():
            raise ConfigError(f"the teacher in {teacher_dir} was trained on other data ({teacher_record['data']}); "
                              "use the same data folder, resolution and annotator agreement")
        with np.load(teacher_file) as f:
            view_logits = f["logits"]
        if view_logits.shape[0] != len(config.seeds):
            raise ConfigError(f"the teacher run has {view_logits.shape[0]} networks and this student "
                              f"{len(config.seeds)} seeds: student k learns from teacher k, give as many seeds")
        teacher_ref = {"workdir": str(teacher_dir), "model": teacher_record["config"]["model"],
                       "pretrained": teacher_record["pretrained"],
                       "balanced_accuracy_mean": teacher_record["summary"]["metrics_mean"]["balanced_accuracy"]}
    states = train_transfer(workdir / "train", config, train_images, train_labels, num_classes, weights,
                            view_logits, progress, f"{role} {config.model}")
    train_seconds = time.time() - start
    if role == "teacher":  # view 0 is the image itself: the training logits come with the views
        views = teacher_view_logits(config, num_classes, states, train_images).astype(np.float32)
        write_npz(workdir / VIEW_LOGITS_FILE, logits=views)
        train_logits = views[:, :, 0]
    else:
        train_logits = network_logits(config, num_classes, states, train_images)
    logits = network_logits(config, num_classes, states, data.test_images)
    names = metrics.IMBALANCED_METRICS if num_classes == 2 else ("accuracy", "balanced_accuracy", "f1")
    per_network = metrics.compute_batch(names, logits, data.test_labels, num_classes)
    on_train = metrics.compute_batch(("balanced_accuracy", "roc_auc"), train_logits, train_labels, num_classes)
    record = {
        "kind": "mhist_transfer", "role": role, "config": config.to_dict(), "data": data.facts(),
        "stand_in": bool(getattr(data, "stand_in", False)), "pretrained": config.pretrained is not None,
        "pretrained_weights": weight_facts, "teacher": teacher_ref, "seeds": list(config.seeds),
        "summary": summarize_networks(per_network),
        "bootstrap_95": metrics.bootstrap_interval(("balanced_accuracy", "roc_auc"), logits, data.test_labels,
                                                   num_classes, resamples=bootstrap_resamples),
        "train_metrics_mean": {k: float(np.mean([m[k] for m in on_train])) for k in on_train[0]},
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / max(1, sum(p.epochs for p in config.phases())),
        "anchors_auc": MHIST_PAPER_AUC,
    }
    if measure_costs:
        record["costs"] = _costs(config, num_classes, tuple(spec.image_shape), states)
    figures = workdir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(record["summary"]["confusion_matrix_total"], spec.class_names,
                          figures / "confusion.png", f"{role} {config.model} (all seeds)")
    if num_classes == 2:
        curves = {f"seed {s}": metrics.roc_curve(metrics.binary_scores(logits[k]), data.test_labels)[:2]
                  for k, s in enumerate(config.seeds)}
        plot_roc(curves, figures / "roc.png", f"{role} {config.model}")
    write_npz(workdir / "test_logits.npz", logits=logits.astype(np.float32))
    record.update({"versions": versions(), "device": device_info(), "wall_time_s": time.time() - start})
    write_json(workdir / "record.json", record)
    return record


__all__ = ["AUGMENTATIONS", "MHIST_PAPER_AUC", "ROLES", "VIEW_LOGITS_FILE", "load_mhist", "run_transfer", "NUM_VIEWS", "Phase", "TransferConfig", "TransferTrainer", "augment_batch",
           "colour_jitter", "dihedral_view", "load_pretrained", "network_logits", "teacher_view_logits",
           "train_transfer"]
