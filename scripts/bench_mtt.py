"""Benchmark: memory and time of one MTT / DATM outer iteration against the number of unrolled student steps.

    python scripts/bench_mtt.py [--method mtt] [--ipc 1] [--syn-steps 10,20,40,80] [--timed 3]
                                [--out results/bench/mtt_<backend>.json]

For every syn_steps and with and without rematerialisation (`remat`, jax.checkpoint on each student step), a fresh
process builds the method on MNIST-shaped data (28x28x1, 10 classes; the step never reads the real data, so random
images stand in for it), compiles the step (timed separately), runs one warm-up and `--timed` timed iterations, and
reports its peak RSS (CPU) or the device's peak memory (GPU), and XLA's own estimate of the step's temporary buffers
(`memory_analysis`). The expert window is a random ConvNet initialisation and a perturbed copy: time and memory do not
depend on what the experts learned. ConvNet width 128, depth 3, instance norm, as in the papers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from jaxdistill import cpu_tuning


def _script(name: str):
    """A script beside this one, imported from its path (no sys.path change)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


child_rusage = _script("bench_dc").child_rusage


def one(method: str, ipc: int, syn_steps: int, remat: bool, timed: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdistill.data.arrays import make_real_data
    from jaxdistill.methods import make_method, method_config
    from jaxdistill.methods.mtt import ExpertWindow
    from jaxdistill.models import ConvNet

    rng = np.random.default_rng(0)
    images = rng.normal(size=(10 * max(ipc, 8), 28, 28, 1)).astype(np.float32)
    labels = np.repeat(np.arange(10), max(ipc, 8)).astype(np.int32)
    real = make_real_data(images, labels, 10)
    net = ConvNet(10)
    start = net.init(jax.random.PRNGKey(1), images[:1])["params"]
    target = jax.tree.map(lambda a: a + 0.01 * jnp.asarray(rng.normal(size=a.shape), a.dtype), start)
    window = ExpertWindow(start, target)
    overrides = dict(ipc=ipc, syn_steps=syn_steps, remat=remat, buffer_dir="unused", dsa_strategy="none")
    if method == "datm":
        overrides.update(soft_labels=False, init="real", sequential_generation=False)
    m = make_method(method, method_config(method, dataset="mnist", **overrides))
    state = jax.jit(m.init)(jax.random.PRNGKey(0), real)
    t0 = time.perf_counter()
    compiled = jax.jit(m.step).lower(state, jax.random.PRNGKey(2), window).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    temp_gib = float(getattr(mem, "temp_size_in_bytes", float("nan"))) / 2**30 if mem is not None else float("nan")
    state, metrics = compiled(state, jax.random.PRNGKey(3), window)
    jax.block_until_ready(state)
    times = []
    for i in range(timed):
        t0 = time.perf_counter()
        state, metrics = compiled(state, jax.random.PRNGKey(4 + i), window)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    device_peak = None
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        device_peak = stats["peak_bytes_in_use"] / 2**30
    return {"method": method, "ipc": ipc, "syn_steps": syn_steps, "remat": remat, "compile_s": compile_s,
            "s_per_iteration": float(np.median(times)), "times_s": times, "xla_temp_gib": temp_gib,
            "device_peak_gib": device_peak, "loss": float(metrics["match_loss"]), "backend": jax.default_backend()}


def main() -> None:
    # Opt in to the CPU settings first (restarting once for the allocator); the `--one` children inherit them, and
    # the record's device.cpu_tuning says what was in effect. JAXDISTILL_CPU_TUNING=0 times without them.
    settings = cpu_tuning.apply(reexec=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=("mtt", "datm"), default="mtt")
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--syn-steps", default="10,20,40,80")
    p.add_argument("--timed", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("--one", nargs=2, metavar=("SYN_STEPS", "REMAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.method, args.ipc, int(args.one[0]), args.one[1] == "1", args.timed)))
        return
    import jax

    from jaxdistill.records import device_info, versions
    print(cpu_tuning.describe(settings), flush=True)
    rows = []
    for steps in [int(s) for s in args.syn_steps.split(",")]:
        for remat in (True, False):
            cmd = [sys.executable, __file__, "--method", args.method, "--ipc", str(args.ipc), "--timed",
                   str(args.timed), "--one", str(steps), "1" if remat else "0"]
            wall, rss, out = child_rusage(cmd, dict(os.environ))
            row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            row["peak_rss_gib"] = rss
            rows.append(row)
            print(f"syn_steps {steps:3d} remat {str(remat):5s}: {row['s_per_iteration']:7.2f} s/it, compile "
                  f"{row['compile_s']:6.1f} s, peak RSS {rss:5.2f} GiB, XLA temp {row['xla_temp_gib']:.3f} GiB"
                  + (f", device peak {row['device_peak_gib']:.2f} GiB" if row["device_peak_gib"] else ""),
                  flush=True)
    out = Path(args.out or Path(__file__).resolve().parents[1] / "results" / "bench" /
               f"{args.method}_{jax.default_backend()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "rows": rows, "versions": versions(),
                               "device": device_info()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
