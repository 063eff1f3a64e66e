"""Class-incremental learning with a small memory: an application of a distilled set from the DC paper (Zhao et al.,
ICLR 2021, section 4.3), adapted to MNIST and labelled so.

MNIST arrives in 5 stages of 2 classes (0-1, 2-3, ..., 8-9). At each stage one network continues from the previous
stage's weights (all 10 outputs from the start) and trains on the stage's real images plus a memory of `ipc` images of
every class seen before, with class-balanced minibatches (every present class equally likely per draw, so the few
memory images are replayed as often as the new classes' thousands); after each stage it is tested on the test images
of every class seen so far. The memories compared, all of the same size:

    none       no memory (fine-tuning alone: the lower bound)
    random     ipc random training images per class (a new draw per network seed)
    herding    the herding coreset (DC paper's baseline memory; `jaxdistill.methods.coreset`, selection seed 0)
    synthetic  a committed DSA set (`results/sets/...`), the distilled memory

Adapted from the DC paper's protocol (which follows EEIL with a distillation loss on CIFAR-type data): here plain
cross-entropy, no knowledge-distillation term, MNIST, the ConvNet. A synthetic set distilled from all 10 classes at
once carries some knowledge of classes that, in a strict class-incremental setting, arrive later; the record says so.

    python experiments/continual_mnist.py --variant ipc10            # ConvNet width 128, 5 epochs per stage, 5 seeds
    python experiments/continual_mnist.py --variant ipc10_reduced    # ConvNet width 32, 2 epochs per stage
    python experiments/continual_mnist.py --variant ipc1_reduced     # the full-protocol DSA ipc-1 set as memory
    python experiments/continual_mnist.py --variant ipc1             # the same, ConvNet width 128, 5 epochs
    python experiments/continual_mnist.py --variant smoke            # seconds; CI runs it

Record: results/continual_mnist_<variant>.json (accuracy after every stage per memory and seed, its mean ± std, the
average incremental accuracy and the final one); figure results/figures/continual_mnist_<variant>.png.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxdistill.experiment import Context, is_reduced

ROOT = Path(__file__).resolve().parents[1]
STAGES = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
MEMORIES = ("none", "random", "herding", "synthetic")

# DSA's ipc-1 set: seed 0 of the 3-seed full-protocol record, a workdir committed before the spine redesign
DSA_IPC1 = "results/sets/dsa_mnist_ipc1_pre_redesign_seed0"
VARIANTS = {
    "ipc1": dict(ipc=1, synthetic=DSA_IPC1, model={}, epochs=5, seeds=[0, 1, 2, 3, 4]),
    "ipc10": dict(ipc=10, synthetic="results/sets/dsa_mnist_ipc10_reduced", model={}, epochs=5,
                  seeds=[0, 1, 2, 3, 4]),
    "ipc10_reduced": dict(ipc=10, synthetic="results/sets/dsa_mnist_ipc10_reduced", model={"width": 32}, epochs=2,
                          seeds=[0, 1, 2, 3, 4]),
    "ipc1_reduced": dict(ipc=1, synthetic=DSA_IPC1, model={"width": 32}, epochs=2, seeds=[0, 1, 2, 3, 4]),
    # 50 real images per class, a narrow net, one epoch per stage, herding on a feature net of a few steps
    "smoke": dict(ipc=1, synthetic=DSA_IPC1, model={"width": 8, "depth": 2}, epochs=1,
                  seeds=[0], subset_per_class=50, herding_overrides={"model": "convnet:width=8,depth=2",
                                                                        "feature_epochs": 0.02}),
}


def get_config(variant: str) -> dict[str, Any]:
    cfg = VARIANTS[variant]
    full = "ipc1" if variant == "smoke" else variant.replace("_reduced", "")
    return {**cfg, "name": f"continual_mnist_{variant}", "reduced": is_reduced(variant),
            "full_protocol_command": f"python experiments/continual_mnist.py --variant {full}"}


def classes_before(stage: int) -> list[int]:
    """The classes of every stage before `stage` (those of stages 0..stage-1)."""
    return [c for s in STAGES[:stage] for c in s]


def stage_data(stage: int, train_images, train_labels, memory: tuple | None):
    """The training set of `stage`: its classes' real images plus the memory's images of the classes before it."""
    import numpy as np
    new = np.isin(train_labels, STAGES[stage])
    images, labels = [train_images[new]], [train_labels[new]]
    if memory is not None and stage:
        keep = np.isin(memory[1], classes_before(stage))
        images.append(memory[0][keep])
        labels.append(memory[1][keep])
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)


def run_incremental(model, train_cfg, seed: int, train_images, train_labels, test_images, test_labels,
                    memory: tuple | None, trainers: dict | None = None) -> list[float]:
    """One network through the 5 stages; its accuracy on the seen classes' test images after each. `trainers`
    caches one Trainer (and its compiled steps) per training-set size across calls."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdistill.train import Trainer, TrainState, predict_logits
    key = jax.random.PRNGKey(seed)
    params = stats = None
    accuracies = []
    trainers = {} if trainers is None else trainers
    for stage in range(len(STAGES)):
        images, labels = stage_data(stage, train_images, train_labels, memory)
        if labels.shape[0] not in trainers:
            trainers[labels.shape[0]] = Trainer(model, train_cfg, int(labels.shape[0]))
        trainer = trainers[labels.shape[0]]
        stage_key = jax.random.fold_in(key, stage)
        if params is None:
            state = trainer.init_state(stage_key, jnp.asarray(images))
        else:  # the previous stage's network, a fresh optimiser
            state = TrainState(params, stats, trainer.tx.init(params), jnp.zeros((), jnp.int32))
        state = jax.tree.map(lambda a: a[None], state)
        done = trainer.run(stage_key[None], jnp.asarray(images), jnp.asarray(labels), states=state)
        params, stats = jax.tree.map(lambda a: a[0], done.params), jax.tree.map(lambda a: a[0], done.batch_stats)
        seen = np.isin(test_labels, classes_before(stage + 1))
        logits = np.asarray(predict_logits(model, params, stats, jnp.asarray(test_images[seen])))
        accuracies.append(float((logits.argmax(-1) == test_labels[seen]).mean()))
    return accuracies


