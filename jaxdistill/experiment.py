"""Experiments as config-as-code, and the one command that runs them.

    python -m jaxdistill.experiment gradient_matching --method dc --dataset mnist --variant ipc1
    python -m jaxdistill.experiment experiments/random_mnist.py --variant smoke
    python experiments/gradient_matching.py --method dc --variant ipc1      # the same: the file hands itself here

An experiment is one Python file (experiments/<name>.py; named by its stem or given as a path, and loaded from that
path, never through sys.path). It defines
    VARIANTS                    the names of its variants, one of them `smoke` (seconds on a CPU; CI runs it);
    get_config(variant, **choices) -> dict
                                everything a run of that variant does, as plain values: at least "name" (the run's
                                name: workdir runs/<name>, record results/<name>.json), "reduced" (whether it runs
                                less than its paper protocol) and "full_protocol_command", plus the papers' values.
                                Each keyword parameter is a flag (--method, --dataset), required unless it has a
                                default, its allowed values in CHOICES;
    run(config, ctx: Context)   the work: distil / train, evaluate, write the record through `ctx`;
and optionally
    CHOICES                     {parameter: allowed values} for get_config's keyword parameters;
    FLAGS                       the runner's optional flags it takes: "checkpoint_every" (--checkpoint-every N) and
                                "seeds" (--seeds S[,S...] runs some of the variant's seeds, --merge pools the parts'
                                records; needs config["seeds"] and records by `finish_distillation`);
    add_arguments(parser)       flags of its own (e.g. trajectory matching's --buffer), read back from ctx.args.
Every experiment takes --variant, --workdir, --out (the record), --data-dir and --no-progress.

A record (results/<name>.json) holds the config, seeds, versions, device, wall time and the command as it was typed;
a distillation's record (`finish_distillation`) keeps its sets beside it, in results/sets/<name>/.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import inspect
import json
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from jaxdistill.errors import ConfigError, JaxdistillError
from jaxdistill.records import device_info, versions, write_json

# experiments/ of a source checkout: where `python -m jaxdistill.experiment <name>` looks after ./experiments
PACKAGE_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
RUNNER_FLAGS = ("checkpoint_every", "seeds")
EXIT_USAGE = 2


# ---- the process and the record ------------------------------------------------------------------------------------
def prepare_process() -> None:
    """First thing in every experiment run: opt in to the CPU settings (XLA flags, restart once with the tuned
    allocator; JAXDISTILL_CPU_TUNING=0 switches them off) and say so, keep compiled programs on disk. The record's
    device.cpu_tuning holds what was in effect."""
    from jaxdistill import cpu_tuning
    from jaxdistill.compilation_cache import enable_compilation_cache

    print(cpu_tuning.describe(cpu_tuning.apply(reexec=True)), file=sys.stderr, flush=True)
    enable_compilation_cache()


def is_reduced(variant: str) -> bool:
    """Whether a variant runs less than its paper protocol by the naming rule: its name contains "_reduced"."""
    return "_reduced" in variant


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed: `python experiments/x.py ...` for a script that handed itself to the runner,
    `python -m jaxdistill.experiment ...` for the runner itself."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).resolve() == Path(__file__).resolve():
        return "python -m jaxdistill.experiment " + " ".join(shlex.quote(a) for a in argv[1:])
    return "python " + " ".join(shlex.quote(a) for a in argv)


def write_record(out: Path, experiment: str, variant: str, config: dict[str, Any], result: dict[str, Any], *,
                 reduced: bool, full_command: str, started: float, command: str | None = None) -> None:
    """The record every accuracy claim points to: config, seeds, versions, device, wall time, command."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"experiment": experiment, "variant": variant, "reduced_protocol": reduced,
                     "command": command or command_line(), "full_protocol_command": full_command, "config": config,
                     "result": result, "versions": versions(), "device": device_info(),
                     "wall_time_s": time.time() - started})
    print(f"wrote {out}")


