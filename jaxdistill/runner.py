"""Whole runs with workdirs: distill a synthetic set, evaluate it, train a full-data baseline.

Each run writes its config, a metrics.jsonl, periodic Orbax checkpoints and its outputs into its workdir, and
rerunning the same call resumes from the newest checkpoint. The CLI (`cli.py`) is a thin layer over these functions.
"""
from __future__ import annotations

import dataclasses
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdistill.checkpoint import RunDir
from jaxdistill.cpu_tuning import release_free_memory
from jaxdistill.data.arrays import RealData, make_real_data, normalize, sample_per_class
from jaxdistill.data.augment import default_eval_augmentation
from jaxdistill.data.registry import DatasetSpec, get_spec
from jaxdistill.data.dsa import parse_dsa_strategy
from jaxdistill.data.sources import load_dataset
from jaxdistill.data.zca import fit_zca
from jaxdistill.errors import ConfigError, DivergedError, WorkdirError
from jaxdistill.evaluate import (EvalConfig, check_first_networks_reusable, evaluate_set, protocol_train_config,
                                 summarize, test_accuracies)
from jaxdistill import policy as policy_lib
from jaxdistill import privacy
from jaxdistill.driver import Driver
from jaxdistill.methods import get_entry, make_method, method_config
from jaxdistill.methods.base import RunPlan
from jaxdistill.models import ModelConfig, make_model
from jaxdistill.synthetic import decode_labels, decode_multi_formation
from jaxdistill.records import arrays_checksum, as_read_back, device_info, read_json, versions, write_json, write_npz
from jaxdistill.train import Trainer, TrainConfig, train_config_defaults

SYNTHETIC_FILE = "synthetic.npz"
EVAL_FILE = "eval.json"
NETWORK_SEEDINGS = ("per_set", "shared")
EVAL_PARTIAL_FILE = "eval_partial.json"  # the networks evaluated so far, while an evaluation runs


@dataclasses.dataclass
class LoadedData:
    spec: Any
    train: RealData
    test_images: np.ndarray  # normalised float32
    test_labels: np.ndarray
    origin: Any = None  # data.sources.DataOrigin: where the files were found (None for data built in memory)
    source_sha256: str | None = None  # a folder dataset's checksum of what was read (MHIST)
    stand_in: bool = False  # whether the data is a generated stand-in (the MHIST stand-in)

    def facts(self) -> dict[str, Any]:
        """What a record says about the data: its shape and class counts, and for a folder dataset the source's
        checksum and whether it is a stand-in."""
        out = {"image_shape": list(self.spec.image_shape),
               "train_counts": [int(c) for c in np.asarray(self.train.class_counts)],
               "test_counts": [int(c) for c in np.bincount(self.test_labels, minlength=self.spec.num_classes)]}
        if self.source_sha256 is not None:
            out["source_sha256"] = self.source_sha256
        if self.spec.is_folder_dataset:
            out["stand_in"] = bool(self.stand_in)
        return out


def load_real(dataset: str | DatasetSpec, data_dir: str | None = None, source: str = "files", progress: bool = True,
              zca: bool = False, resolution: int | None = None, min_agreement: int | None = None) -> LoadedData:
    """Load a registered dataset (at `resolution` px when given: one of the spec's allowed sizes), normalise it per
    its spec, and index the training split by class on device.

    zca=True: instead of the spec's mean/std, pixels in [0, 1] whitened by ZCA fitted on the training split
    (`data/zca.py`; trajectory matching's CIFAR protocol). min_agreement (MHIST): keep the training images on which at
    least that many of the 7 annotators agree."""
    ds = load_dataset(dataset, data_dir, source=source, progress=progress, resolution=resolution,
                      min_agreement=min_agreement)
    spec = ds.spec
    if zca:
        zero, one = (0.0,) * len(spec.mean), (1.0,) * len(spec.std)
        train_01 = normalize(ds.train_images, zero, one)
        whiten = fit_zca(train_01)
        train = make_real_data(whiten(train_01), ds.train_labels, spec.num_classes)
        del train_01
        test_images = whiten(normalize(ds.test_images, zero, one))
    else:
        train = make_real_data(ds.train_images, ds.train_labels, spec.num_classes, spec.mean, spec.std)
        test_images = normalize(ds.test_images, spec.mean, spec.std)
    loaded = LoadedData(spec, train, test_images, np.asarray(ds.test_labels, np.int32), ds.origin,
                        ds.source_sha256, ds.stand_in)
    del ds
    release_free_memory()
    return loaded


