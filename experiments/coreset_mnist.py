"""Coreset baselines on MNIST: random selection, herding and k-center (on the features of a ConvNet trained on the
whole training set), evaluated by the DC protocol, as the first rows of every dataset-distillation table.

Literature (DC paper, Zhao et al., ICLR 2021, Table 1, MNIST ipc 1 / 10 / 50): random 64.9 ± 3.5 / 95.1 ± 0.9 /
97.9 ± 0.2; herding 89.2 ± 1.6 / 93.7 ± 0.3 / 94.8 ± 0.2; k-center 89.3 ± 1.5 / 84.4 ± 1.7 / 97.4 ± 0.3. Every
selection seed draws its own selection (random) or trains its own feature network (herding, k-center), and the
result pools the selections' networks, as the literature averages several selections.

    python experiments/coreset_mnist.py --selection herding --variant ipc10          # full: 5 selections x 20 nets
    python experiments/coreset_mnist.py --selection kcenter --variant ipc1_reduced   # labelled reduced
    python experiments/coreset_mnist.py --selection random --variant smoke           # seconds; CI runs it
    python experiments/coreset_mnist.py --selection herding --variant ipc1 --seeds 0  # one selection (a session's)
    python experiments/coreset_mnist.py --selection herding --variant ipc1 --merge    # pool the selections' parts
"""
from __future__ import annotations

from typing import Any

from jaxdistill.experiment import Context, finish_distillation, is_reduced

CHOICES = {"selection": ("herding", "kcenter", "random")}
FLAGS = ("checkpoint_every", "seeds")  # --seeds: some selections per session, --merge pools them

# ipc, selection seeds, evaluation networks per selection, epochs
VARIANTS = {
    "ipc1": dict(ipc=1, seeds=[0, 1, 2, 3, 4], models=20, epochs=1000),
    "ipc10": dict(ipc=10, seeds=[0, 1, 2, 3, 4], models=20, epochs=1000),
    "ipc50": dict(ipc=50, seeds=[0, 1, 2, 3, 4], models=20, epochs=1000),
    # Reduced for a 2-core CPU: fewer selections (one feature network each for herding and k-center), 5 networks
    # per selection (10 for random at ipc 1), fewer epochs (those of random_mnist.py's reduced rows at ipc 10 / 50).
    "ipc1_reduced": dict(ipc=1, seeds=[0, 1, 2], models=5, epochs=300),
    "ipc10_reduced": dict(ipc=10, seeds=[0, 1, 2], models=5, epochs=100),
    "ipc50_reduced": dict(ipc=50, seeds=[0, 1, 2], models=5, epochs=20),
    # Smoke: a narrow ConvNet trained for a fraction of an epoch, one network of two epochs.
    "smoke": dict(ipc=1, seeds=[0], models=1, epochs=2,
                  method_overrides={"model": "convnet:width=8,depth=3", "feature_epochs": 0.02}),
}
REDUCED_SELECTIONS = {"herding": [0], "kcenter": [0]}  # reduced: one feature network (an epoch of training each)


def get_config(variant: str, selection: str = "herding") -> dict[str, Any]:
    from jaxdistill.report import BASELINES_PUBLISHED, METHOD_NAMES
    cfg = dict(VARIANTS[variant])
    if is_reduced(variant) and selection in REDUCED_SELECTIONS:
        cfg["seeds"] = REDUCED_SELECTIONS[selection]
    if variant == "ipc1_reduced" and selection == "random":
        cfg["models"] = 10
    paper = BASELINES_PUBLISHED.get((METHOD_NAMES[selection], "mnist", cfg["ipc"]))
    return {**cfg, "method": selection, "dataset": "mnist", "name": f"coreset_{selection}_mnist_{variant}",
            "paper": list(paper) if paper else None, "reduced": is_reduced(variant),
            **({"eval_model": "convnet:width=8,depth=3"} if variant == "smoke" else {}),
            "full_protocol_command": f"python experiments/coreset_mnist.py --selection {selection} "
                                     f"--variant {variant.replace('_reduced', '')}"}


def run(config: dict[str, Any], ctx: Context) -> None:
    from jaxdistill.runner import distill, load_real

    data = load_real("mnist", ctx.data_dir, progress=ctx.progress)
    overrides = config.get("method_overrides", {}) if config["method"] != "random" else {}
    rec = distill(config["method"], "mnist", config["ipc"], config["seeds"], ctx.workdir, data=data,
                  method_overrides=overrides, progress=ctx.progress, checkpoint_every=ctx.checkpoint_every)
    record_config = {k: config[k] for k in ("method", "dataset", "ipc", "seeds", "models", "epochs")}
    record_config.update(method_overrides=overrides)  # selections: len(seeds) (a --seeds part holds some of them)
    finish_distillation(ctx, data, rec, record_config)


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
