"""Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the knowledge in a neural network", 2015).

A student network is trained on the transfer set with

    alpha * CE(labels, softmax(z_s)) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

where z_t are the teacher's logits (computed once per transfer set and cached: the teacher never runs inside a
student sweep) and T is the temperature. The T^2 factor keeps the soft term's gradient magnitude roughly constant as T
grows (its gradient scales as 1/T^2 otherwise), so alpha means the same at every temperature.

The protocol (`run_kd`): K teachers and K students per configuration, one per seed, student k distilled from teacher
k, all K trained as one program; students trained on hard labels alone are the baseline. Results are test errors
(out of the test set's size) per seed, mean +- std, and the significance of the KD gain (difference of means over its
standard error). `omit_class` drops every example of one class from the transfer set (Hinton's "omitted 3"
experiment); `best_bias_shift` then picks the bias correction of that class on a held-out validation split.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdistill.checkpoint import RunDir
from jaxdistill.errors import ConfigError, positive_finite
from jaxdistill.models import make_model
from jaxdistill.records import device_info, read_json, versions, write_json, write_npz
from jaxdistill.train import (LossFn, Trainer, TrainConfig, cross_entropy, predict_logits, resolve_parallel,
                              train_config_defaults)


# ---- the loss -----------------------------------------------------------------------------------------------------
def check_kd_settings(temperature: float, alpha: float) -> None:
    """Raise ConfigError unless temperature is finite and > 0 and 0 <= alpha <= 1."""
    if not positive_finite(temperature):  # inf would soften every teacher output to uniform
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha (the weight of the hard-label term) must lie in [0, 1], got {alpha}")


def soften(logits: jax.Array, temperature: float) -> jax.Array:
    """softmax(logits / T): the teacher's soft targets at temperature T."""
    return jax.nn.softmax(logits / temperature, axis=-1)


