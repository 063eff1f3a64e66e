"""MHIST baselines beside the distilled sets: the whole training set (the upper bound), random real images, and a
mean-colour classifier (how much of the label colour alone gives away).

MHIST is binary and imbalanced (train HP 1,545 / SSA 630; test HP 617 / SSA 360), so every record reports balanced
accuracy, sensitivity (SSA recall), specificity (HP recall), precision, F1 and ROC AUC with SSA positive, and the
confusion matrix, as mean +- std over networks; accuracy alone would reward predicting HP. Predictions are the
argmax (no threshold is tuned, so nothing is chosen on the test set).

  * full_data: the distillation ConvNet (depth 4 at 64 px) trained on every training image with the DC evaluation
    optimiser (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half) and MHIST's evaluation
    augmentation; --weighting plain | class_weighted (loss weight n / (C n_c)) | balanced_sampling (classes equally
    likely in every batch). Records training time and FLOPs (XLA's count of a forward pass x 3 x images x epochs).
  * random: ipc random real images per class, evaluated like a distilled set (the DC protocol: 20 networks x 1000
    epochs); balanced by construction, whatever the data's imbalance.
  * mean_colour: logistic regression on each image's mean RGB (fitted on the training split, with balanced class
    weights); the stand-in is built so that it stays near chance.

    python experiments/mhist_baselines.py --baseline full_data --weighting plain --variant full --data-dir MHIST
    python experiments/mhist_baselines.py --baseline random --variant ipc10 --data-dir MHIST
    python experiments/mhist_baselines.py --baseline random --variant ipc10_reduced --data-dir STANDIN
    python experiments/mhist_baselines.py --baseline full_data --variant smoke --data-dir STANDIN   # CI

On a folder made by `scripts/make_mhist_standin.py` every record says `"stand_in": true` (under "data"): those are
checks of the pipeline and of the stand-in's difficulty, never MHIST results.
"""
from __future__ import annotations

from typing import Any

from jaxdistill.experiment import Context, is_reduced

CHOICES = {"baseline": ("full_data", "random", "mean_colour"),
           "weighting": ("plain", "class_weighted", "balanced_sampling")}

WEIGHTINGS = {"plain": {}, "class_weighted": {"class_weighting": "balanced"},
              "balanced_sampling": {"sampling": "balanced"}}

# full_data: networks x epochs; random: ipc, networks x epochs; mean_colour needs no settings
VARIANTS = {
    "full": dict(models=5, epochs=50),
    "ipc1": dict(ipc=1, models=20, epochs=1000),
    "ipc10": dict(ipc=10, models=20, epochs=1000),
    "ipc50": dict(ipc=50, models=20, epochs=1000),
    # Reduced for a 2-core CPU, on the stand-in: the full-data network at 64 px (the stand-in's calibration, an epoch
    # over 2,175 images ~ 30 s there) with 2 networks of 30 epochs; the full-data and random rows beside the reduced
    # distillations at 32 px (their resolution), evaluated like them (5 networks, 300 epochs; 100 at ipc 50).
    "full_reduced": dict(models=2, epochs=30),
    "full32_reduced": dict(models=2, epochs=15, resolution=32),
    "ipc1_reduced": dict(ipc=1, models=5, epochs=300, resolution=32),
    "ipc10_reduced": dict(ipc=10, models=5, epochs=300, resolution=32),
    "ipc10_64_reduced": dict(ipc=10, models=3, epochs=300),
    "ipc50_reduced": dict(ipc=50, models=5, epochs=100, resolution=32),
    # Smoke: seconds; a narrow network at 32 px.
    "smoke": dict(ipc=1, models=1, epochs=1, model="convnet:depth=3,width=8", resolution=32),
}
_FOR = {"full_data": ("full", "full_reduced", "full32_reduced", "smoke"),
        "random": ("ipc1", "ipc10", "ipc50", "ipc1_reduced", "ipc10_reduced", "ipc10_64_reduced", "ipc50_reduced",
                   "smoke"),
        "mean_colour": ("full", "smoke")}


_FULL = {"full_reduced": "full", "full32_reduced": "full", "ipc1_reduced": "ipc1", "ipc10_reduced": "ipc10",
         "ipc10_64_reduced": "ipc10", "ipc50_reduced": "ipc50"}


def get_config(variant: str, baseline: str, weighting: str = "plain") -> dict[str, Any]:
    from jaxdistill.errors import ConfigError
    if variant not in _FOR[baseline]:
        raise ConfigError(f"baseline {baseline} has variants {', '.join(_FOR[baseline])}, not {variant}")
    if weighting != "plain" and baseline != "full_data":
        raise ConfigError("--weighting is an option of the full_data baseline (a random or distilled set is "
                          "balanced by construction)")
    suffix = f"_{weighting}" if baseline == "full_data" else ""
    return {**VARIANTS[variant], "baseline": baseline, "weighting": weighting,
            "name": f"mhist_{baseline}{suffix}_{variant}", "reduced": is_reduced(variant),
            "full_protocol_command": f"python experiments/mhist_baselines.py --baseline {baseline} "
                                     f"--weighting {weighting} --variant {_FULL.get(variant, variant)} "
                                     f"--data-dir MHIST"}


