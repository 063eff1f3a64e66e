"""MHIST transfer learning and knowledge distillation: a ResNet50V2 teacher, a MobileNetV2 student alone and with KD,
and the report that answers the brief's two questions (do ImageNet weights help? does KD help the student?), judged
by balanced accuracy, SSA recall (sensitivity), HP recall (specificity), F1 and ROC AUC, not accuracy.

One command per step, each resumable from its workdir (W/<stage>/train holds a checkpoint per epoch):

    python experiments/mhist_transfer.py teacher --variant full --data-dir MHIST --workdir W --pretrained imagenet
    python experiments/mhist_transfer.py student --variant full --data-dir MHIST --workdir W --pretrained imagenet
    python experiments/mhist_transfer.py kd-sweep --variant full --data-dir MHIST --workdir W --pretrained imagenet
    python experiments/mhist_transfer.py report --workdir W

Without --pretrained every model trains from random initialisation (all layers, batch norm in training mode).
`kd-sweep` trains KD students at T in {1, 2, 4, 8, 16} with alpha 0.5, then alpha in {0.1, 0.5, 0.9} at the T whose
students reach the best mean balanced accuracy on the (un-augmented) training images: chosen on training data, never
on the test set. `kd --temperature T --alpha A` trains one cell. `--class-weighting balanced` weights the loss per
class (compare it with the plain loss in another workdir). Every stage records under W/<stage>/record.json (and, with
--record FILE, a copy for results/).

Variants: 'full' is the brief's protocol at 224 px (3 seeds; 10 + 25 epochs); 'reduced128' a CPU-sized run at 128 px
(fewer epochs and seeds, labelled reduced); 'smoke' checks the pipeline in seconds at 32 px with a narrow MobileNetV2
(alpha 0.35) standing in for both teacher and student. On a stand-in folder every record says "stand_in": true.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from jaxdistill.errors import JaxdistillError
from jaxdistill.records import read_json, write_json
from jaxdistill.transfer import MHIST_PAPER_AUC, TransferConfig, load_mhist, run_transfer

TEACHER, STUDENT = "resnet50v2", "mobilenetv2"
VARIANTS = {
    "full": dict(resolution=224, seeds=(0, 1, 2), head_epochs=10, finetune_epochs=25, teacher=TEACHER,
                 student=STUDENT, bootstrap=1000),
    # From scratch at 128 px a batch-32 step takes ~4.3 s (ResNet50V2) and ~8.6 s (MobileNetV2: XLA:CPU runs the
    # depthwise convolutions' backward pass slowly) on a 2-core CPU (scripts/bench_applications.py), so the reduced
    # run trains every model 1 epoch, on a quarter-size stand-in: a check of the pipeline, not of the protocol.
    "reduced128": dict(resolution=128, seeds=(0, 1), head_epochs=1, finetune_epochs=0, teacher=TEACHER,
                       student=STUDENT, bootstrap=1000),
    "smoke": dict(resolution=32, seeds=(0, 1), head_epochs=1, finetune_epochs=1, teacher="mobilenetv2:alpha=0.35",
                  student="mobilenetv2:alpha=0.35", bootstrap=100),
}
TEACHER_LR, STUDENT_LR = 1e-4, 1e-3
TEMPERATURES, ALPHAS = (1.0, 2.0, 4.0, 8.0, 16.0), (0.1, 0.5, 0.9)


def stage_config(args, role: str, temperature: float | None = None, alpha: float = 0.5) -> TransferConfig:
    v = VARIANTS[args.variant]
    teacher = role == "teacher"
    head, finetune = v.get("teacher_epochs", (v["head_epochs"], v["finetune_epochs"])) if teacher else \
        (v["head_epochs"], v["finetune_epochs"])
    return TransferConfig(model=v["teacher"] if teacher else v["student"], pretrained=args.pretrained,
                          lr=TEACHER_LR if teacher else STUDENT_LR, head_epochs=head,
                          finetune_epochs=finetune, seeds=v["seeds"],
                          class_weighting=args.class_weighting,
                          # students alone and with KD see the same views (the teacher's logits are cached per view)
                          augment="histology" if teacher else "dihedral",
                          temperature=temperature, alpha=alpha)


def _labelled(record: dict, args) -> dict:
    record["variant"] = args.variant
    record["reduced"] = args.variant != "full"
    record["command"] = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    return record


def run_stage(args, data, role: str, folder: str, temperature=None, alpha=0.5) -> dict:
    config = stage_config(args, role, temperature, alpha)
    workdir = Path(args.workdir) / folder
    done = workdir / "record.json"
    if done.exists() and read_json(done)["config"] == config.to_dict():
        return read_json(done)  # finished earlier
    record = run_transfer(workdir, config, data, role, teacher_dir=Path(args.workdir) / "teacher",
                          cache_dir=args.cache_dir, progress=not args.no_progress,
                          bootstrap_resamples=VARIANTS[args.variant]["bootstrap"])
    record = _labelled(record, args)
    write_json(done, record)
    _print_row(folder, record)
    return record


def kd_sweep(args, data) -> dict:
    """T at alpha 0.5, then alpha at the T whose students fit the training data best (balanced accuracy)."""
    cells = {}
    for t in args.temperatures:
        cells[(t, 0.5)] = run_stage(args, data, "kd", f"kd_T{t:g}_a0.5", t, 0.5)
    best_t = max(args.temperatures, key=lambda t: cells[(t, 0.5)]["train_metrics_mean"]["balanced_accuracy"])
    for a in args.alphas:
        if (best_t, a) not in cells:
            cells[(best_t, a)] = run_stage(args, data, "kd", f"kd_T{best_t:g}_a{a:g}", best_t, a)
    summary = {"chosen_temperature": best_t, "chosen_on": "mean balanced accuracy on the training images",
               "cells": {f"T{t:g}_a{a:g}": c["train_metrics_mean"] for (t, a), c in cells.items()}}
    write_json(Path(args.workdir) / "kd_selection.json", summary)
    return summary


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f} +- {std:.3f}"


def _print_row(name: str, record: dict) -> None:
    m, s = record["summary"]["metrics_mean"], record["summary"]["metrics_std"]
    print(f"{name}: balanced accuracy {_fmt(m['balanced_accuracy'], s['balanced_accuracy'])}, "
          f"AUC {_fmt(m['roc_auc'], s['roc_auc'])}, F1 {_fmt(m['f1'], s['f1'])}")


def report(workdir: Path) -> str:
    """A markdown table of every record under `workdir`, with the MHIST paper's AUC anchors."""
    rows = []
    for path in sorted(workdir.glob("*/record.json")):
        r = read_json(path)
        m, s, ci = r["summary"]["metrics_mean"], r["summary"]["metrics_std"], r["bootstrap_95"]
        costs = r.get("costs", {})
        lat = costs.get("latency_s_per_image", {})
        cfg = r["config"]
        rows.append({
            "stage": path.parent.name, "model": cfg["model"], "pretrained": r["pretrained"],
            "T / alpha": f"{cfg['temperature']:g} / {cfg['alpha']:g}" if cfg["temperature"] else "",
            "balanced acc": _fmt(m["balanced_accuracy"], s["balanced_accuracy"]),
            "bal. acc 95% CI": f"[{ci['balanced_accuracy'][0]:.3f}, {ci['balanced_accuracy'][1]:.3f}]",
            "SSA recall": _fmt(m["sensitivity"], s["sensitivity"]), "HP recall": _fmt(m["specificity"],
                                                                                      s["specificity"]),
            "F1": _fmt(m["f1"], s["f1"]), "AUC": _fmt(m["roc_auc"], s["roc_auc"]),
            "AUC 95% CI": f"[{ci['roc_auc'][0]:.3f}, {ci['roc_auc'][1]:.3f}]",
            "params (M)": f"{costs['params'] / 1e6:.2f}" if costs else "",
            "GFLOPs / image": f"{costs['forward_flops_per_image'] / 1e9:.3g}" if costs else "",
            "CPU ms / image (b1, b32)": f"{1e3 * lat['1']:.1f}, {1e3 * lat['32']:.1f}" if lat else "",
            "s / epoch": f"{r['seconds_per_epoch']:.0f}",
            "seeds": len(r["seeds"]), "stand-in": r["stand_in"], "reduced": r.get("reduced", True),
        })
    if not rows:
        raise JaxdistillError(f"no stage records (*/record.json) under {workdir}")
    import pandas as pd
    table = pd.DataFrame(rows).to_markdown(index=False)
    anchors = ", ".join(f"{k} {v * 100:.1f}" for k, v in MHIST_PAPER_AUC.items())
    text = (f"{table}\n\nMHIST paper anchors (test AUC, %): {anchors}. Mean +- std over seeds; intervals: bootstrap over "
            "test images of the seed mean.\n")
    (workdir / "report.md").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=("teacher", "student", "kd", "kd-sweep", "report"))
    p.add_argument("--variant", choices=tuple(VARIANTS), default="full")
    p.add_argument("--workdir", required=True)
    p.add_argument("--data-dir", default=None, help="the MHIST folder (images/ + annotations.csv) or a stand-in")
    p.add_argument("--pretrained", default=None, help="'imagenet' (Keras's published files) or a Keras weights file; "
                                                      "default: random initialisation")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--class-weighting", choices=("none", "balanced"), default="none")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--temperatures", type=lambda s: tuple(float(x) for x in s.split(",")), default=TEMPERATURES)
    p.add_argument("--alphas", type=lambda s: tuple(float(x) for x in s.split(",")), default=ALPHAS)
    p.add_argument("--record", default=None, help="also write the stage's record (or the report) to this file")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.stage == "report":
            text = report(Path(args.workdir))
            print(text)
            if args.record:
                Path(args.record).parent.mkdir(parents=True, exist_ok=True)
                Path(args.record).write_text(text)
            return 0
        data = load_mhist(args.data_dir, VARIANTS[args.variant]["resolution"], progress=not args.no_progress)
        if args.stage == "kd-sweep":
            out = kd_sweep(args, data)
        else:
            role, folder = {"teacher": ("teacher", "teacher"), "student": ("student", "student")}.get(
                args.stage, ("kd", f"kd_T{args.temperature:g}_a{args.alpha:g}"))
            kd = role == "kd"
            out = run_stage(args, data, role, folder, args.temperature if kd else None, args.alpha if kd else 0.5)
        if args.record:
            write_json(Path(args.record), out)
        return 0
    except JaxdistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
