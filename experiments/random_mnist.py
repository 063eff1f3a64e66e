"""Random selection on MNIST: ipc random real images per class, evaluated by the DC protocol.

Literature (DC paper, Table 1, random selection): 64.9 +- 3.5 / 95.1 +- 0.9 / 97.9 +- 0.2 at ipc 1 / 10 / 50.

    python experiments/random_mnist.py --variant ipc1          # full protocol: 20 nets x 1000 epochs
    python experiments/random_mnist.py --variant ipc10         # full protocol (hours on a 2-core CPU)
    python experiments/random_mnist.py --variant ipc10_reduced # fewer epochs, labelled reduced
    python experiments/random_mnist.py --variant smoke         # seconds; CI runs it
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, is_reduced, prepare_process, write_record

from jaxdistill.runner import distill, evaluate_workdir

# ipc, evaluation networks, epochs, distillation seeds
VARIANTS = {
    "ipc1": dict(ipc=1, models=20, epochs=1000, seeds=[0]),
    "ipc10": dict(ipc=10, models=20, epochs=1000, seeds=[0]),
    "ipc50": dict(ipc=50, models=20, epochs=1000, seeds=[0]),
    "ipc10_reduced": dict(ipc=10, models=20, epochs=100, seeds=[0]),
    "ipc50_reduced": dict(ipc=50, models=20, epochs=20, seeds=[0]),
    "smoke": dict(ipc=1, models=1, epochs=2, seeds=[0], eval_model_kwargs={"width": 16}),
}


def get_config(variant: str) -> dict:
    return dict(VARIANTS[variant])


def main() -> None:
    prepare_process()
    p = argparse.ArgumentParser(description="random-selection baseline on MNIST")
    p.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    cfg = get_config(args.variant)
    started = time.time()
    workdir = Path(args.workdir or ROOT / "runs" / f"random_mnist_{args.variant}")
    distill("random", "mnist", cfg["ipc"], cfg["seeds"], workdir, data_dir=args.data_dir)
    res = evaluate_workdir(workdir, num_models=cfg["models"], epochs=cfg["epochs"], data_dir=args.data_dir,
                           model_kwargs=cfg.get("eval_model_kwargs"))
    print(f"random ipc={cfg['ipc']}: {100 * res['accuracy_mean']:.2f} +- {100 * res['accuracy_std']:.2f} % "
          f"over {len(res['accuracies'])} networks")
    full = args.variant.replace("_reduced", "")
    out = Path(args.out or ROOT / "results" / f"random_mnist_{args.variant}.json")
    if args.variant != "smoke":
        write_record(out, "random_mnist", args.variant, cfg, res, reduced=is_reduced(args.variant),
                     full_command=f"python experiments/random_mnist.py --variant {full}", started=started)


if __name__ == "__main__":
    main()
