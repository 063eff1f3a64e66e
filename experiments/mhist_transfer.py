"""MHIST transfer learning and knowledge distillation: a ResNet50V2 teacher, a MobileNetV2 student alone and with KD,
and the report that answers the brief's two questions (do ImageNet weights help? does KD help the student?), judged
by balanced accuracy, SSA recall (sensitivity), HP recall (specificity), F1 and ROC AUC, not accuracy.

One command per stage, each resumable from its workdir (runs/<name>/<model>/train holds a checkpoint per epoch):

    python experiments/mhist_transfer.py --stage teacher --init imagenet --variant full --data-dir MHIST
    python experiments/mhist_transfer.py --stage student --init imagenet --variant full --data-dir MHIST
    python experiments/mhist_transfer.py --stage kd      --init imagenet --variant full --data-dir MHIST
    python experiments/mhist_transfer.py --stage report  --init imagenet --variant full

--init scratch trains every model from random initialisation (all layers, batch norm in training mode); --init
imagenet starts from Keras's published ImageNet weights (downloaded into the cache, or --pretrained-file FILE).
The KD stage trains students at every T of the variant's grid with alpha 0.5 (full: T in {1, 2, 4, 8, 16}), then every
alpha of its grid (full: {0.1, 0.5, 0.9}) at the T whose students reach the best mean balanced accuracy on the
(un-augmented) training images: chosen on training data, never on the test set. Student k learns from teacher k of the
teacher stage with the same variant, --init and --weighting (found under --runs). --weighting class_weighted weights the loss
per class n / (C n_c); compare it with the plain loss. The report stage tabulates the three stages' records with the
MHIST paper's AUCs beside them.

Variants: 'full' is the brief's protocol at 224 px (3 seeds; 10 + 25 epochs); '128_reduced' a CPU-sized check of the
pipeline at 128 px (2 seeds, 1 epoch per model: a ResNet50V2 step from scratch takes ~4.3 s there, a MobileNetV2 step
~8.6 s, scripts/bench_applications.py); 'smoke' (CI) runs in seconds at 32 px with a narrow MobileNetV2 (alpha 0.35)
standing in for both teacher and student. On a stand-in folder every record says "stand_in": true (under "data").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxdistill.experiment import Context, is_reduced

CHOICES = {"stage": ("teacher", "student", "kd", "report"), "init": ("scratch", "imagenet"),
           "weighting": ("plain", "class_weighted")}
TEACHER_LR, STUDENT_LR = 1e-4, 1e-3
VARIANTS = {
    "full": dict(resolution=224, seeds=(0, 1, 2), head_epochs=10, finetune_epochs=25, teacher="resnet50v2",
                 student="mobilenetv2", temperatures=(1.0, 2.0, 4.0, 8.0, 16.0), alphas=(0.1, 0.5, 0.9),
                 bootstrap=1000),
    "128_reduced": dict(resolution=128, seeds=(0, 1), head_epochs=1, finetune_epochs=0, teacher="resnet50v2",
                        student="mobilenetv2", temperatures=(4.0,), alphas=(0.5,), bootstrap=1000),
    "smoke": dict(resolution=32, seeds=(0, 1), head_epochs=1, finetune_epochs=1, teacher="mobilenetv2:alpha=0.35",
                  student="mobilenetv2:alpha=0.35", temperatures=(2.0,), alphas=(0.5,), bootstrap=100),
}


def _name(variant: str, stage: str, init: str, weighting: str) -> str:
    return f"mhist_transfer_{init}" + ("_class_weighted" if weighting == "class_weighted" else "") + \
        f"_{stage}_{variant}"


def get_config(variant: str, stage: str, init: str = "scratch", weighting: str = "plain") -> dict[str, Any]:
    return {**VARIANTS[variant], "stage": stage, "init": init, "weighting": weighting,
            "name": _name(variant, stage, init, weighting), "reduced": is_reduced(variant),
            "stage_names": {s: _name(variant, s, init, weighting) for s in ("teacher", "student", "kd")},
            "full_protocol_command": f"python experiments/mhist_transfer.py --stage {stage} --init {init} "
                                     f"--weighting {weighting} --variant full --data-dir MHIST"}


def add_arguments(parser) -> None:
    parser.add_argument("--pretrained-file", default=None,
                        help="with --init imagenet: a local Keras weights file instead of the published one")
    parser.add_argument("--cache-dir", default=None, help="where the published weights are cached")
    parser.add_argument("--runs", default=None,
                        help="the folder holding the stages' workdirs, where the kd stage finds its teacher and the "
                             "report its records (default runs/; give it when the stages ran with --workdir "
                             "RUNS/<name>)")


def stage_config(config: dict[str, Any], role: str, temperature: float | None = None, alpha: float = 0.5,
                 pretrained_file: str | None = None):
    """The TransferConfig of one model of a stage: the teacher, the student alone or a KD student (T, alpha)."""
    from jaxdistill.transfer import TransferConfig
    teacher = role == "teacher"
    return TransferConfig(
        model=config["teacher"] if teacher else config["student"],
        pretrained=None if config["init"] == "scratch" else (pretrained_file or "imagenet"),
        lr=TEACHER_LR if teacher else STUDENT_LR, head_epochs=config["head_epochs"],
        finetune_epochs=config["finetune_epochs"], seeds=config["seeds"],
        class_weighting="balanced" if config["weighting"] == "class_weighted" else "none",
        # students alone and with KD see the same views (the teacher's logits are cached per view, without jitter)
        augment="histology" if teacher else "dihedral", temperature=temperature, alpha=alpha)


def run(config: dict[str, Any], ctx: Context) -> None:
    if config["stage"] == "report":
        text = report(config, ctx)
        print(text)
        if ctx.writes_record:
            ctx.out.with_suffix(".md").parent.mkdir(parents=True, exist_ok=True)
            ctx.out.with_suffix(".md").write_text(text)
            print(f"wrote {ctx.out.with_suffix('.md')}")
        return
    from jaxdistill.transfer import load_mhist
    data = load_mhist(ctx.data_dir, config["resolution"], progress=ctx.progress)
    if config["stage"] == "kd":
        result = _kd(config, ctx, data)
    else:
        result = _train(config, ctx, data, config["stage"], Path(ctx.workdir) / config["stage"])
    if ctx.writes_record:
        record_config = {k: v for k, v in config.items() if k not in ("name", "reduced", "full_protocol_command")}
        ctx.write_record(record_config, result)


def _train(config, ctx, data, role, workdir, temperature=None, alpha=0.5) -> dict[str, Any]:
    from jaxdistill.records import read_json
    from jaxdistill.transfer import run_transfer
    cfg = stage_config(config, role, temperature, alpha, ctx.args.pretrained_file)
    done = workdir / "record.json"
    if done.exists() and read_json(done)["config"] == cfg.to_dict():
        record = read_json(done)  # finished by an earlier run of this command
    else:
        teacher = _runs(ctx) / config["stage_names"]["teacher"] / "teacher"
        record = run_transfer(workdir, cfg, data, role, teacher_dir=teacher, cache_dir=ctx.args.cache_dir,
                              progress=ctx.progress, bootstrap_resamples=config["bootstrap"])
    m, s = record["summary"]["metrics_mean"], record["summary"]["metrics_std"]
    print(f"{workdir.name} ({ctx.variant}, {config['init']}): "
          + ", ".join(f"{k} {m[k]:.3f} +- {s[k]:.3f}" for k in ("balanced_accuracy", "roc_auc", "f1"))
          + (" [stand-in]" if record["stand_in"] else ""))
    return record


def _kd(config, ctx, data) -> dict[str, Any]:
    """Every T of the grid at alpha 0.5, then every alpha at the T whose students fit the training images best."""
    cells = {}
    for t in config["temperatures"]:
        cells[(t, 0.5)] = _train(config, ctx, data, "kd", Path(ctx.workdir) / f"kd_T{t:g}_a0.5", t, 0.5)
    best = max(config["temperatures"], key=lambda t: cells[(t, 0.5)]["train_metrics_mean"]["balanced_accuracy"])
    for a in config["alphas"]:
        if (best, a) not in cells:
            cells[(best, a)] = _train(config, ctx, data, "kd", Path(ctx.workdir) / f"kd_T{best:g}_a{a:g}", best, a)
    return {"chosen_temperature": best, "chosen_on": "mean balanced accuracy on the (un-augmented) training images",
            "cells": [{"temperature": t, "alpha": a, **rec} for (t, a), rec in cells.items()]}


def _runs(ctx: Context) -> Path:
    return Path(ctx.args.runs) if ctx.args.runs else Path(ctx.root) / "runs"


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} +- {std:.3f}"


def report(config: dict[str, Any], ctx: Context) -> str:
    """A markdown table of the teacher, student and KD records of this variant, init and weighting."""
    import pandas as pd

    from jaxdistill.errors import ConfigError
    from jaxdistill.records import read_json
    from jaxdistill.transfer import MHIST_PAPER_AUC
    records = []
    for stage, name in config["stage_names"].items():
        records += [(p.parent.name, read_json(p))
                    for p in sorted((_runs(ctx) / name).glob("*/record.json"))]
    if not records:
        raise ConfigError(f"no stage records under {_runs(ctx) / config['stage_names']['teacher']} (nor the student's "
                          "or the kd stage's): run the teacher, student and kd stages first")
    rows = []
    for model, r in records:
        m, s, ci = r["summary"]["metrics_mean"], r["summary"]["metrics_std"], r["bootstrap_95"]
        costs, cfg = r.get("costs", {}), r["config"]
        latency = costs.get("latency_s_per_image", {})
        rows.append({
            "model": model, "network": cfg["model"], "pretrained": r["pretrained"],
            "balanced acc": _fmt(m["balanced_accuracy"], s["balanced_accuracy"]),
            "bal. acc 95% CI": f"[{ci['balanced_accuracy'][0]:.3f}, {ci['balanced_accuracy'][1]:.3f}]",
            "SSA recall": _fmt(m["sensitivity"], s["sensitivity"]),
            "HP recall": _fmt(m["specificity"], s["specificity"]),
            "F1": _fmt(m["f1"], s["f1"]), "AUC": _fmt(m["roc_auc"], s["roc_auc"]),
            "AUC 95% CI": f"[{ci['roc_auc'][0]:.3f}, {ci['roc_auc'][1]:.3f}]",
            "params (M)": f"{costs['params'] / 1e6:.2f}" if costs else "",
            "GFLOPs / image": f"{costs['forward_flops_per_image'] / 1e9:.3g}" if costs else "",
            "CPU ms / image (b1, b32)": f"{1e3 * latency['1']:.1f}, {1e3 * latency['32']:.1f}" if latency else "",
            "s / epoch": f"{r['seconds_per_epoch']:.0f}", "seeds": len(r["seeds"]), "stand-in": r["stand_in"],
        })
    anchors = ", ".join(f"{k} {v * 100:.1f}" for k, v in MHIST_PAPER_AUC.items())
    return (f"{pd.DataFrame(rows).to_markdown(index=False)}\n\nVariant {ctx.variant}"
            + (" (reduced)" if config["reduced"] else "") + f", init {config['init']}, loss {config['weighting']}. "
            f"MHIST paper anchors (test AUC, %): {anchors}. Mean +- std over seeds; intervals: bootstrap over test "
            "images of the seed mean.\n")


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