def run(config: dict[str, Any], ctx: Context) -> None:
    import time

    import jax
    import numpy as np

    from jaxdistill.checkpoint import RunDir
    from jaxdistill.data.arrays import make_real_data, sample_per_class
    from jaxdistill.models import make_model
    from jaxdistill.records import read_json, write_json
    from jaxdistill.report import plot_continual
    from jaxdistill.runner import distill, load_real, load_synthetic
    from jaxdistill.train import TrainConfig

    record_config = {k: v for k, v in config.items() if k not in ("name", "reduced", "full_protocol_command")}
    RunDir(ctx.workdir).open({"kind": "continual", **record_config})  # refuses a workdir of another variant
    data = load_real("mnist", ctx.data_dir, progress=ctx.progress)
    train = data.train
    if config.get("subset_per_class"):
        images, labels = sample_per_class(jax.random.PRNGKey(0), train, config["subset_per_class"])
        train = make_real_data(np.asarray(images), np.asarray(labels), train.num_classes)
    train_images, train_labels = np.asarray(train.images), np.asarray(train.labels)
    test_images, test_labels = np.asarray(data.test_images), np.asarray(data.test_labels)
    ipc = config["ipc"]

    herding_dir = ctx.workdir / "memory_herding"
    distill("herding", "mnist", ipc, [0], herding_dir, data=data, method_overrides=config.get("herding_overrides"),
            progress=ctx.progress)
    _, syn_images, syn_labels, _ = load_synthetic(ROOT / config["synthetic"])
    _, herd_images, herd_labels, _ = load_synthetic(herding_dir)
    if syn_images.shape[1] != 10 * ipc:
        raise ValueError(f"{config['synthetic']} holds {syn_images.shape[1] // 10} images per class, not {ipc}")

    def memory_for(kind: str, seed: int):
        if kind == "none":
            return None
        if kind == "random":
            imgs, labs = sample_per_class(jax.random.PRNGKey(1000 + seed), data.train, ipc)
            return np.asarray(imgs), np.asarray(labs)
        if kind == "herding":
            return herd_images[0], herd_labels[0]
        return syn_images[0], syn_labels[0]

    model = make_model("convnet", 10, **config["model"])
    train_cfg = TrainConfig(epochs=config["epochs"], batch_size=256, lr=0.01, sampling="balanced", parallel="vmap")
    done_path = ctx.workdir / "stages.json"  # resumable per (memory, seed)
    done = read_json(done_path) if done_path.exists() else {}
    results, trainers = {}, {}
    for kind in MEMORIES:
        per_seed = []
        for seed in config["seeds"]:
            key = f"{kind}/{seed}"
            if key not in done:
                start = time.time()
                accs = run_incremental(model, train_cfg, seed, train_images, train_labels, test_images, test_labels,
                                       memory_for(kind, seed), trainers)
                done[key] = {"accuracies": accs, "seconds": time.time() - start}
                write_json(done_path, done)
            per_seed.append(done[key]["accuracies"])
        accs = np.asarray(per_seed)  # (seeds, stages)
        results[kind] = {"per_seed": per_seed, "stage_mean": accs.mean(0).tolist(), "stage_std": accs.std(0).tolist(),
                         "average_incremental_mean": float(accs.mean(1).mean()),
                         "average_incremental_std": float(accs.mean(1).std()),
                         "final_mean": float(accs[:, -1].mean()), "final_std": float(accs[:, -1].std())}
        print(f"memory {kind:9s}: accuracy after each stage " +
              " ".join(f"{100 * m:.1f}" for m in results[kind]["stage_mean"]) +
              f"; final {100 * results[kind]['final_mean']:.2f} +- {100 * results[kind]['final_std']:.2f} %")
    if ctx.writes_record:
        plot_continual(results, STAGES, ctx.figures_dir / f"{ctx.name}.png",
                       title=f"Class-incremental MNIST, {ipc} memory image(s) per class, {len(config['seeds'])} seeds")
        ctx.write_record({**record_config, "stages": [list(s) for s in STAGES], "memories": list(MEMORIES),
                          "train": {"batch_size": 256, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                                    "sampling": "balanced", "lr_schedule": "x0.1 at half of each stage"},
                          "note": "adapted from the DC paper's continual-learning application: MNIST, plain "
                                  "cross-entropy, no distillation loss; the synthetic set was distilled from all 10 "
                                  "classes at once"},
                         {"memories": results})


if __name__ == "__main__":
    from jaxdistill.experiment import main
    main(__file__)
