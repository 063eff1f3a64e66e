"""Random selection on MNIST: ipc random real images per class, evaluated by the DC protocol.

Literature (DC paper, Table 1, random selection): 64.9 +- 3.5 / 95.1 +- 0.9 / 97.9 +- 0.2 at ipc 1 / 10 / 50.

    python experiments/random_mnist.py --variant ipc1          # full protocol: 20 nets x 1000 epochs
    python experiments/random_mnist.py --variant ipc10         # full protocol (hours on a 2-core CPU)
    python experiments/random_mnist.py --variant ipc10_reduced # fewer epochs, labelled reduced
    python experiments/random_mnist.py --variant ipc1_dsa_eval # under DSA's evaluation (the MTT / DATM control)
    python experiments/random_mnist.py --variant smoke         # seconds; CI runs it
    python -m jaxdistill.experiment random_mnist --variant ipc1   # the same runner
"""
from __future__ import annotations

from typing import Any

from jaxdistill.experiment import Context, evaluation_augment, is_reduced

# ipc, evaluation networks, epochs, distillation seeds
VARIANTS = {
    "ipc1": dict(ipc=1, models=20, epochs=1000, seeds=[0]),
    "ipc10": dict(ipc=10, models=20, epochs=1000, seeds=[0]),
    "ipc50": dict(ipc=50, models=20, epochs=1000, seeds=[0]),
    "ipc10_reduced": dict(ipc=10, models=20, epochs=100, seeds=[0]),
    "ipc50_reduced": dict(ipc=50, models=20, epochs=20, seeds=[0]),
    # The starting images of the MTT ipc-1 row (seed 0 draws the same real images for every method initialised from
    # random real images; DATM's are the real images its label expert classifies correctly) under
    # those rows' evaluation: DSA's augmentation, 20 nets x 1000 epochs. Their control, as the *_dsa_eval rows at
    # ipc 10 / 50 are the reduced rows'.
    "ipc1_dsa_eval": dict(ipc=1, models=20, epochs=1000, seeds=[0], augment="dsa"),
    # Smoke: evaluated by a narrow ConvNet (random selection trains no network, so evaluation names one).
    "smoke": dict(ipc=1, models=1, epochs=2, seeds=[0], eval_model="convnet:width=16"),
}


def get_config(variant: str) -> dict[str, Any]:
    return {**VARIANTS[variant], "name": f"random_mnist_{variant}", "reduced": is_reduced(variant),
            "full_protocol_command": f"python experiments/random_mnist.py --variant {variant.replace('_reduced', '')}"}


def run(config: dict[str, Any], ctx: Context) -> None:
    from jaxdistill.runner import distill, evaluate_workdir

    distill("random", "mnist", config["ipc"], config["seeds"], ctx.workdir, data_dir=ctx.data_dir,
            progress=ctx.progress)
    res = evaluate_workdir(ctx.workdir, num_models=config["models"], epochs=config["epochs"], data_dir=ctx.data_dir,
                           model=config.get("eval_model"), progress=ctx.progress, augment=evaluation_augment(config))
    print(f"random ipc={config['ipc']}: {100 * res['accuracy_mean']:.2f} +- {100 * res['accuracy_std']:.2f} % "
          f"over {len(res['accuracies'])} networks")
    if ctx.writes_record:
        ctx.write_record({k: config[k] for k in ("ipc", "models", "epochs", "seeds") if k in config}
                         | ({"augment": evaluation_augment(config)} if config.get("augment") else {}), res)


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
