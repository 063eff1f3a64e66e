"""ResNet50V2 (teacher) and MobileNetV2 (student) on this machine: seconds per training step at batch 32 (from scratch,
all layers; pretrained feature extraction, head only; pretrained fine-tuning, top unfrozen), the seconds per MHIST epoch
(2,175 images = 68 steps) they imply, and the Keras parity at 224 px (random weights, logits compared).

    python scripts/bench_applications.py --out results/bench/applications_cpu.json
    python scripts/bench_applications.py --resolutions 128 --steps 3 --no-parity   # quicker

Steps are timed after one warm-up (compile) step, each waiting for its result; the median is reported.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill.records import device_info, versions, write_json
from jaxdistill.transfer import TransferConfig, TransferTrainer

MHIST_TRAIN = 2175


def time_phase(config: TransferConfig, phase_index: int, resolution: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (64, resolution, resolution, 3)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, 2, 64).astype(np.int32))
    trainer = TransferTrainer(config, 2, 64)
    state = jax.vmap(lambda k: trainer.init_state(k, images))(jax.random.PRNGKey(0)[None])
    step = trainer.step_fn(trainer.phases[phase_index], False)
    key = jax.random.PRNGKey(1)[None]
    state, loss = step(state, key, images, labels, None)
    loss.block_until_ready()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, loss = step(state, key, images, labels, None)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def parity_224() -> dict:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    import tempfile
    from jaxdistill.models.applications import MobileNetV2, ResNet50V2
    from jaxdistill.models.keras_weights import import_keras_weights
    out = {}
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    for name, kcls, fcls in (("resnet50v2", keras.applications.ResNet50V2, ResNet50V2),
                             ("mobilenetv2", keras.applications.MobileNetV2, MobileNetV2)):
        km = kcls(weights=None, include_top=True, classes=1000, classifier_activation=None)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.weights.h5")
            km.save_weights(path)
            model = fcls(num_classes=1000, head="imagenet")
            v = model.init(jax.random.PRNGKey(0), x[:1])
            params, stats, _ = import_keras_weights(path, v["params"], v["batch_stats"])
        ours = np.asarray(model.apply({"params": params, "batch_stats": stats}, x))
        ref = np.asarray(km(x, training=False))
        out[name] = {"max_abs_diff": float(np.abs(ours - ref).max()), "max_abs_logit": float(np.abs(ref).max())}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resolutions", type=lambda s: [int(x) for x in s.split(",")], default=[128, 224])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-parity", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    rows = []
    for model, lr in (("resnet50v2", 1e-4), ("mobilenetv2", 1e-3)):
        for resolution in args.resolutions:
            for label, pretrained, phase in (("scratch_all_layers", None, 0), ("pretrained_head_only", "x", 0),
                                             ("pretrained_finetune", "x", 1)):
                config = TransferConfig(model=model, pretrained=pretrained, lr=lr, seeds=(0,))
                seconds = time_phase(config, phase, resolution, args.steps)
                steps_per_epoch = -(-MHIST_TRAIN // 32)
                rows.append({"model": model, "resolution": resolution, "phase": label, "seconds_per_step": seconds,
                             "seconds_per_epoch": seconds * steps_per_epoch})
                print(f"{model:12s} {resolution:4d} px {label:22s} {seconds:7.3f} s/step "
                      f"{seconds * steps_per_epoch:8.1f} s/epoch", flush=True)
    record = {"benchmark": "applications_training_step", "batch_size": 32, "rows": rows,
              "parity_224": None if args.no_parity else parity_224(), "device": device_info(),
              "versions": versions(), "command": "python scripts/bench_applications.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False))}
    print(record["parity_224"])
    if args.out:
        write_json(args.out, record)


if __name__ == "__main__":
    main()
