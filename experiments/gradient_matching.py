"""DC and DSA (gradient matching) on MNIST and Fashion-MNIST, distilled and evaluated by the papers' protocol.

Protocol (DC, ICLR 2021; DSA, ICML 2021; reference code VICO-UoE/DatasetCondensation): ConvNet (width 128, depth 3,
instance norm, average pooling), synthetic images initialised from real ones, 1000 outer iterations with the
reference's (outer_loop, inner_loop) for the ipc; every synthetic set is evaluated by training 20 fresh ConvNets for
1000 epochs (SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr x0.1 at half) with the augmentation of its paper: DC's
crop/scale/rotate on MNIST and none on Fashion-MNIST for DC sets; DSA's own (per-image draws) for DSA sets.

Paper results (mean +- std), ipc 1 / 10 / 50:
    MNIST          DC  91.7 +- 0.5 / 97.4 +- 0.2 / 98.8 +- 0.2     DSA 88.7 +- 0.6 / 97.8 +- 0.1 / 99.2 +- 0.1
    Fashion-MNIST  DC  70.5 +- 0.6 / 82.3 +- 0.4 / 83.6 +- 0.4     DSA 70.6 +- 0.6 / 84.6 +- 0.3 / 88.7 +- 0.2

    python experiments/gradient_matching.py --method dc --dataset mnist --variant ipc1     # full protocol
    python experiments/gradient_matching.py --method dsa --dataset fashion_mnist --variant ipc10
    python experiments/gradient_matching.py --method dc --dataset mnist --variant ipc10_reduced   # labelled reduced
    python experiments/gradient_matching.py --method dc --dataset mnist --variant smoke    # seconds; CI runs it

Runs resume: rerunning a command continues its workdir (runs/<name>) from the last checkpoint, and an evaluation
that already finished is not repeated. Each record (results/<name>.json) is written once evaluation is done, with a
PNG grid of every synthetic set and the matching-loss curve under results/figures/.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, finish_distillation, merge_seed_records, prepare_process, seed_part_records, seeds_part

PAPER = {  # (method, dataset, ipc) -> (mean, std) in %
    ("dc", "mnist", 1): (91.7, 0.5), ("dc", "mnist", 10): (97.4, 0.2), ("dc", "mnist", 50): (98.8, 0.2),
    ("dsa", "mnist", 1): (88.7, 0.6), ("dsa", "mnist", 10): (97.8, 0.1), ("dsa", "mnist", 50): (99.2, 0.1),
    ("dc", "fashion_mnist", 1): (70.5, 0.6), ("dc", "fashion_mnist", 10): (82.3, 0.4),
    ("dc", "fashion_mnist", 50): (83.6, 0.4), ("dsa", "fashion_mnist", 1): (70.6, 0.6),
    ("dsa", "fashion_mnist", 10): (84.6, 0.3), ("dsa", "fashion_mnist", 50): (88.7, 0.2),
}

# ipc, outer iterations, distillation seeds, evaluation networks per set, evaluation epochs
VARIANTS = {
    "ipc1": dict(ipc=1, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    "ipc10": dict(ipc=10, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    "ipc50": dict(ipc=50, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    # Reduced for a 2-core CPU (an ipc-10 iteration is minutes there, and so is one evaluation network's training on
    # 100 images): fewer outer iterations; at ipc 10 and 50 also the shorter evaluation of random_mnist.py's reduced
    # variants (100 and 20 epochs), so that the two compare.
    "ipc1_reduced": dict(ipc=1, iterations=200, seeds=[0, 1, 2], models=20, epochs=1000),
    "ipc10_reduced": dict(ipc=10, iterations=20, seeds=[0], models=20, epochs=100),
    "ipc50_reduced": dict(ipc=50, iterations=2, seeds=[0], models=20, epochs=20),
    # Smoke: the whole pipeline on real MNIST in seconds (a narrow network, small real batches, and the class loop
    # as a scan, which compiles 3x faster than the unrolled default).
    "smoke": dict(ipc=1, iterations=2, seeds=[0, 1], models=1, epochs=2,
                  method_overrides={"batch_real": 8, "width": 16, "class_loop": "scan"},
                  eval_model_kwargs={"width": 16}),
}


def run_name(method: str, dataset: str, variant: str) -> str:
    return f"{method}_{dataset}_{variant}"


def main() -> None:
    prepare_process()
    from jaxdistill.runner import distill, load_real

    p = argparse.ArgumentParser(description="DC / DSA on MNIST and Fashion-MNIST")
    p.add_argument("--method", choices=("dc", "dsa"), required=True)
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="save the synthetic sets every N iterations (an interrupted run loses at most N)")
    p.add_argument("--seeds", default=None,
                   help="distil and evaluate only these of the variant's seeds (comma-separated), e.g. one per "
                        "machine or per session; by default into runs/<name>_seed<S> and results/<name>_seed<S>.json, "
                        "where --merge finds the record")
    p.add_argument("--merge", action="store_true",
                   help="run nothing: pool the records results/<name>_seed<S>.json of --seeds runs that together "
                        "cover the variant's seeds into results/<name>.json (or --out)")
    args = p.parse_args()
    cfg = dict(VARIANTS[args.variant])
    if args.method == "dc" and args.dataset != "mnist" and args.variant != "smoke":
        cfg["epochs"] = 300  # the reference trains 300 epochs where DC uses no evaluation augmentation
    name = run_name(args.method, args.dataset, args.variant)
    if args.merge:
        if args.seeds is not None or args.workdir is not None:
            raise SystemExit("--merge pools finished records: it takes neither --seeds nor --workdir")
        results = ROOT / "results"
        merge_seed_records(seed_part_records(results, name), Path(args.out or results / f"{name}.json"),
                           cfg["seeds"])
        return
    cfg["seeds"], suffix = seeds_part(cfg["seeds"], args.seeds)
    started = time.time()
    workdir = Path(args.workdir or ROOT / "runs" / (name + suffix))
    data = load_real(args.dataset, args.data_dir, progress=not args.no_progress)
    rec = distill(args.method, args.dataset, cfg["ipc"], cfg["seeds"], workdir, iterations=cfg["iterations"],
                  data=data, method_overrides=cfg.get("method_overrides"), progress=not args.no_progress,
                  checkpoint_every=args.checkpoint_every)
    finish_distillation(args, cfg, workdir, data, rec, name=name + suffix, grid_name=name,
                        experiment="gradient_matching",
                        paper=PAPER.get((args.method, args.dataset, cfg["ipc"])), started=started,
                        record_config={"method": args.method, "dataset": args.dataset, **cfg},
                        full_command=f"python experiments/gradient_matching.py --method {args.method} "
                                     f"--dataset {args.dataset} --variant {args.variant.replace('_reduced', '')}")


if __name__ == "__main__":
    main()
