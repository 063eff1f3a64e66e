"""Full-data baseline: the DC ConvNet trained on all 60,000 MNIST images (literature: 99.6%).

    python experiments/full_data_mnist.py --variant full      # 20 epochs
    python experiments/full_data_mnist.py --variant reduced   # 2 epochs, labelled reduced
    python experiments/full_data_mnist.py --variant smoke     # CI
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, prepare_process, write_record

from jaxdistill.runner import train_baseline

VARIANTS = {"full": dict(epochs=20, seed=0), "reduced": dict(epochs=2, seed=0),
            "smoke": dict(epochs=1, seed=0, subset_per_class=20, model_kwargs={"width": 16})}


def main() -> None:
    prepare_process()
    p = argparse.ArgumentParser(description="full-data ConvNet baseline on MNIST")
    p.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    p.add_argument("--workdir", default=None)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    cfg = dict(VARIANTS[args.variant])
    started = time.time()
    workdir = Path(args.workdir or ROOT / "runs" / f"full_data_mnist_{args.variant}")
    res = train_baseline("mnist", workdir, epochs=cfg["epochs"], seed=cfg["seed"], data_dir=args.data_dir,
                         subset_per_class=cfg.get("subset_per_class"), model_kwargs=cfg.get("model_kwargs"))
    print(f"full-data ConvNet, {cfg['epochs']} epochs: test accuracy {100 * res['test_accuracy']:.2f} %")
    if args.variant != "smoke":
        write_record(ROOT / "results" / f"full_data_mnist_{args.variant}.json", "full_data_mnist", args.variant,
                     cfg, res, reduced=args.variant != "full",
                     full_command="python experiments/full_data_mnist.py --variant full", started=started)


if __name__ == "__main__":
    main()