def run(config: dict[str, Any], ctx: Context) -> None:
    from jaxdistill.runner import load_real
    data = load_real("mhist", ctx.data_dir, progress=ctx.progress, resolution=config.get("resolution"))
    result = {"full_data": _full_data, "random": _random, "mean_colour": _mean_colour}[config["baseline"]](
        config, ctx, data)
    scalars = result.get("metrics_mean", {})
    print(f"mhist {config['baseline']} ({ctx.variant}"
          + (f", {config['weighting']}" if config["baseline"] == "full_data" else "") + "): "
          + ", ".join(f"{k} {v:.3f} +- {result['metrics_std'][k]:.3f}" for k, v in scalars.items()
                      if not isinstance(v, list))
          + (" [stand-in]" if data.stand_in else ""))
    if ctx.writes_record:
        record_config = {k: v for k, v in config.items() if k not in ("name", "reduced", "full_protocol_command")}
        ctx.write_record(record_config, {**result, "data": data.facts()})
    if ctx.writes_record:
        from jaxdistill.visualize import plot_confusion_matrix
        plot_confusion_matrix(result["confusion_matrix_total"], data.spec.class_names,
                              ctx.figures_dir / f"{ctx.name}_confusion.png",
                              title=f"{ctx.name}: summed over {network_count(result)} network(s)"
                                    + (" [stand-in]" if data.stand_in else ""))


def network_count(result: dict[str, Any]) -> int:
    """How many networks a baseline's result pools: per-network metrics (full data, mean colour) or, for the
    random sets' evaluation, one accuracy per network over all sets."""
    return len(result["metrics"]) if "metrics" in result else len(result["accuracies"])


def _eval_config(config, data, **train_changes):
    from jaxdistill.evaluate import EvalConfig
    from jaxdistill.runner import default_augmentation_for
    from jaxdistill.train import TrainConfig
    augment = default_augmentation_for({"dataset": "mhist"})
    model = config.get("model") or f"convnet:depth={data.spec.convnet_depth()}"
    return EvalConfig(model=model, num_models=config["models"],
                      train=TrainConfig(epochs=config["epochs"], augment=augment, **train_changes),
                      metrics=data.spec.defaults.metrics)


def _full_data(config, ctx, data) -> dict[str, Any]:
    """Every training image; the networks train in ctx.workdir, resumable network by network (a rerun after a
    crash reuses the networks already evaluated, for the same config and data)."""
    import numpy as np
    from tqdm.auto import tqdm

    from jaxdistill.checkpoint import RunDir
    from jaxdistill.costs import training_cost
    from jaxdistill.records import read_json
    from jaxdistill.runner import EVAL_PARTIAL_FILE, evaluate_resumably
    from jaxdistill.train import Trainer
    cfg = _eval_config(config, data, **WEIGHTINGS[config["weighting"]])
    RunDir(ctx.workdir).open({"kind": "mhist_full_data", **cfg.to_dict(), "data": data.facts()})
    images, labels = np.asarray(data.train.images), np.asarray(data.train.labels)
    partial = ctx.workdir / EVAL_PARTIAL_FILE
    saved = read_json(partial) if partial.exists() else {}
    steps = Trainer(cfg.model.build(data.spec.num_classes), cfg.train, len(images)).total_steps
    with tqdm(total=steps * cfg.num_models, desc="train on every MHIST image", disable=not ctx.progress,
              unit="step", dynamic_ncols=True) as bar:
        res = evaluate_resumably(images, labels, data, cfg, saved, partial, "full_data", bar, steps)
    res["train_seconds_per_network"] = res["wall_time_s"] / cfg.num_models
    res["cost"] = training_cost(cfg.model, data.spec.num_classes, data.spec.image_shape, len(images),
                                config["epochs"])
    return res


def _random(config, ctx, data) -> dict[str, Any]:
    from jaxdistill.runner import distill, evaluate_workdir
    distill("random", "mhist", config["ipc"], [0], ctx.workdir, data=data, progress=ctx.progress,
            resolution=config.get("resolution"))
    return evaluate_workdir(ctx.workdir, num_models=config["models"], epochs=config["epochs"], data=data,
                            model=config.get("model"), progress=ctx.progress)


def _mean_colour(config, ctx, data) -> dict[str, Any]:
    """Logistic regression (balanced class weights, fitted by gradient descent on the standardised mean RGB)."""
    import numpy as np

    from jaxdistill import metrics
    from jaxdistill.evaluate import summarize_networks
    x_train = np.asarray(data.train.images).mean(axis=(1, 2))
    y_train = np.asarray(data.train.labels)
    x_test = np.asarray(data.test_images).mean(axis=(1, 2))
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-8
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    counts = np.bincount(y_train, minlength=2)
    w = (len(y_train) / (2 * counts))[y_train]
    coef, bias = np.zeros(x_train.shape[1]), 0.0
    for _ in range(2000):
        p = 1 / (1 + np.exp(-(x_train @ coef + bias)))
        g = w * (p - y_train) / len(y_train)
        coef -= 0.5 * (x_train.T @ g + 1e-4 * coef)
        bias -= 0.5 * g.sum()
    score = x_test @ coef + bias
    logits = np.stack([np.zeros_like(score), score], -1)
    values = metrics.compute(data.spec.defaults.metrics, logits, data.test_labels, 2)
    return {**summarize_networks([values]), "classifier": "logistic regression on mean RGB, balanced class weights"}


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