def _parse_seeds(seeds: int | Sequence[int]) -> list[int]:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ConfigError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds}")
    bad = [s for s in seeds if not 0 <= int(s) < 2**32]
    if bad:
        raise ConfigError(f"seeds must lie in [0, 2**32), got {bad}")
    return [int(s) for s in seeds]


def config_dict(cfg: Any) -> dict[str, Any]:
    """A method config as stored in config.json: its fields, a model as its one-string spelling."""
    return {f.name: (str(v) if isinstance(v, ModelConfig) else v)
            for f in dataclasses.fields(cfg) for v in [getattr(cfg, f.name)]}


# Fields that left method configs in the spine redesign: run length (now the run's `iterations`) and backend choices
# (now the policy's, jaxdistill/policy.py); DC's network fields and MTT's model_kwargs became one `model`.
_POLICY_FIELDS = ("conv_impl", "real_chunks", "class_loop")
_CONVNET_FIELDS = ("width", "depth", "norm", "pooling")


def upgrade_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A distill config.json written before the spine redesign, in today's form (the same run: its results and
    checkpoints stay valid). Today's configs come back unchanged."""
    if stored.get("kind") != "distill" or "method_config" not in stored:
        return stored
    out, mc = dict(stored), dict(stored["method_config"])
    if "iterations" in mc:
        out.setdefault("iterations", mc.pop("iterations"))
    for name in _POLICY_FIELDS:
        mc.pop(name, None)
    if any(name in mc for name in _CONVNET_FIELDS):
        mc["model"] = str(ModelConfig("convnet", {k: mc.pop(k) for k in _CONVNET_FIELDS if k in mc}))
    elif "model_kwargs" in mc:
        mc["model"] = str(ModelConfig(mc.get("model", "convnet"), dict(mc.pop("model_kwargs") or {})))
    out["method_config"] = mc
    return out