def kd_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, temperature: float,
            alpha: float, mask: jax.Array | None = None, weights: jax.Array | None = None) -> jax.Array:
    """alpha * CE(labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)), mean over examples.

    student_logits, teacher_logits: (N, C); labels: (N,) int or (N, C) probabilities; mask: optional (N,) 0/1
    weights (padded rows of a last minibatch); weights: optional (N,) per-example weights of the hard-label term
    (class weighting, see `train.cross_entropy`). alpha = 1 is plain cross-entropy training.
    """
    log_student = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_teacher = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_teacher) * (log_teacher - log_student), axis=-1)
    if mask is None:
        soft = kl.mean()
    else:
        soft = jnp.sum(kl * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    return alpha * cross_entropy(student_logits, labels, mask, weights) + (1.0 - alpha) * temperature ** 2 * soft


def dkd_terms(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, temperature: float
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Decoupled KD's two parts per example (Zhao et al., CVPR 2022), at temperature T, without the T^2 factor:
    TCKD = KL(b_t || b_s) over the binary (target, not target) split, NCKD = KL(q_t || q_s) over the non-target
    classes renormalised, and the teacher's target probability p_t. Hinton's KL is TCKD + (1 - p_t) NCKD: classic KD
    weighs the non-target knowledge down exactly where the teacher is confident. labels: (N,) ints."""
    log_s = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_t = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    onehot = jax.nn.one_hot(labels, student_logits.shape[-1], dtype=bool)
    log_s_gt = jnp.sum(jnp.where(onehot, log_s, 0.0), -1)
    log_t_gt = jnp.sum(jnp.where(onehot, log_t, 0.0), -1)
    p_t = jnp.exp(log_t_gt)
    # log(1 - p), computed from the other classes' log-probabilities (stable where p is near 1)
    log_s_rest = jax.nn.logsumexp(jnp.where(onehot, -jnp.inf, log_s), -1)
    log_t_rest = jax.nn.logsumexp(jnp.where(onehot, -jnp.inf, log_t), -1)
    tckd = p_t * (log_t_gt - log_s_gt) + jnp.exp(log_t_rest) * (log_t_rest - log_s_rest)
    q_s = jnp.where(onehot, -jnp.inf, log_s) - log_s_rest[:, None]  # log of the renormalised non-target classes
    q_t = jnp.where(onehot, -jnp.inf, log_t) - log_t_rest[:, None]
    nckd = jnp.sum(jnp.where(onehot, 0.0, jnp.exp(q_t) * (q_t - q_s)), -1)
    return tckd, nckd, p_t


def dkd_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, temperature: float,
             alpha: float, tckd_weight: float = 1.0, nckd_weight: float = 8.0, mask: jax.Array | None = None
             ) -> jax.Array:
    """alpha * CE(labels) + (1 - alpha) * T^2 * (tckd_weight * TCKD + nckd_weight * NCKD), mean over examples
    (`dkd_terms`). The paper's defaults are TCKD weight 1, NCKD weight 8 (CIFAR-100) and T = 4, with the CE term at
    weight 1; our `alpha` splits the hard and soft terms as Hinton's loss does here, so both losses share a sweep."""
    tckd, nckd, _ = dkd_terms(student_logits, teacher_logits, labels, temperature)
    soft = tckd_weight * tckd + nckd_weight * nckd
    soft = soft.mean() if mask is None else jnp.sum(soft * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    return alpha * cross_entropy(student_logits, labels, mask) + (1.0 - alpha) * temperature ** 2 * soft


KD_LOSSES = ("hinton", "dkd")


def kd_objective(temperature: float, alpha: float, method: str = "hinton", tckd_weight: float = 1.0,
                 nckd_weight: float = 8.0) -> LossFn:
    """A `Trainer` loss over targets {"labels": (N,), "teacher_logits": (N, C)}: Hinton's (`kd_loss`) or decoupled
    KD (`dkd_loss`)."""
    check_kd_settings(temperature, alpha)
    if method not in KD_LOSSES:
        raise ConfigError(f"unknown KD loss {method!r}; choose one of {', '.join(KD_LOSSES)}")

    def loss(logits, targets, mask):
        if method == "dkd":
            return dkd_loss(logits, targets["teacher_logits"], targets["labels"], temperature, alpha, tckd_weight,
                            nckd_weight, mask)
        return kd_loss(logits, targets["teacher_logits"], targets["labels"], temperature, alpha, mask)
    return loss


# ---- evaluation helpers -------------------------------------------------------------------------------------------
def stacked_logits(model, states, images, batch_size: int = 1000) -> np.ndarray:
    """Inference logits (K, N, C) of every network in `states` (stacked on a leading axis)."""
    out = []
    for k in range(states.step.shape[0]):
        one = jax.tree.map(lambda a: a[k], states)
        out.append(np.asarray(predict_logits(model, one.params, one.batch_stats, jnp.asarray(images), batch_size)))
    return np.stack(out)


def error_counts(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Number of wrong argmax predictions per network: logits (K, N, C), labels (N,) -> (K,) ints."""
    return (np.argmax(logits, -1) != np.asarray(labels)[None]).sum(-1)


def shift_class_bias(logits: np.ndarray, class_index: int, delta: float) -> np.ndarray:
    """Logits with `delta` added to one class: the same as raising that class's output bias by delta."""
    out = np.array(logits, copy=True)
    out[..., class_index] += delta
    return out


def best_bias_shift(logits: np.ndarray, labels: np.ndarray, class_index: int,
                    candidates: Sequence[float] = tuple(np.arange(0.0, 20.01, 0.25))) -> float:
    """The bias shift of `class_index` (from `candidates`) with the fewest errors on (logits (N, C), labels);
    ties go to the smallest shift. Choose it on validation data, never on the test set."""
    errors = [int((np.argmax(shift_class_bias(logits, class_index, d), -1) != labels).sum()) for d in candidates]
    return float(candidates[int(np.argmin(errors))])


def compare(errors_a: Sequence[float], errors_b: Sequence[float]) -> dict[str, float]:
    """Difference of means a - b, its standard error sqrt(s_a^2/n_a + s_b^2/n_b) (sample std, ddof 1) and their
    ratio z. |z| > 2 is the usual bar for a difference not explained by seed noise."""
    a, b = np.asarray(errors_a, float), np.asarray(errors_b, float)
    if a.size < 2 or b.size < 2:
        raise ConfigError("a significance statement needs at least 2 seeds per group")
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    z = diff / se if se > 0 else (0.0 if diff == 0 else float(np.copysign(np.inf, diff)))
    return {"difference": diff, "standard_error": se, "z": z}


def summarize_errors(errors: Sequence[int], num_test: int) -> dict[str, Any]:
    e = np.asarray(errors, float)
    return {"test_errors": [int(x) for x in errors], "errors_mean": float(e.mean()), "errors_std": float(e.std()),
            "accuracy_mean": float(1 - e.mean() / num_test), "accuracy_std": float(e.std() / num_test)}


# ---- the protocol -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A network and how it is trained: model name and keyword settings (see jaxdistill.models), TrainConfig."""
    model: str
    model_kwargs: tuple = ()  # ((name, value), ...), hashable
    train: TrainConfig = TrainConfig(epochs=20, batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0)

    def build(self, num_classes: int):
        return make_model(self.model, num_classes, **dict(self.model_kwargs))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_kwargs": dict(self.model_kwargs), "train": dataclasses.asdict(self.train)}


@dataclasses.dataclass(frozen=True)
class TransferSet:
    """The examples students learn from (and teachers are trained on): normalised images (N, H, W, C), labels (N,)."""
    images: np.ndarray
    labels: np.ndarray

    @functools.cached_property
    def fingerprint(self) -> str:
        """Short sha256 of the arrays (hashed once: every phase's config and the logits cache name it)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.labels, np.int32).tobytes())
        return h.hexdigest()[:16]


def split_transfer(images: np.ndarray, labels: np.ndarray, *, validation: int = 0, omit_class: int | None = None,
                   seed: int = 0) -> tuple[TransferSet, TransferSet, TransferSet | None]:
    """(teacher's training set, students' transfer set, validation split): `validation` random examples held out
    (all classes) from both; the transfer set further lacks every example of `omit_class`."""
    labels = np.asarray(labels, np.int32)
    order = np.random.default_rng(seed).permutation(labels.shape[0])
    val_idx, train_idx = np.sort(order[:validation]), np.sort(order[validation:])
    transfer_idx = train_idx
    if omit_class is not None:
        if not 0 <= omit_class <= int(labels.max()):
            raise ConfigError(f"omit_class {omit_class} is not a class of this dataset")
        transfer_idx = train_idx[labels[train_idx] != omit_class]
    val = TransferSet(images[val_idx], labels[val_idx]) if validation else None
    return (TransferSet(images[train_idx], labels[train_idx]), TransferSet(images[transfer_idx], labels[transfer_idx]),
            val)


def train_networks(workdir: Path, net: NetSpec, num_classes: int, seeds: Sequence[int], transfer: TransferSet,
                   loss: LossFn = cross_entropy, teacher_logits: np.ndarray | None = None, progress: bool = True,
                   description: str = "train") -> Any:
    """Train one network per seed on `transfer` (resumable: Orbax checkpoint every epoch in `workdir`).

    With `teacher_logits` (K, N, C), network k trains on targets {"labels", "teacher_logits"[k]} under `loss`.
    The K networks are one vmapped program, or (net.train.parallel resolving to 'sequential', the CPU default, right
    for ConvNets there) trained one after another, each checkpointed in workdir/seed<k>. Returns the stacked
    TrainStates (leading axis K).
    """
    if resolve_parallel(net.train.parallel) == "sequential" and len(seeds) > 1:
        done = [train_networks(workdir / f"seed{s}", net, num_classes, [s], transfer, loss,
                               None if teacher_logits is None else teacher_logits[k:k + 1], progress,
                               f"{description} (seed {s})") for k, s in enumerate(seeds)]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *done)
    model = net.build(num_classes)
    trainer = Trainer(model, net.train, int(transfer.labels.shape[0]), loss=loss)
    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    if teacher_logits is None:
        targets, per_network = jnp.asarray(transfer.labels), False
    else:
        labels = jnp.broadcast_to(jnp.asarray(transfer.labels), (len(seeds), transfer.labels.shape[0]))
        targets, per_network = {"labels": labels, "teacher_logits": jnp.asarray(teacher_logits)}, True
    config = {"kind": "kd_train", "net": net.to_dict(), "seeds": [int(s) for s in seeds],
              "transfer": transfer.fingerprint, "teacher_logits": None if teacher_logits is None else
              hashlib.sha256(np.ascontiguousarray(teacher_logits, np.float32).tobytes()).hexdigest()[:16]}
    run = RunDir(workdir)
    run.open(config, defaults=train_config_defaults("net.train"))  # workdirs from before a TrainConfig field
    images = jnp.asarray(transfer.images)
    init = jax.jit(jax.vmap(trainer.init_state, in_axes=(0, None)))(keys, images)
    restored = run.restore(init)
    states = init if restored is None else jax.tree.map(jnp.asarray, restored[1])
    with tqdm(total=trainer.total_steps * len(seeds), initial=int(states.step[0]) * len(seeds), desc=description,
              disable=not progress, unit="step", dynamic_ncols=True) as bar:
        def on_epoch(epoch, st):
            run.save(epoch * trainer.steps_per_epoch, st)
        states = trainer.run(keys, images, targets, states=states, progress=bar.update, on_epoch=on_epoch,
                             per_network_labels=per_network)
    run.close()
    return states


def _read_logits(path: Path, fingerprint: dict[str, Any]) -> np.ndarray | None:
    """The logits stored at `path` (an .npz) when its .json names `fingerprint`, else None."""
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and read_json(meta) == _jsonable(fingerprint):
        with np.load(path) as f:
            return f["logits"]
    return None


def cached_logits(path: Path, compute: Callable[[], np.ndarray], fingerprint: dict[str, Any]) -> np.ndarray:
    """`compute()` once; later calls with the same fingerprint read `path` (an .npz) instead."""
    logits = _read_logits(path, fingerprint)
    if logits is not None:
        return logits
    logits = np.asarray(compute(), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz(path, logits=logits)
    write_json(path.with_suffix(".json"), fingerprint)
    return logits


def _jsonable(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists), for comparing with what a file holds."""
    return json.loads(json.dumps(obj))


@dataclasses.dataclass(frozen=True)
class KDConfig:
    """One teacher/student comparison. `sweep` lists extra (temperature, alpha) pairs for the students."""
    teacher: NetSpec
    student: NetSpec
    temperature: float = 20.0
    alpha: float = 0.1
    seeds: tuple = (0, 1, 2, 3, 4)
    sweep: tuple = ()  # ((T, alpha), ...)
    omit_class: int | None = None
    validation: int = 0  # held-out training examples (used to choose the omitted class's bias shift)
    loss: str = "hinton"  # the KD students' loss: 'hinton' or 'dkd' (decoupled KD; `dkd_weights` = TCKD, NCKD)
    dkd_weights: tuple = (1.0, 8.0)
    # Candidate student TrainConfig settings, each ((field, value), ...): when given, the students alone and the KD
    # students each take the candidate with the fewest errors on `select_holdout` transfer-set examples held out
    # from students trained (seeds `select_seeds`) on the rest; the test set plays no part in the choice.
    select: tuple = ()
    select_holdout: int = 10000
    select_seeds: tuple = (0, 1)

    def __post_init__(self):
        check_kd_settings(self.temperature, self.alpha)
        if self.loss not in KD_LOSSES:
            raise ConfigError(f"unknown KD loss {self.loss!r}; choose one of {', '.join(KD_LOSSES)}")
        for t, a in self.sweep:
            check_kd_settings(t, a)
        if len(self.seeds) < 2:
            raise ConfigError("give at least 2 seeds: the KD gain is reported against seed-to-seed noise")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.omit_class is not None and self.validation < 1:
            raise ConfigError("omit_class needs a validation split (validation > 0) to choose the bias correction")
        object.__setattr__(self, "select", tuple(tuple((str(k), v) for k, v in c) for c in self.select))
        for candidate in self.select:
            try:
                dataclasses.replace(self.student.train, **dict(candidate))
            except TypeError as e:
                raise ConfigError(f"select candidate {dict(candidate)} names no TrainConfig field: {e}") from None
        if self.select and (self.select_holdout < 1 or not self.select_seeds):
            raise ConfigError("select needs select_holdout > 0 held-out examples and at least one of select_seeds")

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.to_dict(), "student": self.student.to_dict(),
                "temperature": self.temperature, "alpha": self.alpha, "seeds": list(self.seeds),
                "sweep": [list(p) for p in self.sweep], "omit_class": self.omit_class, "validation": self.validation,
                **({"loss": self.loss, "dkd_weights": list(self.dkd_weights)} if self.loss != "hinton" else {}),
                **({"select": [dict(c) for c in self.select], "select_holdout": self.select_holdout,
                    "select_seeds": list(self.select_seeds)} if self.select else {})}

    def student_with(self, candidate: tuple) -> NetSpec:
        """The student trained under one `select` candidate's settings."""
        return dataclasses.replace(self.student, train=dataclasses.replace(self.student.train, **dict(candidate)))


def _tag(temperature: float, alpha: float) -> str:
    return f"T{temperature:g}_a{alpha:g}"


def run_kd(config: KDConfig, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
           test_labels: np.ndarray, num_classes: int, workdir: str | Path, progress: bool = True,
           teacher_dir: str | Path | None = None, outputs_dir: str | Path | None = None) -> dict[str, Any]:
    """Teachers, students alone and KD students (at config's and every sweep (T, alpha)); resumable per phase.

    Every trained group is checkpointed under workdir/<phase>/ and, once finished, leaves its test errors in
    <outputs>/<phase>/errors.json, so a rerun skips finished phases. Teachers finish one by one where they train
    one after another (`parallel` resolving to 'sequential'): each leaves teacher/seed<k>/errors.json and its logits
    on the transfer set, teacher_logits/seed<k>.npz, which is all the students need of it. `outputs_dir` (default
    workdir) is where those small files go: a run too long for one machine's session keeps them somewhere that
    lasts (the hinton variant commits them under results/) and resumes from them on another machine, where the
    checkpoints are gone. `teacher_dir` (default workdir/teacher) lets several comparisons share one set of
    teachers: it refuses a teacher of another config or training set. Returns the whole record.
    """
    start = time.time()
    workdir = Path(workdir)
    outputs = Path(outputs_dir) if outputs_dir is not None else workdir
    RunDir(workdir).open({"kind": "kd", **config.to_dict()})
    if outputs != workdir:
        RunDir(outputs).open({"kind": "kd_outputs", **config.to_dict()})
    teacher_set, transfer, val = split_transfer(train_images, train_labels, validation=config.validation,
                                                omit_class=config.omit_class)
    test_labels = np.asarray(test_labels)
    num_test = int(test_labels.shape[0])
    seeds = list(config.seeds)

    def phase(name: str, net: NetSpec, loss: LossFn = cross_entropy, logits: np.ndarray | None = None,
              data: TransferSet = transfer, held_out: TransferSet | None = None):
        """Train (or reload) a group; returns its errors dict. With `held_out` (a selection phase) the group is
        `select_seeds` and its errors are counted on `held_out`, not on the test set."""
        done = outputs / name / "errors.json"
        if done.exists():
            return read_json(done)
        model = net.build(num_classes)
        group = list(config.select_seeds) if held_out is not None else seeds
        states = train_networks(workdir / name, net, num_classes, group, data, loss, logits, progress, name)
        eval_images, eval_labels = (test_images, test_labels) if held_out is None else (held_out.images,
                                                                                       held_out.labels)
        eval_logits = stacked_logits(model, states, eval_images)
        rec = summarize_errors(error_counts(eval_logits, eval_labels).tolist(), int(eval_labels.shape[0]))
        # teachers saw the omitted class (and may be shared); selection phases report held-out errors only
        if config.omit_class is not None and held_out is None:
            rec.update(_omitted_class_report(model, states, eval_logits, test_labels, val, config.omit_class))
        done.parent.mkdir(parents=True, exist_ok=True)
        write_json(done, rec)
        return rec

    # The teacher learns from all training data (but the validation split); the students only see the transfer set.
    shared = Path(teacher_dir) if teacher_dir is not None else None
    teacher_errors, teacher_logits = _teachers(config, teacher_set, transfer, test_images, test_labels, num_classes,
                                               shared or workdir / "teacher", shared or outputs / "teacher", outputs,
                                               progress)
    teacher_rec = summarize_errors(teacher_errors, num_test)
    main_objective = kd_objective(config.temperature, config.alpha, config.loss, *config.dkd_weights)
    selection = None
    alone_student = kd_student = config.student
    if config.select:
        selection = _select_students(config, transfer, teacher_logits, main_objective, phase)
        alone_student = config.student_with(config.select[selection["alone"]["chosen"]])
        kd_student = config.student_with(config.select[selection["kd"]["chosen"]])
    alone_rec = phase("student_alone", alone_student)
    students = {}
    for t, a in ((config.temperature, config.alpha), *config.sweep):
        if _tag(t, a) in students:
            continue
        prefix = "student_kd" if config.loss == "hinton" else f"student_{config.loss}"
        rec = phase(f"{prefix}_{_tag(t, a)}", kd_student, kd_objective(t, a, config.loss, *config.dkd_weights),
                    teacher_logits)
        rec["significance_vs_alone"] = compare(alone_rec["test_errors"], rec["test_errors"])
        students[_tag(t, a)] = {"temperature": t, "alpha": a, **rec}
    main = students[_tag(config.temperature, config.alpha)]
    return {"config": config.to_dict(), "num_test": num_test, "transfer_size": int(transfer.labels.shape[0]),
            "teacher_train_size": int(teacher_set.labels.shape[0]),
            "teacher": teacher_rec, "student_alone": alone_rec, "student_kd": main, "sweep": list(students.values()),
            **({"selection": selection} if selection else {}),
            "versions": versions(), "device": device_info(), "wall_time_s": time.time() - start}


def _teachers(config: KDConfig, teacher_set: TransferSet, transfer: TransferSet, test_images: np.ndarray,
              test_labels: np.ndarray, num_classes: int, checkpoints: Path, results: Path, outputs: Path,
              progress: bool) -> tuple[list[int], np.ndarray]:
    """Every seed's teacher: (test errors per seed, logits (K, N, C) on the transfer set), training those not yet
    finished. Seeds train one by one where the teacher trains sequentially, else as one vmapped group; each seed
    leaves <results>/seed<k>/errors.json (results: the teacher_dir when shared, else <outputs>/teacher) and
    <outputs>/teacher_logits/seed<k>.npz, so an interrupted run loses at most the seed in training."""
    model = config.teacher.build(num_classes)

    def facts(seed: int) -> dict[str, Any]:
        return {"net": config.teacher.to_dict(), "seed": int(seed), "teacher_set": teacher_set.fingerprint}

    def finished(seed: int) -> int | None:  # the seed's test errors, None while unfinished
        path = results / f"seed{seed}" / "errors.json"
        if not path.exists():
            return None
        rec = read_json(path)
        if rec.get("facts") != _jsonable(facts(seed)):
            raise ConfigError(f"{path} is the result of a teacher with a different config or training set; give "
                              "this comparison another teacher_dir (or outputs dir)")
        return int(rec["test_errors"])

    def logits_path(seed: int) -> tuple[Path, dict[str, Any]]:
        return outputs / "teacher_logits" / f"seed{seed}.npz", {**facts(seed), "transfer": transfer.fingerprint}

    sequential = resolve_parallel(config.teacher.train.parallel) == "sequential"
    # each kept file read (and its facts checked) once, before any teacher trains
    done = {s: finished(s) for s in config.seeds}
    logits = {s: _read_logits(*logits_path(s)) for s in config.seeds}
    for group in ([[s] for s in config.seeds] if sequential else [list(config.seeds)]):
        if all(done[s] is not None and logits[s] is not None for s in group):
            continue
        # a sequential teacher checkpoints in checkpoints/seed<k>, a vmapped group in checkpoints/ (as before)
        states = train_networks(checkpoints / f"seed{group[0]}" if sequential else checkpoints, config.teacher,
                                num_classes, group, teacher_set, progress=progress,
                                description="teacher" + (f" (seed {group[0]})" if sequential else ""))
        errors = error_counts(stacked_logits(model, states, test_images), test_labels)
        for k, s in enumerate(group):
            one = jax.tree.map(lambda a: a[k:k + 1], states)
            path, fingerprint = logits_path(s)
            logits[s] = cached_logits(path, lambda: stacked_logits(model, one, transfer.images)[0], fingerprint)
            if done[s] is None:  # (a shared teacher restored for another transfer set has its result)
                (results / f"seed{s}").mkdir(parents=True, exist_ok=True)
                write_json(results / f"seed{s}" / "errors.json",
                           {"test_errors": int(errors[k]), "facts": facts(s)})
                done[s] = int(errors[k])
    return [done[s] for s in config.seeds], np.stack([logits[s] for s in config.seeds])


def _select_students(config: KDConfig, transfer: TransferSet, teacher_logits: np.ndarray, kd_loss: LossFn,
                     phase: Callable) -> dict[str, Any]:
    """Every `select` candidate trained as a student alone and as a KD student (config's T, alpha, loss) on the
    transfer set less `select_holdout` random examples, counted on those: per role, each candidate's held-out
    errors and the index of the one with the fewest (mean over select_seeds; the first on ties). The teachers'
    logits are the ones the final students use (teacher k of the run for select seed k)."""
    n = int(transfer.labels.shape[0])
    if config.select_holdout >= n:
        raise ConfigError(f"select_holdout {config.select_holdout} leaves no transfer-set example to train on ({n})")
    if len(config.select_seeds) > teacher_logits.shape[0]:
        raise ConfigError(f"{len(config.select_seeds)} select_seeds but only {teacher_logits.shape[0]} teachers")
    order = np.random.default_rng(12345).permutation(n)
    hold, fit = np.sort(order[:config.select_holdout]), np.sort(order[config.select_holdout:])
    fit_set = TransferSet(transfer.images[fit], transfer.labels[fit])
    held_out = TransferSet(transfer.images[hold], transfer.labels[hold])
    fit_logits = teacher_logits[:len(config.select_seeds), fit]
    out: dict[str, Any] = {"holdout": int(hold.shape[0]), "fit": int(fit.shape[0]),
                           "seeds": list(config.select_seeds), "candidates": [dict(c) for c in config.select]}
    for role, loss, logits in (("alone", cross_entropy, None), ("kd", kd_loss, fit_logits)):
        recs = [phase(f"select/{role}_{i}", config.student_with(c), loss, logits, data=fit_set,
                      held_out=held_out) for i, c in enumerate(config.select)]
        means = [float(np.mean(r["test_errors"])) for r in recs]
        out[role] = {"held_out_errors": [r["test_errors"] for r in recs], "mean": means,
                     "chosen": int(np.argmin(means))}
    return out


def _omitted_class_report(model, states, test_logits, test_labels, val: TransferSet, omitted: int) -> dict[str, Any]:
    """Correct test examples of the omitted class, before and after a bias shift chosen per network on `val`."""
    is_omitted = test_labels == omitted
    val_logits = stacked_logits(model, states, val.images)
    shifts, errors_after, correct_after = [], [], []
    for k in range(test_logits.shape[0]):
        d = best_bias_shift(val_logits[k], val.labels, omitted)
        shifted = shift_class_bias(test_logits[k], omitted, d)
        pred = np.argmax(shifted, -1)
        shifts.append(d)
        errors_after.append(int((pred != test_labels).sum()))
        correct_after.append(int((pred[is_omitted] == omitted).sum()))
    correct_before = (np.argmax(test_logits, -1)[:, is_omitted] == omitted).sum(-1)
    return {"omitted_class": omitted, "omitted_test_examples": int(is_omitted.sum()),
            "omitted_correct_before": [int(c) for c in correct_before], "bias_shift": shifts,
            "omitted_correct_after": correct_after, "test_errors_after_shift": errors_after}
