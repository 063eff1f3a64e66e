"""Shared plumbing of the experiment scripts: run a config variant, write its record under results/."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jaxdistill.compilation_cache import enable_compilation_cache
from jaxdistill.cpu_tuning import reexec_with_malloc_tuning
from jaxdistill.records import device_info, versions, write_json

ROOT = Path(__file__).resolve().parents[1]


def prepare_process() -> None:
    """First thing in every experiment: restart with the tuned allocator (CPU), keep compiled programs on disk."""
    reexec_with_malloc_tuning()
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


def finish_distillation(args, cfg: dict[str, Any], workdir: Path, data, distill_record: dict[str, Any], *, name: str,
                        experiment: str, paper: tuple[float, float] | None, started: float,
                        record_config: dict[str, Any], full_command: str, figures: Path | None = None) -> None:
    """After a distillation: evaluate its sets (skipped when an earlier run of the command finished that), print the
    result, and for a non-smoke variant draw every set and the loss curve (into `figures`, default
    results/figures) and write the record."""
    import json

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
        save_image_grid(figures / f"{name}_seed{seed}.png", images[s], hard, spec.num_classes, mean, std,
                        spec.class_names, title=f"{args.method.upper()} {args.dataset} ipc {cfg['ipc']}, seed {seed}")
    save_loss_curve(figures / f"{name}_loss.png", workdir,
                    title=f"{args.method.upper()} {args.dataset} ipc {cfg['ipc']} (mean over seeds)")
    write_record(Path(args.out or ROOT / "results" / f"{name}.json"), experiment, args.variant, record_config,
                 {**res, "paper_mean_std": paper, "distill_record": distill_record},
                 reduced=is_reduced(args.variant), full_command=full_command, started=started)
