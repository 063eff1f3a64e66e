"""Shared plumbing of the experiment scripts: run a config variant, write its record under results/."""
from __future__ import annotations

import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jaxdistill import cpu_tuning
from jaxdistill.compilation_cache import enable_compilation_cache
from jaxdistill.records import device_info, versions, write_json

ROOT = Path(__file__).resolve().parents[1]


def prepare_process() -> None:
    """First thing in every experiment: opt in to the CPU settings (XLA flags, restart once with the tuned
    allocator; JAXDISTILL_CPU_TUNING=0 switches them off) and say so, keep compiled programs on disk. The record's
    device.cpu_tuning holds what was in effect."""
    print(cpu_tuning.describe(cpu_tuning.apply(reexec=True)), file=sys.stderr, flush=True)
    enable_compilation_cache()


def is_reduced(variant: str) -> bool:
    """Whether a variant runs less than its paper protocol: every such variant name contains "_reduced"."""
    return "_reduced" in variant


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_record(out: Path, experiment: str, variant: str, config: dict[str, Any], result: dict[str, Any],
                 reduced: bool, full_command: str, started: float) -> None:
    """The record every accuracy claim points to: config, seeds, versions, device, wall time, command."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"experiment": experiment, "variant": variant, "reduced_protocol": reduced,
                     "command": command_line(), "full_protocol_command": full_command, "config": config,
                     "result": result, "versions": versions(), "device": device_info(),
                     "wall_time_s": time.time() - started})
    print(f"wrote {out}")


def seeds_part(variant_seeds: list[int], arg: str | None) -> tuple[list[int], str]:
    """The seeds a run distils and its name suffix: all the variant's seeds (suffix ""), or those `arg` lists
    ("1" or "2,0": suffix "_seed1", "_seed0_2"), which must be some of the variant's."""
    if arg is None:
        return list(variant_seeds), ""
    try:
        seeds = [int(s) for s in arg.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds takes comma-separated integers, got {arg!r}") from None
    if len(set(seeds)) != len(seeds) or not set(seeds) <= set(variant_seeds):
        raise SystemExit(f"--seeds {arg}: give distinct seeds out of this variant's {variant_seeds}")
    return sorted(seeds), "_seed" + "_".join(str(s) for s in sorted(seeds))


def seed_part_records(folder: Path, name: str) -> list[Path]:
    """The records `--seeds` runs of the variant `name` wrote into `folder`: <name>_seed<S>[_<S>...].json."""
    pattern = re.compile(re.escape(name) + r"_seed\d+(_\d+)*\.json")
    return sorted(p for p in folder.glob(f"{name}_seed*.json") if pattern.fullmatch(p.name))


def _same_or_each(values: list[Any]) -> Any:
    """One value where every part has it, else the list of the parts' values."""
    return values[0] if all(v == values[0] for v in values) else values


def merge_seed_records(parts: list[Path], out: Path, variant_seeds: list[int]) -> dict[str, Any]:
    """Pool the records of runs that each distilled some of a variant's seeds (`--seeds`) into the variant's record.

    The parts must share their configuration (experiment, variant, config, distillation and evaluation config, paper
    value) and together cover `variant_seeds` once each. The pooled result is what one run over all the seeds gives:
    the same sets (every seed's keys depend on that seed alone) evaluated by the same networks (the evaluation seed is
    shared), summarised over all of them; parts run with other library versions or on another device agree with it up
    to float rounding, and the record says so: its `versions` and `device` are the parts' common ones, or the list of
    each part's (with a warning). Each part's command, versions, device and wall time are kept under "parts".
    """
    from jaxdistill.evaluate import summarize

    if not parts:
        raise SystemExit(f"cannot merge: no part records to pool (write them with --seeds first; looked for "
                         f"{out.with_suffix('').name}_seed<S>.json in {out.parent})")
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise SystemExit(f"cannot merge: no record at {', '.join(missing)} (run those --seeds first)")
    recs = [json.loads(p.read_text()) for p in parts]

    def shared(p: Path, r: dict[str, Any]) -> dict[str, Any]:
        try:
            res = r["result"]
            return {"experiment": r["experiment"], "variant": r["variant"], "reduced": r["reduced_protocol"],
                    "config": {k: v for k, v in r["config"].items() if k != "seeds"},
                    "eval_config": res["eval_config"], "paper": res.get("paper_mean_std"),
                    "distill": {k: v for k, v in res["distill_config"].items() if k != "seeds"},
                    "seeds": r["config"]["seeds"], "per_set": res["per_set"], "distill_record": res["distill_record"]}
        except KeyError as e:
            raise SystemExit(f"cannot merge: {p} is not the record of a --seeds run (it has no {e})") from None
    views = [shared(p, r) for p, r in zip(parts, recs)]
    compared = ("experiment", "variant", "reduced", "config", "eval_config", "paper", "distill")
    for p, v in zip(parts[1:], views[1:]):
        diff = [k for k in compared if v[k] != views[0][k]]
        if diff:
            raise SystemExit(f"cannot merge {parts[0]} and {p}: they differ in {', '.join(diff)}")
    seeds = sorted(s for v in views for s in v["seeds"])
    if seeds != sorted(variant_seeds):
        each = "; ".join(f"{p.name}: {v['seeds']}" for p, v in zip(parts, views))
        raise SystemExit(f"cannot merge: the parts' seeds ({each}) are not the variant's {sorted(variant_seeds)} "
                         f"once each")
    per_set = sorted((ps for v in views for ps in v["per_set"]), key=lambda ps: ps["seed"])
    first = recs[0]
    versions = _same_or_each([r["versions"] for r in recs])
    device = _same_or_each([r["device"] for r in recs])
    if isinstance(versions, list) or isinstance(device, list):
        print("warning: the parts ran with different library versions or devices; their sets agree with one run's "
              "up to float rounding (each part's are kept in the record)")
    result = {**summarize(per_set), "per_set": per_set, "eval_config": first["result"]["eval_config"],
              "distill_config": {**first["result"]["distill_config"], "seeds": seeds},
              "paper_mean_std": first["result"].get("paper_mean_std"),
              "distill_record": [v["distill_record"] for v in views],  # one per part
              "versions": versions, "device": device,
              "wall_time_s": float(sum(ps["wall_time_s"] for ps in per_set if "wall_time_s" in ps))}
    record = {"experiment": first["experiment"], "variant": first["variant"],
              "reduced_protocol": first["reduced_protocol"], "command": command_line(),
              "full_protocol_command": first["full_protocol_command"],
              "config": {**first["config"], "seeds": seeds}, "result": result, "versions": versions,
              "device": device, "wall_time_s": float(sum(r["wall_time_s"] for r in recs)),
              "parts": [{"record": p.name, "seeds": v["seeds"], "command": r["command"], "versions": r["versions"],
                         "device": r["device"], "wall_time_s": r["wall_time_s"]}
                        for p, v, r in zip(parts, views, recs)]}
    if out.exists():
        print(f"replacing {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, record)
    print(f"merged {len(parts)} records over seeds {seeds}: {100 * result['accuracy_mean']:.2f} +- "
          f"{100 * result['accuracy_std']:.2f} % over {len(result['accuracies'])} networks; wrote {out}")
    return record


def finish_distillation(args, cfg: dict[str, Any], workdir: Path, data, distill_record: dict[str, Any], *, name: str,
                        experiment: str, paper: tuple[float, float] | None, started: float,
                        record_config: dict[str, Any], full_command: str, figures: Path | None = None,
                        grid_name: str | None = None) -> None:
    """After a distillation: evaluate its sets (skipped when an earlier run of the command finished that), print the
    result, and for a non-smoke variant draw every set (`<grid_name>_seed<S>.png`, grid_name defaulting to name) and
    the loss curve (`<name>_loss.png`) into `figures` (default results/figures), and write the record."""
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.runner import evaluate_workdir, load_synthetic
    from jaxdistill.visualize import save_image_grid, save_loss_curve

    eval_file = workdir / "eval.json"
    done = json.loads(eval_file.read_text()) if eval_file.exists() else {}
    done_cfg = done.get("eval_config", {})
    if done_cfg.get("num_models") == cfg["models"] and done_cfg.get("train", {}).get("epochs") == cfg["epochs"]:
        res = done  # evaluated by an earlier run of this command
    else:
        res = evaluate_workdir(workdir, num_models=cfg["models"], epochs=cfg["epochs"], data=data,
                               progress=not args.no_progress, model_kwargs=cfg.get("eval_model_kwargs",
                                                                                   cfg.get("model_kwargs")))
    print(f"{args.method} {args.dataset} ipc={cfg['ipc']} ({args.variant}): {100 * res['accuracy_mean']:.2f} +- "
          f"{100 * res['accuracy_std']:.2f} % over {len(res['accuracies'])} networks"
          + (f" (paper {paper[0]} +- {paper[1]})" if paper else ""))
    if args.variant == "smoke":
        return
    spec = REGISTRY[args.dataset]
    figures = figures or ROOT / "results" / "figures"
    config, images, labels, seeds = load_synthetic(workdir)
    mean, std = (0.0,) * len(spec.mean), (1.0,) * len(spec.std)
    if not config.get("zca"):
        mean, std = spec.mean, spec.std
    for s, seed in enumerate(seeds):
        hard = labels[s] if labels[s].ndim == 1 else labels[s].argmax(-1)  # soft labels: drawn by their argmax
        save_image_grid(figures / f"{grid_name or name}_seed{seed}.png", images[s], hard, spec.num_classes, mean, std,
                        spec.class_names, title=f"{args.method.upper()} {args.dataset} ipc {cfg['ipc']}, seed {seed}")
    over = "mean over seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    save_loss_curve(figures / f"{name}_loss.png", workdir,
                    title=f"{args.method.upper()} {args.dataset} ipc {cfg['ipc']} ({over})")
    write_record(Path(args.out or ROOT / "results" / f"{name}.json"), experiment, args.variant, record_config,
                 {**res, "paper_mean_std": paper, "distill_record": distill_record},
                 reduced=is_reduced(args.variant), full_command=full_command, started=started)