def distill_config(method: str, dataset: str, ipc: int, seeds: Sequence[int], *, iterations: int | None = None,
                   source: str = "files", method_overrides: dict[str, Any] | None = None, zca: bool = False,
                   resolution: int | None = None, min_agreement: int | None = None
                   ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(method config, the run's config.json, defaults for fields an older config.json lacks) of a distill call;
    see `distill` for the arguments. The config.json identifies the run: a workdir holding another is refused."""
    if ipc < 1:
        raise ConfigError(f"ipc (images per class) must be >= 1, got {ipc}")
    num_iterations = get_entry(method).iterations if iterations is None else iterations
    if num_iterations < 0:
        raise ConfigError(f"iterations must be >= 0, got {num_iterations}")
    overrides = {**(method_overrides or {}), "ipc": ipc}
    cfg = method_config(method, dataset=dataset, **overrides)
    model = getattr(cfg, "model", None)
    if "model" not in overrides and model is not None and model.name == "convnet":
        # the dataset's depth for the image size: a chosen resolution's, else the registered size's when the
        # dataset's table has one (MNIST's and CIFAR's is the ConvNet's own 3; MHIST's 64 px gives 4)
        spec = get_spec(dataset)
        known = resolution is not None or any(side == spec.image_shape[0] for side, _ in spec.defaults.convnet_depths)
        if known:
            depth = spec.at_resolution(resolution).convnet_depth() if resolution is not None else spec.convnet_depth()
            cfg = dataclasses.replace(cfg, model=ModelConfig("convnet", {**dict(model.settings), "depth": depth}))
    config = {"kind": "distill", "method": method, "method_config": config_dict(cfg), "dataset": dataset.lower(),
              "source": source, "seeds": [int(s) for s in seeds], "iterations": num_iterations,
              **({"zca": True} if zca else {}), **({"resolution": int(resolution)} if resolution is not None else {}),
              **({"min_agreement": int(min_agreement)} if min_agreement is not None else {})}
    # a method-config field added after a run began defaults to what that run did: resuming it stays allowed
    defaults = {f"method_config.{k}": v for k, v in config_dict(type(cfg)()).items()}
    return cfg, config, defaults


def distill(method: str, dataset: str, ipc: int, seeds: int | Sequence[int], workdir: str | Path, *,
            iterations: int | None = None, data_dir: str | None = None, source: str = "files",
            checkpoint_every: int = 50, log_every: int = 10, progress: bool = True,
            method_overrides: dict[str, Any] | None = None, data: LoadedData | None = None,
            on_iteration: Callable[[int], None] | None = None, parallel: str = "auto", zca: bool = False,
            policy: policy_lib.Policy | dict[str, Any] | None = None, resolution: int | None = None,
            min_agreement: int | None = None) -> dict[str, Any]:
    """Distil `dataset` with `method` at `ipc` images per class, one synthetic set per seed; resumable.

    `iterations` defaults to the method's paper value. `resolution` resizes the images (one of the dataset's allowed
    sizes, default the dataset's registered one; a ConvNet gets the dataset's depth for it unless the method overrides
    name a model). min_agreement (MHIST) distils from the training images on which that many annotators agree. zca=True
    distils (and `evaluate_workdir` then evaluates) on ZCA-whitened data (`load_real`). How it runs is the
    policy's (`jaxdistill.policy`; a Policy or NAME=VALUE changes of the one in force); `parallel` ('vmap' /
    'sequential') is a shorthand for its `seeds` field. Every policy gives the same synthetic sets up to float
    rounding.
    Writes workdir/synthetic.npz (`images`, `labels`, `seeds`[, `lr`]; with one seed, images is (N, H, W, C), with S
    seeds (S, N, H, W, C)) and workdir/run.json. `on_iteration(i)` is called after iteration i (tests use it).
    """
    seeds = _parse_seeds(seeds)
    if parallel not in ("auto", "vmap", "sequential"):
        raise ConfigError(f"parallel must be 'auto', 'vmap' or 'sequential', got {parallel!r}")
    run_policy = policy if isinstance(policy, policy_lib.Policy) else policy_lib.current().replace(**(policy or {}))
    if parallel != "auto":
        run_policy = run_policy.replace(seeds=parallel)
    cfg, config, defaults = distill_config(method, dataset, ipc, seeds, iterations=iterations, source=source,
                                           method_overrides=method_overrides, zca=zca, resolution=resolution,
                                           min_agreement=min_agreement)
    num_iterations = config["iterations"]
    run = RunDir(workdir)
    run.check_config(config, defaults, upgrade=upgrade_config)  # refuse a different run before the (slow) data load
    start = time.time()
    data = data or load_real(dataset, data_dir, source, progress, zca=zca, resolution=resolution,
                             min_agreement=min_agreement)
    plan = RunPlan.of(dataset.lower(), data.train, num_iterations, seeds, zca)
    m = make_method(method, cfg)
    prepared, facts = m.prepare(plan)
    m = prepared or m
    if facts.get("privacy"):  # what a private run will spend, before it spends it (also without progress bars)
        print(f"privacy: {privacy.Accounting(**{k: facts['privacy'][k] for k in privacy.Accounting._fields}).summary()}")
    driver = Driver(m, seeds, run_policy)
    state = driver.init(data.train)

    run.open(config, defaults, upgrade=upgrade_config)  # only now: a failed data load or check leaves no workdir behind
    _remember_data(run.path, data)
    first = 0
    restored = run.restore(state)
    if restored is not None:
        first, state = restored
        state = jax.tree.map(jnp.asarray, state)
    elif num_iterations == 0:
        run.save(0, state)
    run.truncate_metrics(first)  # lines logged after the last checkpoint are work a crash lost: redone below

    bar = tqdm(total=num_iterations, initial=first, desc=f"{method} {dataset} ipc={ipc}",
               disable=not progress or num_iterations == 0, unit="it", dynamic_ncols=True)
    try:
        for i in range(first, num_iterations):
            state, metrics = driver.step(state, i, data.train)
            done = i + 1
            if done % log_every == 0 or done == num_iterations:
                host = {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()}
                host.update(m.report(plan, done))
                run.log_metrics(done, host)
                bar.set_postfix({k: f"{v:.4g}" for k, v in host.items()})
            if done % log_every == 0 or done % checkpoint_every == 0 or done == num_iterations:
                _check_finite(metrics, done, checkpoint_every)  # never checkpoint, or write, a diverged set
            if done % checkpoint_every == 0 or done == num_iterations:
                run.save(done, state)
            bar.update(1)
            if on_iteration is not None:
                on_iteration(done)
    finally:
        bar.close()
        run.close()

    syn = jax.vmap(m.synthetic)(state)
    images, labels = np.asarray(syn.images), np.asarray(syn.labels)
    if len(seeds) == 1:
        images, labels = images[0], labels[0]
    extra = {} if syn.lr is None else {"lr": np.asarray(syn.lr, np.float32).reshape(len(seeds))}
    if syn.factor is not None:  # the stored (compact) form; load_synthetic decodes it
        extra.update(factor=np.int32(np.asarray(syn.factor).reshape(-1)[0]), form=np.str_("stored"))
    write_npz(run.path / SYNTHETIC_FILE, images=images, labels=labels, seeds=np.asarray(seeds), **extra)
    record = {"config": config, "iterations": num_iterations, "resumed_from": first, "versions": versions(),
              "device": device_info(), "policy": run_policy.to_dict(), "method_facts": facts, "data": data.facts(),
              "wall_time_s": time.time() - start, "method_description": get_entry(method).description}
    write_json(run.path / "run.json", record)
    return record


def _check_finite(metrics: dict[str, Any], iteration: int, checkpoint_every: int) -> None:
    """Stop a run whose step metrics (a loss, a learned lr) are no longer finite: its synthetic sets are lost, and
    training networks on them would only record chance-level numbers."""
    bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v, np.float64))))
    if bad:
        raise DivergedError(
            f"the distillation diverged: {', '.join(bad)} not finite after iteration {iteration}; lower the image "
            f"learning rate (--set lr_img=...) or, for trajectory matching, lr_lr, and start a new workdir (the last "
            f"checkpoint, at most {checkpoint_every} iterations earlier, was written before the check failed)")


DATA_FILE = "data.json"  # where a workdir's data came from (outside the config identity)


def _remember_data(workdir: Path, data: LoadedData) -> None:
    """Record where the data came from, so `evaluate_workdir` finds it again: an explicit folder as a path relative
    to the workdir (a committed workdir holds no absolute path), other origins by kind alone."""
    origin = data.origin
    if origin is None:  # data built in memory
        return
    entry = {"kind": origin.kind}
    if origin.kind == "data_dir" and origin.folder is not None:
        entry["data_dir"] = os.path.relpath(Path(origin.folder).absolute(), Path(workdir).absolute())
    write_json(workdir / DATA_FILE, entry)


def remembered_data_dir(workdir: str | Path) -> str | None:
    """The explicit data folder a distill run in `workdir` used, when it recorded one and it is still there."""
    path = Path(workdir) / DATA_FILE
    if not path.exists():
        return None
    try:
        rel = read_json(path).get("data_dir")
    except (OSError, ValueError):
        return None
    folder = (Path(workdir) / rel) if rel else None
    return str(folder) if folder is not None and folder.is_dir() else None


def load_synthetic(workdir: str | Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[int]]:
    """(config, images (S, N, H, W, C), labels (S, N[, C]), seeds) of a distilled workdir: the images a network
    trains on (a multi-formation set, stored compact with its `factor`, comes back decoded)."""
    workdir = Path(workdir)
    for name in ("config.json", SYNTHETIC_FILE):
        if not (workdir / name).exists():
            raise WorkdirError(f"{workdir / name} not found; run `jaxdistill distill ... --workdir {workdir}` first")
    try:
        config = upgrade_config(read_json(workdir / "config.json"))
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{workdir / 'config.json'} is unreadable ({e}); "
                           f"rerun the distill command in a new workdir") from None
    try:
        with np.load(workdir / SYNTHETIC_FILE) as z:
            images, labels, seeds = z["images"], z["labels"], z["seeds"].tolist()
            factor = int(z["factor"]) if "factor" in z.files else 1
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise WorkdirError(f"{workdir / SYNTHETIC_FILE} is unreadable or incomplete ({e}); "
                           f"rerun the distill command to rewrite it") from None
    if len(seeds) == 1:
        images, labels = images[None], labels[None]
    if factor > 1:  # multi-formation sets are stored compact: what trains a network is their decoding
        images = np.stack([np.asarray(decode_multi_formation(jnp.asarray(x), factor)) for x in images])
        labels = np.stack([np.asarray(decode_labels(jnp.asarray(y), factor)) for y in labels])
    return config, images, labels, seeds


def learned_lrs(workdir: str | Path) -> np.ndarray | None:
    """Per synthetic set, the training lr its method learned (MTT / DATM's syn_lr), or None."""
    with np.load(Path(workdir) / SYNTHETIC_FILE) as z:
        return np.asarray(z["lr"], np.float64).reshape(-1) if "lr" in z.files else None


def default_augmentation_for(config: dict[str, Any]) -> str:
    """The evaluation augmentation for a distill run's config.json (see `evaluate_workdir`)."""
    strategy = config.get("method_config", {}).get("dsa_strategy", "none")
    if parse_dsa_strategy(strategy):
        return f"dsa:{strategy}"
    return default_eval_augmentation(config["dataset"])


def evaluation_protocol(config: dict[str, Any], protocol: str | None = None, augment: str | None = None
                        ) -> tuple[str, str | None]:
    """The protocol and augmentation `evaluate_workdir` trains a distill run's networks with, given what its caller
    named (None: the defaults): IDC's protocol for IDC sets, DC's otherwise; under DC's, the set's own augmentation
    (`default_augmentation_for`); under IDC's, None (the protocol's own, `protocol_train_config`)."""
    protocol = protocol or ("idc" if config.get("method") == "idc" else "dc")
    if protocol == "dc" and augment is None:
        augment = default_augmentation_for(config)
    return protocol, augment


def distilled_model(config: dict[str, Any]) -> ModelConfig:
    """The network a distill run's config.json distilled with (its evaluation's default), or the DC ConvNet."""
    spelled = config.get("method_config", {}).get("model")
    return ModelConfig.parse(spelled) if spelled else ModelConfig("convnet")


def set_checksum(images, labels) -> str:
    """The checksum an evaluation keeps of each set it evaluated (`set_sha256`), by which a finished evaluation is
    matched to the set a workdir holds now (`experiment.finished_evaluation`)."""
    return arrays_checksum((images, labels))


def _other_count_networks(earlier: dict[str, Any] | None, config: dict[str, Any], digest: str
                          ) -> dict[str, Any] | None:
    """A set's earlier evaluation (its eval.json entry, or its eval_partial.json one) as the first networks of the
    evaluation `config` (read back) of the set whose checksum is `digest`, when it is that evaluation with another
    number of networks: at most config's number of them, with their share of its time and the number of keys it
    drew ("drawn"); else None."""
    if earlier is None or earlier.get("set_sha256") != digest:
        return None
    done = earlier.get("config", {})
    if done.get("num_models") == config["num_models"] or {**done, "num_models": config["num_models"]} != config:
        return None
    metrics = earlier.get("metrics", earlier["accuracies"])
    kept = metrics[:config["num_models"]]
    return {"metrics": kept, "wall_time_s": earlier["wall_time_s"] * len(kept) / max(1, len(metrics)),
            "drawn": done["num_models"]}


def evaluate_resumably(images, labels, data: LoadedData, cfg: EvalConfig, saved: dict[str, Any],
                       partial_path: Path, key: str, bar, steps_per_network: int,
                       first: dict[str, Any] | None = None, finished: dict[str, Any] | None = None,
                       **facts: Any) -> dict[str, Any]:
    """`evaluate_set` of one set, resumable network by network: `saved` (the contents of `partial_path`) maps `key`
    to the networks evaluated so far, reused only for the same evaluation config and the same images; after each
    network the metrics known are written back to `partial_path`. Else the first networks of an earlier evaluation
    of this set with the same config but another number of networks are reused (network k trains from the same
    key whatever the number of networks), so only the others train: `first` ({"metrics": [...], "wall_time_s": s}),
    which the caller vouches for, or the set's entry in `saved` or in `finished` (a finished evaluation, eval.json)
    when its images and its config but the number of networks are this one's, whichever knows the most networks
    (a partial entry of this very config and number is resumed first, as above). `facts` are kept in the set's
    entry (e.g. its seed). Returns the set's evaluation record, with its images' checksum as set_sha256."""
    digest = set_checksum(images, labels)
    rec = saved.get(key)
    config = cfg.to_dict()
    read_back = as_read_back(config)
    reusable = (rec is not None and rec.get("set_sha256") == digest and rec.get("config") == read_back)
    if reusable and not rec.get("partial"):
        bar.update(steps_per_network * cfg.num_models)
        return rec
    if not reusable:  # an evaluation stopped or finished with another number of networks: the most networks known
        given = first
        for earlier in (rec, finished):
            found = _other_count_networks(earlier, read_back, digest)
            if found is not None and len(found["metrics"]) > len(first["metrics"] if first else []):
                try:  # found here, not given: where they cannot be reused, they are passed over
                    check_first_networks_reusable(cfg, found["metrics"], found["drawn"])
                    first = found
                except ConfigError:
                    pass
        if first is not None:
            if first is given:  # the caller's: refused, not passed over
                check_first_networks_reusable(cfg, first["metrics"])
            rec, reusable = {"metrics": list(first["metrics"]), "wall_time_s": float(first["wall_time_s"])}, True
    done = rec.get("metrics", rec.get("accuracies")) if reusable else []
    bar.update(steps_per_network * len(done))

    def keep(per_network, wall_time_s):
        saved[key] = {"partial": True, "metrics": per_network, "wall_time_s": wall_time_s, **facts,
                      "accuracies": [m.get("accuracy") for m in per_network], "set_sha256": digest,
                      "config": config}
        write_json(partial_path, saved)

    rec = evaluate_set(images, labels, data.test_images, data.test_labels, data.spec.num_classes, cfg,
                       progress=bar.update, done=done, done_wall_time_s=rec["wall_time_s"] if reusable else 0.0,
                       on_network=keep)
    rec.update(facts, set_sha256=digest)
    saved[key] = rec
    write_json(partial_path, saved)
    return rec


def evaluate_workdir(workdir: str | Path, *, num_models: int = 20, epochs: int = 1000, augment: str | None = None,
                     data_dir: str | None = None, seed: int = 0, model: str | ModelConfig | None = None,
                     progress: bool = True, data: LoadedData | None = None,
                     train_overrides: dict[str, Any] | None = None, metrics: Sequence[str] | None = None,
                     protocol: str | None = None, network_seeding: str = "per_set",
                     first: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Evaluate every synthetic set in `workdir` with `num_models` fresh networks each; write workdir/eval.json.

    An evaluation grows: with workdir's eval.json (or a stopped evaluation's eval_partial.json) of the same sets by
    the same config with another number of networks (or `first`, one entry per set, {"metrics": [...],
    "wall_time_s": s}, such networks known from elsewhere), those are the first networks and only the others train
    (`evaluate_resumably`), so 5 networks become 20 at the cost of 15, with the accuracies 20 from scratch give on
    the same machine and versions. One of fewer networks takes the first ones, and its eval.json replaces the
    larger one.

    `network_seeding`: 'per_set' (default) trains each set's networks from keys of `seed` folded with the set's
    distillation seed, so the sets of a sweep meet different networks; 'shared' gives every set the same networks
    (keys from `seed` alone), the seeding of the records made before it was an option.

    `protocol` names how the networks train (`evaluate.protocol_train_config`): 'dc' (DC's, the default) or 'idc'
    (IDC's, the default for IDC sets); any set can be evaluated under either.

    The network is the one the set was distilled with (its config.json) unless `model` names another. The default
    augmentation is the one the set's method is evaluated with in its paper: DSA's own strategy (with per-image
    draws) for a set distilled with DSA, DC's per-dataset setting otherwise. A set whose method learned a training
    lr (MTT, DATM) is trained with that lr, as in their papers, unless train_overrides names one. The data come from
    `data_dir`, else the folder the distill run recorded (`data.json`), else the usual places.
    """
    if network_seeding not in NETWORK_SEEDINGS:
        raise ConfigError(f"unknown network_seeding {network_seeding!r}; choose one of {', '.join(NETWORK_SEEDINGS)}")
    config, images, labels, seeds = load_synthetic(workdir)
    if first is not None and len(first) != len(seeds):
        raise ConfigError(f"{len(first)} sets' first networks given for the {len(seeds)} sets of {workdir}")
    if not os.access(workdir, os.W_OK):
        raise WorkdirError(f"workdir {workdir} is not writable, so {EVAL_FILE} could not be saved; "
                           f"fix its permissions first")
    data = data or load_real(config["dataset"], data_dir or remembered_data_dir(workdir),
                             config.get("source", "files"), progress, zca=config.get("zca", False),
                             resolution=config.get("resolution"), min_agreement=config.get("min_agreement"))
    protocol, augment = evaluation_protocol(config, protocol, augment)
    train_cfg = protocol_train_config(protocol, data.spec, epochs, augment,
                                      factor=int(config.get("method_config", {}).get("factor", 1)),
                                      **(train_overrides or {}))
    eval_cfg = EvalConfig(model=distilled_model(config) if model is None else model, num_models=num_models,
                          train=train_cfg, seed=seed,
                          metrics=tuple(data.spec.defaults.metrics if metrics is None else metrics))
    steps_per_network = Trainer(eval_cfg.model.build(data.spec.num_classes), train_cfg, images.shape[1]).total_steps
    total = len(seeds) * num_models * steps_per_network
    # Each network's accuracy is saved as soon as it is known (EVAL_PARTIAL_FILE), so an evaluation stopped part-way
    # resumes with the next network (the next set when networks train as one vmapped program); saved accuracies
    # are reused only for the same evaluation config and the same images.
    partial_path = Path(workdir) / EVAL_PARTIAL_FILE
    saved = read_json(partial_path) if partial_path.exists() else {}
    # a finished evaluation with another number of networks: its networks are the first ones of this one
    # (`evaluate_resumably`)
    eval_path = Path(workdir) / EVAL_FILE
    finished = {str(r.get("seed")): r for r in (read_json(eval_path).get("per_set", []) if eval_path.exists() else [])}
    per_set = []
    with tqdm(total=total, desc=f"evaluate {Path(workdir).name}", disable=not progress, unit="step",
              dynamic_ncols=True) as bar:
        lrs = None if "lr" in (train_overrides or {}) else learned_lrs(workdir)
        for s in range(len(seeds)):
            cfg_s = eval_cfg if lrs is None else dataclasses.replace(
                eval_cfg, train=dataclasses.replace(train_cfg, lr=float(lrs[s])))
            if network_seeding == "per_set":
                cfg_s = dataclasses.replace(cfg_s, set_seed=int(seeds[s]))
            rec = evaluate_resumably(images[s], labels[s], data, cfg_s, saved, partial_path, str(seeds[s]),
                                     bar, steps_per_network, first=first[s] if first else None,
                                     finished=finished.get(str(seeds[s])), seed=int(seeds[s]))
            per_set.append(rec)
            bar.set_postfix(acc=f"{rec['accuracy_mean']:.4f}")
    result = {**summarize(per_set), "per_set": per_set, "distill_config": config, "eval_config": eval_cfg.to_dict(),
              "protocol": protocol, "data": data.facts(),
              **({"train_overrides": dict(train_overrides)} if train_overrides else {}),
              "versions": versions(), "device": device_info(),
              "wall_time_s": float(sum(r["wall_time_s"] for r in per_set))}
    write_json(Path(workdir) / EVAL_FILE, result)
    partial_path.unlink(missing_ok=True)
    return result


def train_baseline(dataset: str, workdir: str | Path, *, epochs: int = 20, seed: int = 0,
                   data_dir: str | None = None, source: str = "files", augment: str | None = None,
                   model: str = "convnet", batch_size: int = 256, lr: float = 0.01, progress: bool = True,
                   data: LoadedData | None = None, subset_per_class: int | None = None,
                   model_kwargs: dict[str, Any] | None = None, lr_schedule: str = "step") -> dict[str, Any]:
    """Train one network on the whole training set (the full-data baseline); resumable per epoch.

    `subset_per_class` trains on that many random images per class instead, and `model_kwargs` change the network
    (e.g. a narrow one for smoke runs). `lr_schedule`: 'step' (x0.1 at half the epochs, DC's) or 'cosine'. Writes
    workdir/result.json with the test accuracy, and logs the test accuracy after every epoch to metrics.jsonl.
    """
    augment = default_eval_augmentation(dataset) if augment is None else augment
    train_cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, lr_schedule=lr_schedule)
    config = {"kind": "train", "dataset": dataset.lower(), "source": source, "model": model, "seed": seed,
              "train": dataclasses.asdict(train_cfg), "subset_per_class": subset_per_class}
    if model_kwargs:
        config["model_kwargs"] = dict(model_kwargs)
    run = RunDir(workdir)
    run.check_config(config, train_config_defaults("train"))
    start = time.time()
    data = data or load_real(dataset, data_dir, source, progress)
    run.open(config, train_config_defaults("train"))
    train = data.train
    if subset_per_class is not None:
        images, labels = sample_per_class(jax.random.PRNGKey(seed), train, subset_per_class)
        train = make_real_data(np.asarray(images), np.asarray(labels), train.num_classes)
    net = make_model(model, data.spec.num_classes, **(model_kwargs or {}))
    trainer = Trainer(net, train_cfg, int(train.images.shape[0]))
    keys = jax.random.PRNGKey(seed)[None]
    states = None
    init = jax.jit(jax.vmap(trainer.init_state, in_axes=(0, None)))(keys, train.images)
    restored = run.restore(init)
    if restored is not None:
        _, states = restored
        states = jax.tree.map(jnp.asarray, states)
    else:
        states = init
    run.truncate_metrics(int(states.step[0]))

    def on_epoch(epoch, st):
        acc = float(test_accuracies(net, st, data.test_images, data.test_labels)[0])
        run.log_metrics(epoch * trainer.steps_per_epoch, {"epoch": epoch, "test_accuracy": acc})
        run.save(epoch * trainer.steps_per_epoch, st)
        bar.set_postfix(test_acc=f"{acc:.4f}")

    with tqdm(total=trainer.total_steps, initial=int(states.step[0]), desc=f"train {model} on {dataset}",
              disable=not progress, unit="step", dynamic_ncols=True) as bar:
        states = trainer.run(keys, train.images, train.labels, states=states, progress=bar.update,
                             on_epoch=on_epoch)
    run.close()
    acc = float(test_accuracies(net, states, data.test_images, data.test_labels)[0])
    result = {"test_accuracy": acc, "config": config, "versions": versions(), "device": device_info(),
              "wall_time_s": time.time() - start}
    write_json(run.path / "result.json", result)
    return result
