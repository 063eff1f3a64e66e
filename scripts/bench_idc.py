"""Benchmark: seconds per outer iteration of IDC beside DC's, MNIST shapes, same run.

    python scripts/bench_idc.py [--ipc 10] [--iterations 2] [--methods idc,dc] [--out results/bench/idc_<backend>.json]
                                [--idc-inner-steps 10]   # time 10 of IDC's 100 inner steps (estimate x 10)

Each method runs as `jaxdistill distill` runs it (the `Driver` under this backend's policy) with its MNIST defaults
(IDC: factor 2, 100 inner steps of 10 per-class matches and 8 network steps on real batches of 64; DC: the
reference's (outer_loop, inner_loop) for the ipc, real batches of 256) on random pixels of MNIST's shapes (60,000
images of 28x28, 10 classes: timing does not depend on the pixels). The first iteration includes compilation and is
reported apart; the others are timed one by one. The full protocols' durations follow: IDC 2000 outer iterations,
DC 1000.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

FULL_ITERATIONS = {"idc": 2000, "dc": 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--iterations", type=int, default=2, help="timed iterations after the compiling one")
    p.add_argument("--methods", default="idc,dc")
    p.add_argument("--out", default=None)
    p.add_argument("--idc-inner-steps", type=int, default=100,
                   help="inner steps of the timed IDC iteration (default 100, the protocol's); fewer time a fraction "
                        "of an outer iteration, and the outer iteration is then reported as that time x 100 / N, "
                        "labelled an estimate (an outer iteration is N identical inner steps)")
    args = p.parse_args()

    from jaxdistill import cpu_tuning
    cpu_tuning.apply(reexec=True)

    import jax
    import numpy as np

    from jaxdistill.data.arrays import make_real_data
    from jaxdistill.driver import Driver
    from jaxdistill.methods import make_method, method_config
    from jaxdistill.records import device_info, versions, write_json

    rng = np.random.default_rng(0)
    real = make_real_data(rng.random((60000, 28, 28, 1), np.float32), np.repeat(np.arange(10), 6000), 10)
    rows = []
    for name in args.methods.split(","):
        inner = args.idc_inner_steps if name == "idc" else None
        overrides = {"inner_loop": inner} if inner is not None and inner != 100 else {}
        driver = Driver(make_method(name, method_config(name, dataset="mnist", ipc=args.ipc, **overrides)), [0])
        state = driver.init(real)
        t0 = time.perf_counter()
        state, _ = driver.step(state, 0, real)
        jax.block_until_ready(state)
        first = time.perf_counter() - t0
        times = []
        for i in range(1, args.iterations + 1):
            t0 = time.perf_counter()
            state, _ = driver.step(state, i, real)
            jax.block_until_ready(state)
            times.append(time.perf_counter() - t0)
        scale = 100 / inner if overrides else 1.0
        row = {"method": name, "ipc": args.ipc, "first_iteration_s": first,
               "iteration_s": statistics.median(times) * scale, "iteration_s_all": times,
               "full_protocol_iterations": FULL_ITERATIONS[name],
               "full_protocol_hours": statistics.median(times) * scale * FULL_ITERATIONS[name] / 3600,
               "policy": driver.policy.to_dict()}
        if overrides:
            row.update(timed_inner_steps=inner, iteration_s_is_estimate=True,
                       estimate_rule=f"median time of an iteration of {inner} inner steps x 100 / {inner}")
        print(f"{name} ipc {args.ipc}: {row['iteration_s']:.1f} s per outer iteration"
              + (f" (estimated from {inner} inner steps: {statistics.median(times):.1f} s)" if overrides else "")
              + f" (first, compiling: {first:.1f} s); full protocol {row['full_protocol_hours']:.1f} h", flush=True)
        rows.append(row)
    out = Path(args.out or f"results/bench/idc_{jax.default_backend()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"benchmark": "seconds per outer iteration, IDC beside DC, MNIST shapes",
                     "command": "python " + " ".join(sys.argv), "rows": rows, "versions": versions(),
                     "device": device_info()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
