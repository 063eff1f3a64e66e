"""The `jaxdistill` command: parses flags and calls `runner`; errors for people are one line and exit status 2."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from jaxdistill import cpu_tuning
from jaxdistill.compilation_cache import enable_compilation_cache
from jaxdistill.errors import DataWarning, JaxdistillError, positive_finite

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"jaxdistill: error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(minimum: int):
    """argparse type: an integer >= minimum, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0, with a one-line message otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not positive_finite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _pair_list(text: str) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(t), float(a)) for t, a in (p.split(":") for p in text.split(",") if p.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T:ALPHA pairs separated by commas, got {text!r}") from None


def _setting(text: str) -> tuple[str, object]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    import ast
    value = value.strip()
    if value.lower() in ("true", "false"):  # as a shell user writes them: a bool, not the string (which is truthy)
        return name.strip(), value.lower() == "true"
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word is a string
    return name.strip(), parsed


def _existing_dir(text: str) -> str:
    if not os.path.isdir(text) or not os.access(text, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not a readable directory")
    return text


def build_parser() -> argparse.ArgumentParser:
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.methods import METHODS

    p = _Parser(prog="jaxdistill", description="Dataset and knowledge distillation in JAX.")
    p.add_argument("--verbose", action="store_true",
                   help="print the process settings applied (CPU tuning: XLA flags, allocator; compilation cache)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def data_flags(q):
        q.add_argument("--data-dir", type=_existing_dir, default=None,
                       help="folder holding the dataset files (else $JAXDISTILL_DATA, else download to the cache)")

    q = sub.add_parser("datasets", help="list registered datasets and whether they are present and verified")
    data_flags(q)
    q.add_argument("--cache-dir", default=None, help="cache folder (default $JAXDISTILL_CACHE or ~/.cache/jaxdistill)")

    q = sub.add_parser("distill", help="distil a dataset into a few synthetic images per class")
    q.add_argument("--method", required=True, choices=sorted(METHODS), metavar="NAME",
                   help=f"one of: {', '.join(sorted(METHODS))}")
    q.add_argument("--dataset", required=True, choices=sorted(REGISTRY), metavar="NAME",
                   help=f"one of: {', '.join(sorted(REGISTRY))}")
    q.add_argument("--ipc", type=_positive_int, required=True, help="images per class")
    seeds = q.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=_seed_list, default=None, help="several seeds, e.g. 0,1,2 (one vmapped run)")
    q.add_argument("--workdir", required=True, help="run folder; rerunning on it resumes")
    q.add_argument("--iterations", type=_nonnegative_int, default=None,
                   help="outer iterations (default: the method's paper value)")
    q.add_argument("--checkpoint-every", type=_positive_int, default=50)
    q.add_argument("--parallel", choices=("auto", "vmap", "sequential"), default="auto",
                   help="seeds as one vmapped program or one after another (default: sequential on CPU)")
    q.add_argument("--buffer", default=None, help="expert trajectories for mtt / datm (made by `jaxdistill experts`)")
    q.add_argument("--zca", action="store_true",
                   help="distil on ZCA-whitened data (trajectory matching's CIFAR protocol; evaluation follows)")
    q.add_argument("--resolution", type=_positive_int, default=None,
                   help="image size in px (one the dataset allows; default its native size; evaluation follows)")
    q.add_argument("--min-agreement", type=int, default=None, choices=range(4, 8), metavar="4..7",
                   help="MHIST: distil from the training images on which at least this many of the 7 annotators agree")
    q.add_argument("--set", dest="settings", action="append", type=_setting, default=[], metavar="NAME=VALUE",
                   help="a method setting, e.g. --set syn_steps=40 or --set model=convnet:depth=4 (repeatable; "
                        "see the method's config)")
    q.add_argument("--policy", dest="policy", action="append", type=_setting, default=[], metavar="NAME=VALUE",
                   help="how to run (same results up to float rounding), e.g. --policy class_loop=scan "
                        "(repeatable; see jaxdistill/policy.py)")
    q.add_argument("--no-progress", action="store_true")
    data_flags(q)

    q = sub.add_parser("experts", help="train expert trajectories for trajectory matching (resumable)")
    q.add_argument("--dataset", required=True, choices=sorted(REGISTRY), metavar="NAME")
    q.add_argument("--buffer", required=True, help="buffer folder (rerunning on it resumes)")
    q.add_argument("--num-experts", type=_positive_int, default=10)
    q.add_argument("--first-seed", type=_nonnegative_int, default=0)
    q.add_argument("--epochs", type=_positive_int, default=50)
    q.add_argument("--lr", type=_positive_float, default=0.01)
    q.add_argument("--model", default=None,
                   help="e.g. 'convnet' or 'convnet:width=64,depth=3' (default: the ConvNet with the dataset's depth "
                        "for its image size, the network distillation uses)")
    q.add_argument("--resolution", type=_positive_int, default=None,
                   help="image size in px (one the dataset allows; default its registered size)")
    q.add_argument("--augment", default=None, help="default: DSA with the dataset's strategy (the MTT protocol)")
    q.add_argument("--zca", action="store_true", help="train on ZCA-whitened data (distil with --zca then)")
    q.add_argument("--verify", action="store_true", help="only check the buffer: every snapshot present and intact")
    q.add_argument("--no-progress", action="store_true")
    data_flags(q)

    q = sub.add_parser("evaluate", help="train fresh networks on a distilled set and test them")
    q.add_argument("workdir", help="a distill run folder (holds synthetic.npz)")
    q.add_argument("--models", type=_positive_int, default=20,
                   help="networks per synthetic set (default 20); after an evaluation of the workdir with fewer "
                        "networks and the same settings, only the new ones train")
    q.add_argument("--epochs", type=_positive_int, default=1000, help="training epochs (default 1000)")
    q.add_argument("--augment", default=None,
                   help="evaluation augmentation (default: DSA's for a DSA set, else the dataset's DC setting)")
    q.add_argument("--seed", type=int, default=0, help="seed of the evaluation networks")
    q.add_argument("--network-seeding", choices=("per_set", "shared"), default="per_set",
                   help="per_set (default): each set of a seed sweep meets its own networks; shared: every set the "
                        "same ones (how records made before this option were evaluated)")
    q.add_argument("--protocol", choices=("dc", "idc"), default=None,
                   help="how the networks train: DC's (batch 256, lr x0.1 at half) or IDC's (batch 64, lr x0.2 at "
                        "2/3 and 5/6, IDC's augmentation); default IDC's for IDC sets, else DC's")
    q.add_argument("--model", default=None,
                   help="network to train, e.g. 'convnet:width=64' or 'mlp:128' (default: the one it was distilled "
                        "with)")
    q.add_argument("--lr", type=_positive_float, default=None,
                   help="training lr of the networks (default: the lr the set's method learned, for MTT and DATM "
                        "sets, else the protocol's 0.01)")
    q.add_argument("--metrics", type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
                   default=None, help="comma-separated metric names (default: the dataset's; MHIST reports balanced "
                                      "accuracy, sensitivity, specificity, F1, ROC AUC and the confusion matrix)")
    q.add_argument("--no-progress", action="store_true")
    data_flags(q)

    q = sub.add_parser("kd", help="knowledge distillation: teachers, students alone and students with KD, per seed")
    q.add_argument("--dataset", required=True, choices=sorted(REGISTRY), metavar="NAME")
    q.add_argument("--workdir", required=True, help="run folder; rerunning on it resumes")
    q.add_argument("--teacher", default="mlp:1200,1200,dropout=0.5,input_dropout=0.2",
                   help="teacher model, e.g. 'mlp:1200,1200,dropout=0.5' or 'convnet:width=32,depth=3'")
    q.add_argument("--student", default="mlp:800,800", help="student model (same syntax)")
    q.add_argument("--teacher-epochs", type=_positive_int, default=20)
    q.add_argument("--student-epochs", type=_positive_int, default=20)
    q.add_argument("--teacher-augment", default="jitter", help="teacher training augmentation (default jitter)")
    q.add_argument("--lr", type=_positive_float, default=0.05, help="SGD learning rate (momentum 0.9, x0.1 at half)")
    q.add_argument("--batch-size", type=_positive_int, default=128)
    q.add_argument("--temperature", type=_positive_float, default=20.0)
    q.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label term (1 = no teacher)")
    q.add_argument("--sweep", type=_pair_list, default=(), metavar="T:ALPHA,...",
                   help="more (temperature, alpha) pairs for the students, e.g. 2:0.5,8:0.5")
    q.add_argument("--seeds", type=_seed_list, default=[0, 1, 2, 3, 4], help="at least 2 (default 0,1,2,3,4)")
    q.add_argument("--omit-class", type=int, default=None, help="drop this class from the students' transfer set")
    q.add_argument("--validation", type=_nonnegative_int, default=None,
                   help="held-out training examples (default 5000 with --omit-class, else 0)")
    q.add_argument("--outputs-dir", default=None,
                   help="where finished phases leave their small outputs (test errors, teacher logits; default the "
                        "workdir): keep it somewhere lasting and a rerun resumes from it on a machine without the "
                        "workdir's checkpoints")
    q.add_argument("--no-progress", action="store_true")
    data_flags(q)

    q = sub.add_parser("train", help="train a network on the full training set (the full-data baseline)")
    q.add_argument("--dataset", required=True, choices=sorted(REGISTRY), metavar="NAME")
    q.add_argument("--workdir", required=True)
    q.add_argument("--epochs", type=_positive_int, default=20)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--augment", default=None)
    q.add_argument("--no-progress", action="store_true")
    data_flags(q)

    q = sub.add_parser("report", help="the comparison study: every record under RESULTS in one table (markdown, CSV) "
                                      "with figures; --check-readme / --update-readme for the README's tables")
    q.add_argument("results", nargs="?", default="results", type=_existing_dir,
                   help="the folder of JSON records (default: results)")
    q.add_argument("--out", default=None, help="where tables and figures go (default: RESULTS/report)")
    readme = q.add_mutually_exclusive_group()
    readme.add_argument("--update-readme", metavar="README", default=None,
                        help="rewrite the generated tables (<!-- report:NAME --> blocks) in this file")
    readme.add_argument("--check-readme", metavar="README", default=None,
                        help="exit 1 when the generated tables in this file disagree with the records")
    return p


def _counts_text(counts, class_names) -> str:
    """'HP 1545 / SSA 630 (2.45:1)' for two classes; 'min 5421 .. max 6742 (1.24:1)' for more; '?' if unknown."""
    if not counts:
        return "?"
    ratio = f"{max(counts) / min(counts):.2f}:1" if min(counts) else "a class is empty"
    if len(counts) <= 3:
        return " / ".join(f"{n} {c}" for n, c in zip(class_names, counts)) + f" ({ratio})"
    return f"{sum(counts)}, per class {min(counts)}..{max(counts)} ({ratio})"


def _cmd_datasets(args) -> int:
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.data.sources import dataset_class_counts, dataset_status
    print(f"{'dataset':<15} {'shape':<12} {'classes':>7}  {'status':<10} location")
    counts_lines = []
    for name, spec in sorted(REGISTRY.items()):
        status, where = dataset_status(name, args.data_dir, args.cache_dir)
        shape = "x".join(str(d) for d in spec.image_shape)
        print(f"{name:<15} {shape:<12} {spec.num_classes:>7}  {status:<10} {where}")
        train, test, origin = dataset_class_counts(name, args.data_dir, args.cache_dir)
        counts_lines.append(f"{name:<15} train {_counts_text(train, spec.class_names)}; "
                            f"test {_counts_text(test, spec.class_names)} [{origin}]")
    print("\nimages per class (largest:smallest class)")
    print("\n".join(counts_lines))
    return 0


def _cmd_distill(args) -> int:
    from jaxdistill.runner import distill
    seeds = args.seeds if args.seeds is not None else [0 if args.seed is None else args.seed]
    overrides = dict(args.settings)
    if args.buffer is not None:
        overrides["buffer_dir"] = os.path.abspath(args.buffer)
    rec = distill(args.method, args.dataset, args.ipc, seeds, args.workdir, iterations=args.iterations,
                  data_dir=args.data_dir, checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                  parallel=args.parallel, method_overrides=overrides, zca=args.zca, policy=dict(args.policy),
                  resolution=args.resolution, min_agreement=args.min_agreement)
    print(f"wrote {os.path.join(args.workdir, 'synthetic.npz')} ({rec['iterations']} iterations, "
          f"{rec['wall_time_s']:.1f} s)")
    return 0


def _cmd_evaluate(args) -> int:
    from jaxdistill.runner import evaluate_workdir
    res = evaluate_workdir(args.workdir, num_models=args.models, epochs=args.epochs, augment=args.augment,
                           data_dir=args.data_dir, seed=args.seed, model=args.model, progress=not args.no_progress,
                           metrics=args.metrics, protocol=args.protocol, network_seeding=args.network_seeding,
                           train_overrides=None if args.lr is None else {"lr": args.lr})
    n = len(res["accuracies"])
    print(f"test accuracy {100 * res['accuracy_mean']:.2f} +- {100 * res['accuracy_std']:.2f} % "
          f"over {n} networks ({res['num_sets']} synthetic set(s)); wrote {os.path.join(args.workdir, 'eval.json')}")
    others = [k for k in res.get("metrics_mean", {}) if k != "accuracy" and not isinstance(res["metrics_mean"][k], list)]
    for k in others:
        print(f"  {k} {res['metrics_mean'][k]:.4f} +- {res['metrics_std'][k]:.4f}")
    return 0


def _cmd_experts(args) -> int:
    from jaxdistill.experts import ExpertBuffer, ExpertConfig, train_experts
    from jaxdistill.models import ModelConfig
    if args.verify:
        problems = ExpertBuffer(args.buffer).verify()
        for line in problems:
            print(line)
        print(f"{args.buffer}: " + ("every snapshot present and intact" if not problems else
                                    f"{len(problems)} problem(s)"))
        return 0 if not problems else EXIT_USAGE
    import numpy as np

    from jaxdistill.runner import load_real
    data = load_real(args.dataset, args.data_dir, progress=not args.no_progress, zca=args.zca,
                     resolution=args.resolution)
    chosen = ModelConfig("convnet", {"depth": data.spec.convnet_depth()}) if args.model is None else \
        ModelConfig.parse(args.model)
    model, kwargs = chosen.name, chosen.settings
    config = ExpertConfig(model=model, model_kwargs=kwargs, epochs=args.epochs, lr=args.lr, augment=args.augment,
                          zca=args.zca)
    seeds = list(range(args.first_seed, args.first_seed + args.num_experts))
    manifest = train_experts(args.buffer, np.asarray(data.train.images), np.asarray(data.train.labels),
                             args.dataset, data.spec.num_classes, seeds, config, progress=not args.no_progress)
    done = sum(1 for e in manifest["experts"].values() if e["complete"])
    print(f"{args.buffer}: {done} complete expert(s) of {args.epochs} epochs")
    return 0


def _cmd_kd(args) -> int:
    import numpy as np

    from jaxdistill.kd import KDConfig, NetSpec, run_kd
    from jaxdistill.models import parse_model
    from jaxdistill.records import write_json
    from jaxdistill.report import kd_table
    from jaxdistill.runner import load_real
    from jaxdistill.train import TrainConfig

    def net(text, epochs, augment):
        name, kwargs = parse_model(text)
        train = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, momentum=0.9, weight_decay=0.0,
                            augment=augment, parallel="vmap" if name == "mlp" else "auto")
        return NetSpec(name, kwargs, train)

    validation = args.validation if args.validation is not None else (5000 if args.omit_class is not None else 0)
    config = KDConfig(net(args.teacher, args.teacher_epochs, args.teacher_augment),
                      net(args.student, args.student_epochs, "none"), args.temperature, args.alpha,
                      tuple(args.seeds), sweep=tuple(args.sweep), omit_class=args.omit_class, validation=validation)
    data = load_real(args.dataset, args.data_dir, progress=not args.no_progress)
    rec = run_kd(config, np.asarray(data.train.images), np.asarray(data.train.labels), data.test_images,
                 data.test_labels, data.spec.num_classes, args.workdir, progress=not args.no_progress,
                 outputs_dir=args.outputs_dir)
    write_json(Path(args.workdir) / "result.json", rec)
    print(kd_table(rec).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    sig = rec["student_kd"]["significance_vs_alone"]
    print(f"KD gain over the student alone: {sig['difference']:.1f} +- {sig['standard_error']:.1f} test errors "
          f"(z = {sig['z']:.1f}); wrote {os.path.join(args.workdir, 'result.json')}")
    return 0


def _cmd_train(args) -> int:
    from jaxdistill.runner import train_baseline
    res = train_baseline(args.dataset, args.workdir, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                         augment=args.augment, progress=not args.no_progress)
    print(f"test accuracy {100 * res['test_accuracy']:.2f} %; wrote {os.path.join(args.workdir, 'result.json')}")
    return 0


def _cmd_report(args) -> int:
    from jaxdistill.report import collect_records, load_records, readme_blocks, update_readme, write_report

    if args.check_readme or args.update_readme:
        path = Path(args.check_readme or args.update_readme)
        text = path.read_text()
        try:
            new = update_readme(text, readme_blocks(collect_records(args.results), load_records(args.results)))
        except ValueError as e:
            print(f"jaxdistill: error: {path}: {e}", file=sys.stderr)
            return EXIT_USAGE
        if args.update_readme:
            path.write_text(new)
            print(f"{path}: generated tables {'rewritten' if new != text else 'already agree with the records'}")
            return 0
        if new != text:
            print(f"{path}: the generated tables disagree with the records in {args.results}; run "
                  f"`jaxdistill report {args.results} --update-readme {path}`", file=sys.stderr)
            return 1
        print(f"{path}: the generated tables agree with the records in {args.results}")
        return 0
    written = write_report(args.results, args.out or Path(args.results) / "report")
    print(Path(written["comparison"]).read_text())
    print(f"wrote {len(written)} files to {Path(written['comparison']).parent}")
    return 0


COMMANDS = {"datasets": _cmd_datasets, "distill": _cmd_distill, "evaluate": _cmd_evaluate,
            "experts": _cmd_experts, "kd": _cmd_kd, "report": _cmd_report, "train": _cmd_train}


def _apply_cpu_tuning(console: bool) -> str:
    """Opt in to the CPU settings (cpu_tuning.py; JAXDISTILL_CPU_TUNING=0 switches them off); the console command
    also restarts once for the allocator. Returns the line `--verbose` prints."""
    try:
        return cpu_tuning.describe(cpu_tuning.apply(reexec=console))
    except cpu_tuning.BackendStartedError:  # main() called from Python after JAX work: too late, and said so
        return "cpu tuning: not applied (jax's backend had already started in this process)"


def _one_line_data_warnings() -> None:
    """Show a DataWarning (data that loads but differs from what was expected) as one line, like the errors."""
    previous = warnings.showwarning
    if getattr(previous, "one_line_data_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            print(f"jaxdistill: warning: {message}", file=file or sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    show.one_line_data_warnings = True
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    tuning = _apply_cpu_tuning(console=argv is None)  # first: before anything can start jax's backend
    cache = enable_compilation_cache()  # a rerun or resume skips the compiles
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    _one_line_data_warnings()
    if args.verbose:
        print(tuning, file=sys.stderr)
        print(f"compilation cache: {cache if cache is not None else 'off'}", file=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except JaxdistillError as e:
        print(f"jaxdistill: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # e.g. disk full or permissions while writing outputs
        print(f"jaxdistill: error: {e.strerror or e} ({e.filename or 'while writing outputs'}); "
              f"free space or fix permissions, then rerun", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        resumable = args.command in ("distill", "train", "kd", "experts")
        print("jaxdistill: interrupted; " + ("rerun the same command to resume from the last checkpoint"
                                             if resumable else "rerun the command to start it again"),
              file=sys.stderr)
        return 130
    except Exception as e:  # XLA reports exhausted device memory as a runtime error
        if "RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e):
            print("jaxdistill: error: out of memory on the device; lower --ipc or the method's batch sizes, "
                  "or use a machine with more memory", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
