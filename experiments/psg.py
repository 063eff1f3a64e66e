"""Private Set Generation (PSG) on MNIST and MHIST at epsilon 1, 10 and infinity, delta 1e-5, beside its starting noise.

Protocol (Chen, Kerkouche, Fritz, NeurIPS 2022; reference code DingfanChen/Private-Set, its MNIST defaults): ConvNet
(width 128, depth 3, instance norm), synthetic images from Gaussian noise, 1000 outer iterations of `batch_loop` 10
matches per outer loop (DC's (outer_loop, inner_loop) by ipc), Poisson-sampled real batches of expected size 256,
per-example clipping at C = 0.1, the noise multiplier calibrated to the whole run with dp-accounting's RDP accountant
(`jaxdistill/methods/psg.py`); every set is evaluated as DC's are (20 fresh ConvNets, 1000 epochs with DC's MNIST
augmentation). Every record also evaluates the run's own starting noise under the same evaluation (`start_images`),
and holds the privacy facts (noise multiplier, q, queries, accountant, the epsilon spent, the PLD epsilon beside the
RDP one) under distill_record.method_facts.privacy.

    python experiments/psg.py --epsilon 10 --variant ipc10                  # full protocol (days on a 2-core CPU)
    python experiments/psg.py --epsilon 1 --variant ipc1_reduced            # labelled reduced, calibrated to its run
    python experiments/psg.py --epsilon inf --variant ipc1_reduced          # the same matching without privacy
    python experiments/psg.py --dataset mhist --epsilon 10 --variant ipc1_reduced --data-dir MHIST
    python experiments/psg.py --variant smoke                               # seconds; CI runs it

A reduced run makes fewer queries than the full protocol, so its noise is calibrated to those queries (less noise for
the same epsilon than the full run gets): its accuracy is not the full protocol's at that epsilon.
"""
from __future__ import annotations

import math
from typing import Any

from jaxdistill.experiment import Context, evaluate_starting_images, finish_distillation, is_reduced

CHOICES = {"dataset": ("mnist", "mhist"), "epsilon": ("1", "10", "inf")}
FLAGS = ("checkpoint_every", "seeds")

# ipc, outer iterations, distillation seeds, evaluation networks per set, evaluation epochs
VARIANTS = {
    "ipc1": dict(ipc=1, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    "ipc10": dict(ipc=10, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    "ipc20": dict(ipc=20, iterations=1000, seeds=[0, 1, 2], models=20, epochs=1000),
    # Reduced for a 2-core CPU, where one PSG iteration takes about 20 s at ipc 1 (10 private queries) and about
    # 4 minutes at ipc 10 (100 queries and 450 training steps): few iterations, one distillation, 10 networks of a
    # shorter evaluation.
    "ipc1_reduced": dict(ipc=1, iterations=30, seeds=[0], models=10, epochs=300),
    "ipc10_reduced": dict(ipc=10, iterations=2, seeds=[0], models=10, epochs=100),
    # Smoke: the whole pipeline on real MNIST in seconds (a narrow network, small Poisson batches, two matches per
    # outer loop, the loops as scans).
    "smoke": dict(ipc=1, iterations=2, seeds=[0], models=1, epochs=2,
                  method_overrides={"batch_real": 16, "batch_loop": 2, "model": "convnet:width=16"},
                  policy={"class_loop": "scan"}),
}
# MHIST (64 px, ConvNet depth 4 at the full protocol): the reduced rows run at 32 px with real batches of 64 (as
# gradient_matching.py's reduced MHIST rows), evaluated by mhist_baselines.py's reduced evaluation.
MHIST_REDUCED = {
    "ipc1_reduced": dict(iterations=20, models=5, epochs=300, resolution=32, method_overrides={"batch_real": 64}),
    "ipc10_reduced": dict(iterations=2, models=5, epochs=300, resolution=32, method_overrides={"batch_real": 64}),
    "smoke": dict(resolution=32),
}


def get_config(variant: str, dataset: str = "mnist", epsilon: str = "10") -> dict[str, Any]:
    """What a run of `variant` does at `epsilon` ('inf': no privacy)."""
    cfg = {"dataset": dataset, "epsilon": float(epsilon), **VARIANTS[variant]}
    if dataset == "mhist":
        cfg.update(MHIST_REDUCED.get(variant, {}))
    overrides = {**cfg.get("method_overrides", {}), "epsilon": float(epsilon), "delta": 1e-5}
    eps_name = "inf" if math.isinf(float(epsilon)) else f"{float(epsilon):g}"
    return {**cfg, "method": "psg", "method_overrides": overrides, "name": f"psg_{dataset}_eps{eps_name}_{variant}",
            "start_name": f"psg_{dataset}_{variant}_start", "paper": None, "reduced": is_reduced(variant),
            "full_protocol_command": f"python experiments/psg.py --dataset {dataset} --epsilon {epsilon} "
                                     f"--variant {variant.replace('_reduced', '')}"
                                     + (" --data-dir MHIST" if dataset == "mhist" else "")}


def run(config: dict[str, Any], ctx: Context) -> None:
    from jaxdistill.runner import distill, load_real

    data = load_real(config["dataset"], ctx.data_dir, progress=ctx.progress, resolution=config.get("resolution"))
    rec = distill("psg", config["dataset"], config["ipc"], config["seeds"], ctx.workdir,
                  iterations=config["iterations"], data=data, method_overrides=config["method_overrides"],
                  policy=config.get("policy"), progress=ctx.progress, checkpoint_every=ctx.checkpoint_every,
                  resolution=config.get("resolution"))
    # the starting noise (the same for every epsilon: no query is made, so it runs as epsilon = inf)
    start_dir = ctx.workdir.parent / (config["start_name"] + ctx.name[len(config["name"]):])  # a --seeds part's own
    summary = evaluate_starting_images(ctx, data, start_dir, {**config["method_overrides"], "epsilon": math.inf})
    record_config = {k: config[k] for k in ("method", "dataset", "ipc", "iterations", "seeds", "models", "epochs",
                                            "epsilon")}
    record_config.update(delta=1e-5, method_overrides=config["method_overrides"], start_images=summary,
                         privacy=rec.get("method_facts", {}).get("privacy"),
                         paper_note="no published value is recorded: compare with the results table of the PSG paper")
    if config.get("resolution"):
        record_config["resolution"] = config["resolution"]
    finish_distillation(ctx, data, rec, record_config)


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
