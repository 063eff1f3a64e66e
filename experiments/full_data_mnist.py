"""Full-data baseline: the DC ConvNet trained on all 60,000 MNIST images (literature: 99.6%).

    python experiments/full_data_mnist.py --variant full      # 20 epochs
    python experiments/full_data_mnist.py --variant reduced   # 2 epochs, labelled reduced
    python experiments/full_data_mnist.py --variant smoke     # CI
    python -m jaxdistill.experiment full_data_mnist --variant full   # the same runner
"""
from __future__ import annotations

from typing import Any

from jaxdistill.experiment import Context

VARIANTS = {"full": dict(epochs=20, seed=0), "reduced": dict(epochs=2, seed=0),
            "smoke": dict(epochs=1, seed=0, subset_per_class=20, model_kwargs={"width": 16})}


def get_config(variant: str) -> dict[str, Any]:
    return {**VARIANTS[variant], "name": f"full_data_mnist_{variant}", "reduced": variant != "full",
            "full_protocol_command": "python experiments/full_data_mnist.py --variant full"}


def run(config: dict[str, Any], ctx: Context) -> None:
    from jaxdistill.runner import train_baseline

    res = train_baseline("mnist", ctx.workdir, epochs=config["epochs"], seed=config["seed"], data_dir=ctx.data_dir,
                         subset_per_class=config.get("subset_per_class"), model_kwargs=config.get("model_kwargs"),
                         progress=ctx.progress)
    print(f"full-data ConvNet, {config['epochs']} epochs: test accuracy {100 * res['test_accuracy']:.2f} %")
    if ctx.writes_record:
        ctx.write_record({k: v for k, v in config.items() if k not in ("name", "reduced", "full_protocol_command")},
                         res)


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