# ---- runs of some of a variant's seeds, and their merge ------------------------------------------------------------
def seeds_part(variant_seeds: Sequence[int], arg: str | None) -> tuple[list[int], str]:
    """The seeds a run distils and its name suffix: all the variant's seeds (suffix ""), or those `arg` lists
    ("1" or "2,0": suffix "_seed1", "_seed0_2"), which must be some of the variant's."""
    if arg is None:
        return list(variant_seeds), ""
    try:
        seeds = [int(s) for s in arg.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {arg!r}") from None
    if len(set(seeds)) != len(seeds) or not set(seeds) <= set(variant_seeds):
        raise ConfigError(f"--seeds {arg}: give distinct seeds out of this variant's {list(variant_seeds)}")
    return sorted(seeds), seeds_suffix(seeds)


def seeds_suffix(seeds: Sequence[int]) -> str:
    """The name suffix of a run over some of a variant's seeds: [2, 0] -> '_seed0_2'."""
    return "_seed" + "_".join(str(s) for s in sorted(seeds))


SEED_PART = re.compile(r"(?P<name>.+)_seed(?P<seeds>\d+(?:_\d+)*)")  # the stem of a `--seeds` run's record


def seed_part_of(stem: str, seeds: Sequence[Any] | None = None) -> str | None:
    """The variant that the record `stem` is a `--seeds` part of ('dsa_mnist_ipc1_seed0', 'x_seed0_2' -> the name
    before the suffix), or None. Given the record's seeds, the suffix must name exactly those (`seeds_part`)."""
    m = SEED_PART.fullmatch(stem)
    if not m or (seeds is not None and f"_seed{m['seeds']}" != seeds_suffix(seeds)):
        return None
    return m["name"]


def seed_part_records(folder: Path, name: str) -> list[Path]:
    """The records `--seeds` runs of the variant `name` wrote into `folder`: <name>_seed<S>[_<S>...].json."""
    return sorted(p for p in Path(folder).glob(f"{name}_seed*.json") if seed_part_of(p.stem) == name)


def pooled_part(file_name: str, part: dict[str, Any], merged: dict[str, Any] | None) -> bool:
    """Whether the record `merged` (written by `--merge`) pooled the part record `part` as the file `file_name` now
    holds it: listed under that name with the same command and wall time. A part file that a later `--seeds` run
    rewrote (a row run again at another protocol, its parts named as before) is not the part that was pooled."""
    return any(p.get("record") == file_name and p.get("command") == part.get("command")
               and p.get("wall_time_s") == part.get("wall_time_s") for p in (merged or {}).get("parts") or [])


def _same_or_each(values: list[Any]) -> Any:
    """One value where every part has it, else the list of the parts' values."""
    return values[0] if all(v == values[0] for v in values) else values


def pool_seed_records(parts: dict[str, dict[str, Any]], command: str | None = None) -> dict[str, Any]:
    """The record that one run over the seeds of `parts` ({file: record} of `--seeds` runs of one variant)
    would have written; `merge_seed_records` writes it once the parts cover the variant, and the report pools parts
    not yet merged with it.

    The parts must share their configuration (experiment, variant, config, distillation and evaluation config, paper
    value) and hold distinct seeds. The pooled result is what one run over all the seeds gives: the same sets (every
    seed's keys depend on that seed alone) evaluated by the same networks (the evaluation seed is shared), summarised
    over all of them; parts run with other library versions or on another device agree with it up to float
    rounding, and the record says so: its `versions` and `device` are the parts' common ones, or the list of each
    part's. Each part's command, versions, device and wall time are kept under "parts".
    """
    from jaxdistill.evaluate import summarize

    recs = list(parts.values())

    def shared(p: Path, r: dict[str, Any]) -> dict[str, Any]:
        try:
            res = r["result"]
            return {"experiment": r["experiment"], "variant": r["variant"], "reduced": r["reduced_protocol"],
                    "config": {k: v for k, v in r["config"].items() if k != "seeds"},
                    "eval_config": res["eval_config"], "paper": res.get("paper_mean_std"),
                    "distill": {k: v for k, v in res["distill_config"].items() if k != "seeds"},
                    "seeds": r["config"]["seeds"], "per_set": res["per_set"], "distill_record": res["distill_record"]}
        except KeyError as e:
            raise ConfigError(f"cannot merge: {p} is not the record of a --seeds run (it has no {e})") from None
    parts = list(parts)  # their files, by which the record and its errors name them
    views = [shared(p, r) for p, r in zip(parts, recs)]
    compared = ("experiment", "variant", "reduced", "config", "eval_config", "paper", "distill")
    for p, v in zip(parts[1:], views[1:]):
        diff = [k for k in compared if v[k] != views[0][k]]
        if diff:
            raise ConfigError(f"cannot merge {parts[0]} and {p}: they differ in {', '.join(diff)}")
    seeds = sorted(s for v in views for s in v["seeds"])
    if len(set(seeds)) < len(seeds):
        each = "; ".join(f"{Path(p).name}: {v['seeds']}" for p, v in zip(parts, views))
        raise ConfigError(f"cannot merge: the parts' seeds ({each}) repeat a seed")
    per_set = sorted((ps for v in views for ps in v["per_set"]), key=lambda ps: ps["seed"])
    first = recs[0]
    versions_ = _same_or_each([r["versions"] for r in recs])
    device = _same_or_each([r["device"] for r in recs])
    result = {**summarize(per_set), "per_set": per_set, "eval_config": first["result"]["eval_config"],
              "distill_config": {**first["result"]["distill_config"], "seeds": seeds},
              "paper_mean_std": first["result"].get("paper_mean_std"),
              "distill_record": [v["distill_record"] for v in views],  # one per part
              "versions": versions_, "device": device,
              "wall_time_s": float(sum(ps["wall_time_s"] for ps in per_set if "wall_time_s" in ps))}
    record = {"experiment": first["experiment"], "variant": first["variant"],
              "reduced_protocol": first["reduced_protocol"], "command": command or command_line(),
              "full_protocol_command": first["full_protocol_command"],
              "config": {**first["config"], "seeds": seeds}, "result": result, "versions": versions_,
              "device": device, "wall_time_s": float(sum(r["wall_time_s"] for r in recs)),
              "parts": [{"record": Path(p).name, "seeds": v["seeds"], "command": r["command"],
                         "versions": r["versions"], "device": r["device"], "wall_time_s": r["wall_time_s"]}
                        for p, v, r in zip(parts, views, recs)]}
    return record


def merge_seed_records(parts: list[Path], out: Path, variant_seeds: Sequence[int],
                       command: str | None = None) -> dict[str, Any]:
    """Pool the records of runs that each distilled some of a variant's seeds (`--seeds`) into the variant's record
    (`pool_seed_records`), which the parts must cover once each, and write it to `out`."""
    out = Path(out)
    if not parts:
        raise ConfigError(f"cannot merge: no part records to pool (write them with --seeds first; looked for "
                          f"{out.with_suffix('').name}_seed<S>.json in {out.parent})")
    missing = [str(p) for p in parts if not Path(p).exists()]
    if missing:
        raise ConfigError(f"cannot merge: no record at {', '.join(missing)} (run those --seeds first)")
    record = pool_seed_records({str(p): json.loads(Path(p).read_text()) for p in parts}, command)
    seeds = record["config"]["seeds"]
    if seeds != sorted(variant_seeds):
        each = "; ".join(f"{p['record']}: {p['seeds']}" for p in record["parts"])
        raise ConfigError(f"cannot merge: the parts' seeds ({each}) are not the variant's {sorted(variant_seeds)} "
                          f"once each")
    if isinstance(record["versions"], list) or isinstance(record["device"], list):
        print("warning: the parts ran with different library versions or devices; their sets agree with one run's "
              "up to float rounding (each part's are kept in the record)")
    result = record["result"]
    if out.exists():
        print(f"replacing {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, record)
    print(f"merged {len(parts)} records over seeds {seeds}: {100 * result['accuracy_mean']:.2f} +- "
          f"{100 * result['accuracy_std']:.2f} % over {len(result['accuracies'])} networks; wrote {out}")
    return record


# ---- what a run gets -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Context:
    """Where a run of one experiment variant works and what it was asked, as `run(config, ctx)` receives it.

    `name` is the config's name plus a `--seeds` part's suffix (`_seed1`); `grid_name` the config's name (figures of
    a part are those of the variant); `args` every flag, the experiment's own ones included."""
    experiment: str
    variant: str
    config: dict[str, Any]
    name: str
    workdir: Path
    out: Path  # the record
    root: Path  # runs/ and results/ live here
    progress: bool = True
    data_dir: str | None = None
    checkpoint_every: int = 10
    started: float = dataclasses.field(default_factory=time.time)
    command: str = dataclasses.field(default_factory=command_line)
    grid_name: str | None = None
    figures: Path | None = None  # default: figures/ beside the record (results/figures)
    args: argparse.Namespace = dataclasses.field(default_factory=argparse.Namespace)

    @property
    def writes_record(self) -> bool:
        """Smoke runs check the pipeline: they write no record, table or figure."""
        return self.variant != "smoke"

    @property
    def figures_dir(self) -> Path:
        # beside the record, so that a run with --out elsewhere (a check) leaves the committed figures alone
        return Path(self.figures or Path(self.out).parent / "figures")

    def write_record(self, record_config: dict[str, Any], result: dict[str, Any]) -> None:
        """Write `result` with `record_config` to the record (`out`), labelled by the config's "reduced" and
        "full_protocol_command"."""
        write_record(self.out, self.experiment, self.variant, record_config, result,
                     reduced=bool(self.config["reduced"]), full_command=self.config["full_protocol_command"],
                     started=self.started, command=self.command)


def finish_distillation(ctx: Context, data, distill_record: dict[str, Any], record_config: dict[str, Any]) -> dict:
    """After a distillation into ctx.workdir: evaluate its sets with config["models"] networks of config["epochs"]
    epochs each (the distilled network unless config["eval_model"] names one; skipped when an earlier run of the
    command finished that evaluation), print the result, and unless it is a smoke run draw every set
    (`<grid_name>_seed<S>.png`) and the loss curve (`<name>_loss.png`) into ctx.figures_dir, keep the sets beside
    the record (`keep_set`; the record's "set" names the folder) and write the record. Reads config "method",
    "dataset", "ipc", "models", "epochs", "paper" (mean, std in %, or None). Returns the evaluation."""
    from jaxdistill.checkpoint import RunDir
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.runner import load_synthetic
    from jaxdistill.visualize import save_image_grid, save_loss_curve

    cfg, workdir = ctx.config, Path(ctx.workdir)
    method, dataset, paper = cfg["method"], cfg["dataset"], cfg.get("paper")
    res = _evaluation(ctx, data, workdir, model=cfg.get("eval_model"))
    print(f"{method} {dataset} ipc={cfg['ipc']} ({ctx.variant}): {100 * res['accuracy_mean']:.2f} +- "
          f"{100 * res['accuracy_std']:.2f} % over {len(res['accuracies'])} networks"
          + (f" (paper {paper[0]} +- {paper[1]})" if paper else "")
          + "".join(f"; {k} {res['metrics_mean'][k]:.3f} +- {res['metrics_std'][k]:.3f}"
                    for k in ("balanced_accuracy", "f1", "roc_auc") if k in res.get("metrics_mean", {})))
    if not ctx.writes_record:
        return res
    spec = REGISTRY[dataset]
    config, images, labels, seeds = load_synthetic(workdir)
    mean, std = (0.0,) * len(spec.mean), (1.0,) * len(spec.std)
    if not config.get("zca"):
        mean, std = spec.mean, spec.std
    for s, seed in enumerate(seeds):
        hard = labels[s] if labels[s].ndim == 1 else labels[s].argmax(-1)  # soft labels: drawn by their argmax
        save_image_grid(ctx.figures_dir / f"{ctx.grid_name or ctx.name}_seed{seed}.png", images[s], hard,
                        spec.num_classes, mean, std, spec.class_names,
                        title=f"{method.upper()} {dataset} ipc {cfg['ipc']}, seed {seed}")
    over = "mean over seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    if any("match_loss" in r for r in RunDir(workdir).read_metrics()):  # a selection logs no loss
        save_loss_curve(ctx.figures_dir / f"{ctx.name}_loss.png", workdir,
                        title=f"{method.upper()} {dataset} ipc {cfg['ipc']} ({over})")
    if "confusion_matrix_total" in res:  # an imbalanced dataset's evaluation (MHIST): summed over networks
        from jaxdistill.visualize import plot_confusion_matrix
        plot_confusion_matrix(res["confusion_matrix_total"], spec.class_names,
                              ctx.figures_dir / f"{ctx.name}_confusion.png",
                              title=f"{method.upper()} {dataset} ipc {cfg['ipc']}: {len(res['accuracies'])} networks"
                                    + (" [stand-in]" if res.get("data", {}).get("stand_in") else ""))
    kept = keep_set(workdir, Path(ctx.out))
    ctx.write_record(record_config, {**res, "paper_mean_std": paper, "distill_record": distill_record,
                                     "set": relative(kept, ctx.root)})
    return res


def keep_set(workdir: Path, out: Path) -> Path:
    """Copy the run's sets (config.json, and synthetic.npz's arrays deflated: real images shrink about tenfold)
    beside the record `out`, into <out's folder>/sets/<out's stem>/, so that the record's sets can be evaluated
    again later (e.g. `cross_architecture.py --distilled`) after runs/ is gone. Returns that folder, which may be the
    run folder itself (`--workdir D/sets/N --out D/N.json`): then the sets are already kept, as they are."""
    import numpy as np

    from jaxdistill.records import write_npz
    folder = Path(out).parent / "sets" / Path(out).stem
    if folder.resolve() == Path(workdir).resolve():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(workdir) / "config.json", folder / "config.json")
    with np.load(Path(workdir) / "synthetic.npz") as z:
        write_npz(folder / "synthetic.npz", compressed=True, **{k: z[k] for k in z.files})
    return folder


SET_FIELDS = (("result", "set"), ("config", "sets"), ("config", "synthetic"), ("config", "clipped_from"))


def named_sets(record: Any, root: Path) -> set[Path]:
    """The set folders a record names as sets it evaluated, or derived the sets it evaluated from (`SET_FIELDS`),
    resolved against `root`, from which records name paths (`relative`)."""
    named = set()
    for section, key in SET_FIELDS if isinstance(record, dict) else ():
        value = (record.get(section) or {}).get(key)
        named.update((Path(root) / v).resolve() for v in (value if isinstance(value, list) else [value])
                     if isinstance(v, str))
    return named


def kept_set_readers(folder: Path, out: Path, root: Path) -> list[str]:
    """The records beside `out` that name the set folder `folder` (`named_sets`), other than `out` itself and the
    merged record of its variant (both are what a run writing `out` again replaces)."""
    out, folder = Path(out), Path(folder).resolve()
    own = {out.stem, seed_part_of(out.stem)}
    return sorted(p.name for p in out.parent.glob("*.json")
                  if p.stem not in own and folder in named_sets(json.loads(p.read_text()), root))


KEPT_FILES = {"config.json", "synthetic.npz"}  # what `keep_set` writes


def check_kept_set(ctx: Context) -> None:
    """Refuse, before a run starts, to write the record `ctx.out` where its sets would go (sets/<out's stem>/, or
    sets/<out's stem>_set<i>/ for several, `keep_set`) into a folder that is not its own to replace: one that other
    records evaluated (`kept_set_readers`), which would then name sets they never saw, or a whole run folder
    committed as it is (checkpoints and all: the workdirs of before the spine redesign, which tests and experiments
    read), which `keep_set` would mix a new set into. A folder the run is given (`--workdir` to resume it,
    `--distilled` to evaluate its sets) is exempt: the run writes nothing new into it."""
    out = Path(ctx.out)
    sets = out.parent / "sets"
    several = [f for f in sorted(sets.glob(f"{glob.escape(out.stem)}_set*"))
               if re.fullmatch(r"_set\d+", f.name[len(out.stem):])]
    given = {Path(ctx.workdir).resolve()} | {Path(v).resolve() for v in _path_args(ctx.args)}
    for folder in [sets / out.stem, *several]:
        if not folder.is_dir() or folder.resolve() in given:
            continue
        readers = kept_set_readers(folder, out, ctx.root)
        if readers:
            raise ConfigError(f"{folder} is read by {', '.join(readers)}: a run writing {out.name} would replace "
                              f"that set with its own; move the set and point those records at its new place "
                              f"first, or give this run another --out")
        others = sorted(p.name for p in folder.iterdir() if p.name not in KEPT_FILES)
        if others:
            raise ConfigError(f"{folder} is a whole run folder committed as it is ({', '.join(others)}), not a set "
                              f"a record kept: a run writing {out.name} would mix its set into it; move that folder "
                              f"first, or give this run another --out")


def _path_args(args: argparse.Namespace) -> list[str]:
    """Every string among a run's flag values, lists included: the folders it was given."""
    return [x for v in vars(args).values() for x in (v if isinstance(v, (list, tuple)) else [v])
            if isinstance(x, str)]


def same_set(a: Path, b: Path) -> bool:
    """Whether two run folders hold the same sets: equal config.json and synthetic.npz arrays (however stored)."""
    import numpy as np
    if json.loads((Path(a) / "config.json").read_text()) != json.loads((Path(b) / "config.json").read_text()):
        return False
    with np.load(Path(a) / "synthetic.npz") as x, np.load(Path(b) / "synthetic.npz") as y:
        return sorted(x.files) == sorted(y.files) and all(
            x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x.files)


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (as records name files), else absolute."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def finished_evaluation(workdir: Path, models: int, epochs: int, model: str | None = None,
                        augment: str | None = None, protocol: str | None = None,
                        train_overrides: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """workdir's finished evaluation (eval.json) when it is the one asked for, else None: `models` networks of
    `epochs` epochs each, of the network `model` names (default: the one the sets were distilled with), by the
    protocol and with the augmentation `protocol` and `augment` name (default: the set's own, `evaluate_workdir`'s),
    with the same `train_overrides` (e.g. a fixed lr instead of the set's learned one; none by default), and of the
    sets synthetic.npz holds now. A set distilled further in the same workdir, or replaced there, has other
    checksums than the ones its evaluation kept (`set_sha256` per set) and is evaluated again, not given the old
    set's accuracies."""
    from jaxdistill.models import ModelConfig
    from jaxdistill.runner import EVAL_FILE, distilled_model, evaluation_protocol, load_synthetic, set_checksum

    eval_file = Path(workdir) / EVAL_FILE
    if not eval_file.exists():
        return None
    done = json.loads(eval_file.read_text())
    done_cfg = done.get("eval_config", {})
    if done_cfg.get("num_models") != models or done_cfg.get("train", {}).get("epochs") != epochs:
        return None
    if (done.get("train_overrides") or {}) != (train_overrides or {}):
        return None
    config, images, labels, seeds = load_synthetic(workdir)
    wanted_model = ModelConfig.parse(model) if model is not None else distilled_model(config)
    if done_cfg.get("model") != str(wanted_model):
        return None
    protocol, augment = evaluation_protocol(config, protocol, augment)  # (augment None: IDC's protocol's own)
    # an eval.json from before it named its protocol was made by the set's default one
    if done.get("protocol", evaluation_protocol(config)[0]) != protocol:
        return None
    if augment is not None and done_cfg.get("train", {}).get("augment") != augment:
        return None
    per_set = done.get("per_set", [])
    if [r.get("seed") for r in per_set] != [int(s) for s in seeds]:
        return None
    if any(r.get("set_sha256") != set_checksum(images[i], labels[i]) for i, r in enumerate(per_set)):
        return None
    return done


def evaluation_augment(config: dict[str, Any]) -> str | None:
    """The augmentation an experiment's config asks its evaluation networks to train with: None (the sets' own,
    `evaluate_workdir`'s default) unless config "augment" is "dsa", DSA's strategy for the config's dataset (the
    control of sets that are evaluated under DSA's augmentation: real images under the same evaluation)."""
    if config.get("augment") is None:
        return None
    if config["augment"] != "dsa":
        raise ConfigError(f"unknown evaluation augmentation {config['augment']!r}; 'dsa' or none")
    from jaxdistill.data.dsa import default_dsa_strategy
    return f"dsa:{default_dsa_strategy(config.get('dataset', 'mnist'))}"


def _evaluation(ctx: Context, data, workdir: Path, model: str | None = None,
                first: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """workdir's evaluation with ctx.config's "models" networks of "epochs" epochs (by its "protocol", default the
    set's own, with its `evaluation_augment`, and at its "lr" if it names one, else the set's learned lr or the
    protocol's): the one an earlier run of the command finished (its eval.json), else a new one, which trains only
    the networks after `first`'s (per set: the first networks of the same evaluation, `evaluate_workdir`)."""
    from jaxdistill.runner import evaluate_workdir

    cfg = ctx.config
    augment, protocol = evaluation_augment(cfg), cfg.get("protocol")
    overrides = {"lr": float(cfg["lr"])} if cfg.get("lr") is not None else None
    done = finished_evaluation(workdir, cfg["models"], cfg["epochs"], model, augment, protocol, overrides)
    if done is not None:
        return done
    return evaluate_workdir(workdir, num_models=cfg["models"], epochs=cfg["epochs"], data=data,
                            progress=ctx.progress, model=model, augment=augment, protocol=protocol,
                            train_overrides=overrides, first=first)


def evaluate_starting_images(ctx: Context, data, workdir: Path, method_overrides: dict[str, Any] | None = None
                             ) -> dict[str, Any]:
    """The control of a distillation: its starting images (0 iterations of ctx.config's method, dataset, ipc and
    seeds, so the same draw) evaluated as the distilled sets are (config "models" and "epochs"), in `workdir`; an
    earlier run's evaluation is reused. Prints the result and returns its summary for the record."""
    from jaxdistill.runner import distill

    cfg = ctx.config
    distill(cfg["method"], cfg["dataset"], cfg["ipc"], cfg["seeds"], workdir, iterations=0, data=data,
            method_overrides=method_overrides, policy=cfg.get("policy"), progress=False,
            resolution=cfg.get("resolution"))
    res = _evaluation(ctx, data, workdir)
    print(f"starting images ({ctx.variant}): {100 * res['accuracy_mean']:.2f} +- {100 * res['accuracy_std']:.2f} % "
          f"over {len(res['accuracies'])} networks")
    return {k: res[k] for k in ("accuracy_mean", "accuracy_std", "accuracies", "metrics_mean", "metrics_std")
            if k in res}


# ---- finding and loading an experiment -----------------------------------------------------------------------------
def experiment_folders() -> list[Path]:
    """Where an experiment named by its stem is looked for: ./experiments, then the source checkout's."""
    return list(dict.fromkeys([Path.cwd() / "experiments", PACKAGE_EXPERIMENTS]))


def available_experiments() -> list[str]:
    names = set()
    for folder in experiment_folders():
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    return sorted(names)


def find_experiment(experiment: str | Path) -> Path:
    """The file of an experiment given by path (experiments/x.py) or by name (x, found in `experiment_folders()`)."""
    given = Path(experiment)
    if given.suffix == ".py" or len(given.parts) > 1:
        if given.is_file():
            return given.resolve()
        raise ConfigError(f"no experiment file at {given}; give a path to an experiment's .py file or one of the "
                          f"names {', '.join(available_experiments()) or '(none found)'}")
    for folder in experiment_folders():
        if (folder / f"{experiment}.py").is_file():
            return (folder / f"{experiment}.py").resolve()
    raise ConfigError(f"no experiment named {experiment!r} (looked in "
                      f"{', '.join(str(f) for f in experiment_folders())}); choose one of "
                      f"{', '.join(available_experiments()) or '(none found)'} or give a path to its .py file")


def load_experiment(path: str | Path) -> ModuleType:
    """Import an experiment file from its path (no sys.path change) and check it defines the interface."""
    path = Path(path).resolve()
    name = f"jaxdistill_experiment_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    missing = [a for a in ("VARIANTS", "get_config", "run") if not hasattr(module, a)]
    if missing:
        raise ConfigError(f"{path} is not an experiment: it defines no {', '.join(missing)} "
                          f"(see `python -m jaxdistill.experiment --help`)")
    if "smoke" not in module.VARIANTS:
        raise ConfigError(f"{path} has no `smoke` variant; every experiment has one (seconds on a CPU, run by CI)")
    return module


def config_choices(module: ModuleType) -> dict[str, tuple[tuple, Any]]:
    """get_config's keyword parameters: {name: (allowed values or (), default or inspect.Parameter.empty)}."""
    params = list(inspect.signature(module.get_config).parameters.values())[1:]  # after `variant`
    allowed = getattr(module, "CHOICES", {})
    return {p.name: (tuple(allowed.get(p.name, ())), p.default) for p in params}


# ---- the command ---------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(module: ModuleType, prog: str) -> argparse.ArgumentParser:
    """The flags of one experiment: get_config's choices, the common ones, its FLAGS and its own."""
    doc = (module.__doc__ or "").strip()
    p = _Parser(prog=prog, description=doc.splitlines()[0] if doc else None)
    for name, (allowed, default) in config_choices(module).items():
        required = default is inspect.Parameter.empty
        p.add_argument("--" + name.replace("_", "-"), dest=name, choices=allowed or None, required=required,
                       default=None if required else default,
                       help=None if required else f"default {default}")
    p.add_argument("--variant", choices=sorted(module.VARIANTS), required=True)
    p.add_argument("--workdir", default=None, help="run folder (default runs/<name>)")
    p.add_argument("--out", default=None, help="the record (default results/<name>.json)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-progress", action="store_true")
    flags = tuple(getattr(module, "FLAGS", ()))
    unknown = set(flags) - set(RUNNER_FLAGS)
    if unknown:
        raise ConfigError(f"{module.__file__}: FLAGS has {', '.join(sorted(unknown))}; the runner's optional flags "
                          f"are {', '.join(RUNNER_FLAGS)}")
    if "checkpoint_every" in flags:
        p.add_argument("--checkpoint-every", type=int, default=10,
                       help="save the synthetic sets every N iterations (an interrupted run loses at most N)")
    if "seeds" in flags:
        p.add_argument("--seeds", default=None,
                       help="distil and evaluate only these of the variant's seeds (comma-separated), e.g. one per "
                            "machine or per session; by default into runs/<name>_seed<S> and "
                            "results/<name>_seed<S>.json, where --merge finds the record")
        p.add_argument("--merge", action="store_true",
                       help="run nothing: pool the records results/<name>_seed<S>.json of --seeds runs that "
                            "together cover the variant's seeds into results/<name>.json (or --out)")
    if hasattr(module, "add_arguments"):
        module.add_arguments(p)
    return p


def run_experiment(module: ModuleType, argv: Sequence[str], prog: str, command: str | None = None,
                   prepare: bool = False) -> None:
    """Parse an experiment's flags, build its config, and run it (or merge its seed parts). `prepare` calls
    `prepare_process()` once the flags are read (the command does; a usage error or --help then costs no restart)."""
    args = build_parser(module, prog).parse_args(list(argv))
    if prepare:
        prepare_process()  # before anything starts jax's backend; may restart the process once
    choices = {name: getattr(args, name) for name in config_choices(module)}
    config = module.get_config(args.variant, **choices)
    root = Path(module.__file__).resolve().parents[1]  # runs/ and results/ beside the experiments folder
    results = root / "results"
    name = config["name"]
    if getattr(args, "merge", False):
        if args.seeds is not None or args.workdir is not None:
            raise ConfigError("--merge pools finished records: it takes neither --seeds nor --workdir")
        merge_seed_records(seed_part_records(results, name), Path(args.out or results / f"{name}.json"),
                           config["seeds"], command=command)
        return
    suffix = ""
    if getattr(args, "seeds", None) is not None:
        seeds, suffix = seeds_part(config["seeds"], args.seeds)
        config = {**config, "seeds": seeds}
    ctx = Context(experiment=Path(module.__file__).stem, variant=args.variant, config=config, name=name + suffix,
                  grid_name=name, workdir=Path(args.workdir or root / "runs" / (name + suffix)),
                  out=Path(args.out or results / f"{name + suffix}.json"), root=root,
                  progress=not args.no_progress, data_dir=args.data_dir,
                  checkpoint_every=getattr(args, "checkpoint_every", 10), command=command or command_line(),
                  args=args)
    if ctx.writes_record:
        check_kept_set(ctx)
    module.run(config, ctx)


def _usage() -> str:
    return ("usage: python -m jaxdistill.experiment EXPERIMENT --variant VARIANT [flags]\n"
            "  EXPERIMENT: a file's path (experiments/x.py) or the name of one in "
            f"{' or '.join(str(f) for f in experiment_folders() if f.is_dir()) or './experiments'}: "
            f"{', '.join(available_experiments()) or '(none)'}\n"
            "  `python -m jaxdistill.experiment EXPERIMENT --help` lists its variants and flags.\n")


def main(experiment: str | Path | None = None, argv: Sequence[str] | None = None) -> None:
    """The one entry point. `main()` reads `EXPERIMENT [flags]` from the command line
    (`python -m jaxdistill.experiment`); an experiment file's `if __name__ == "__main__": main(__file__)` runs itself
    with its command-line flags. Errors meant for people print as one line and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if experiment is None:
        if not argv or argv[0] in ("-h", "--help"):
            print(_usage(), end="")
            raise SystemExit(0 if argv else EXIT_USAGE)
        experiment, argv = argv[0], argv[1:]
        prog = f"python -m jaxdistill.experiment {experiment}"
    else:
        prog = Path(experiment).name
    try:
        run_experiment(load_experiment(find_experiment(experiment)), argv, prog, prepare=True)
    except JaxdistillError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


if __name__ == "__main__":  # run from the imported module, the one experiment files import from
    from jaxdistill.experiment import main as _main
    _main()
