"""Benchmark: evaluation throughput, K networks trained on a synthetic set, vmapped versus one after another.

    python scripts/bench_eval.py [--models 20] [--steps 10] [--out results/bench/eval_<backend>.json]

For each synthetic-set size (10 and 100 MNIST-shaped images, the ipc 1 and ipc 10 cases) it trains the DC evaluation
ConvNet with the evaluation augmentation, compiles first, then times `--steps` steady-state steps of all K networks
under each strategy, and reports seconds per network-step and the projected seconds per network for the 1000-epoch
protocol. Compile time is reported separately.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdistill import cpu_tuning
from jaxdistill.models import ConvNet
from jaxdistill.records import device_info, versions, write_json
from jaxdistill.train import Trainer, TrainConfig


def time_strategy(num_images: int, num_models: int, steps: int, parallel: str, driver: str, conv: str):
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(num_images, 28, 28, 1)).astype(np.float32))
    labels = jnp.asarray(np.arange(num_images) % 10, jnp.int32)
    net = ConvNet(10, conv_impl=conv)
    epochs = -(-steps // -(-num_images // 256))
    trainer = Trainer(net, TrainConfig(epochs=epochs, augment="crop_scale_rotate", driver=driver,
                                       parallel=parallel), num_images)
    keys = jax.random.split(jax.random.PRNGKey(0), num_models)
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run(keys[:1] if parallel == "sequential" else keys, images, labels))
    first = time.perf_counter() - t0  # compile + one run (of one network when sequential)
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run(keys, images, labels))
    steady = time.perf_counter() - t0
    per_net_step = steady / (num_models * trainer.total_steps)
    steps_per_epoch = -(-num_images // 256)
    steady_first = steady / num_models if parallel == "sequential" else steady
    return {"num_images": num_images, "num_models": num_models, "parallel": parallel, "driver": driver,
            "conv_impl": conv, "steps_timed_per_model": trainer.total_steps,
            "compile_s": max(0.0, first - steady_first), "steady_s": steady,
            "s_per_network_step": per_net_step,
            "projected_s_per_network_1000_epochs": per_net_step * 1000 * steps_per_epoch}


def main() -> None:
    # Opt in to the CPU settings first (restarting once for the allocator); the record's device.cpu_tuning says
    # what was in effect. JAXDISTILL_CPU_TUNING=0 times without them.
    print(cpu_tuning.describe(cpu_tuning.apply(reexec=True)), flush=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sizes", default="10,100")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    backend = jax.default_backend()
    convs = ["winograd", "fastgrad", "matmul", "xla"] if backend == "cpu" else ["xla"]
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for conv in convs:
            for parallel in ("vmap", "sequential"):
                driver = "python" if backend == "cpu" else "scan"
                row = time_strategy(n, args.models, args.steps, parallel, driver, conv)
                rows.append(row)
                print(f"{n:4d} images  conv={conv:6s} {parallel:10s}  compile {row['compile_s']:6.1f} s  "
                      f"{1000 * row['s_per_network_step']:8.1f} ms/network-step  "
                      f"-> {row['projected_s_per_network_1000_epochs']:8.0f} s/network for 1000 epochs", flush=True)
    out = Path(args.out or f"results/bench/eval_{backend}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"benchmark": "evaluation throughput", "command": " ".join(["python"] + sys.argv),
                     "rows": rows, "versions": versions(), "device": device_info()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
