"""Benchmark: the cost of privacy in PSG, one private matching step against the non-private one, same run.

    python scripts/bench_psg.py [--ipcs 1,10] [--repeats 5] [--out results/bench/psg_<backend>.json]

One matching step is what PSG repeats iterations x outer_loop x batch_loop times: a Poisson batch of real MNIST-sized
images (expected 256 of 60,000, at most the maximum batch the full protocol's accounting picks), its gradient, the
whole synthetic set's gradient differentiated through, the distance and one image update. Private: per-example
gradients, clipping, noise (the noise multiplier calibrated for the full protocol at epsilon 10, delta 1e-5);
non-private (epsilon = inf): the batch's mean gradient. Both jitted on the DC ConvNet (width 128, depth 3, instance
norm) with the same maximum batch; each is compiled first (timed apart), then timed `--repeats` times (the median is
reported). The private step is also timed with the per-example kernel 'xla' beside the policy's choice, which is the
reason that policy field exists. The pixels are random (timing does not depend on them); the shapes are MNIST's.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ipcs", default="1,10")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from jaxdistill import cpu_tuning
    cpu_tuning.apply(reexec=True)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxdistill import policy
    from jaxdistill.data.arrays import make_real_data
    from jaxdistill.methods import gradient_matching as gm
    from jaxdistill.methods import method_config
    from jaxdistill.methods.base import RunPlan
    from jaxdistill.methods.psg import accounting_for, mixed_matching
    from jaxdistill.records import device_info, versions, write_json

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6000).astype(np.int32)
    real = make_real_data(rng.standard_normal((60000, 28, 28, 1), np.float32), labels, 10)
    rows = []
    for ipc in [int(i) for i in args.ipcs.split(",")]:
        private_cfg = method_config("psg", ipc=ipc, epsilon=10.0)
        acct = accounting_for(private_cfg, RunPlan.of("mnist", real, 1000))
        net = private_cfg.model.build(10)
        syn = jax.random.normal(jax.random.PRNGKey(1), (10 * ipc, 28, 28, 1))
        syn_labels = jnp.repeat(jnp.arange(10, dtype=jnp.int32), ipc)
        params = net.init(jax.random.PRNGKey(2), syn[:1], train=True)["params"]
        opt = optax.sgd(0.1, momentum=0.5)

        def timed(name: str, cfg, **use) -> dict:
            with policy.use(**use):
                matching = mixed_matching(real, syn_labels, cfg, acct.max_batch_size,
                                          acct.noise_multiplier if cfg.private else 0.0,
                                          lambda key, images, siamese: images)
                step = jax.jit(lambda images, state, key: gm.match(matching, images, state, opt, net, params, {},
                                                                   key, policy.current().class_loop))
                t0 = time.perf_counter()
                compiled = step.lower(syn, opt.init(syn), jax.random.PRNGKey(0)).compile()
                compile_s = time.perf_counter() - t0
            times = []
            for r in range(args.repeats + 1):  # the first call warms up
                t0 = time.perf_counter()
                jax.block_until_ready(compiled(syn, opt.init(syn), jax.random.PRNGKey(r)))
                times.append(time.perf_counter() - t0)
            row = {"ipc": ipc, "step": name, "compile_s": compile_s, "step_s": statistics.median(times[1:]),
                   "step_s_all": times[1:], "policy": {**policy.current().to_dict(), **use}}
            print(f"ipc {ipc} {name}: {row['step_s']:.3f} s per matching step (compile {compile_s:.1f} s)",
                  flush=True)
            return row

        private = timed("private", private_cfg)
        plain = timed("non-private", method_config("psg", ipc=ipc, epsilon=math.inf))
        xla = timed("private, per-example kernel xla", private_cfg, per_example_conv_impl="xla")
        ratio = private["step_s"] / plain["step_s"]
        print(f"ipc {ipc}: privacy costs x{ratio:.2f} per matching step", flush=True)
        rows += [private, plain, xla, {"ipc": ipc, "private_over_non_private": ratio,
                                       "max_batch_size": acct.max_batch_size,
                                       "noise_multiplier": acct.noise_multiplier,
                                       "xla_per_example_over_policy": xla["step_s"] / private["step_s"]}]
    out = Path(args.out or f"results/bench/psg_{jax.default_backend()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"benchmark": "PSG matching step, private vs non-private, MNIST shapes, DC ConvNet",
                     "command": "python " + " ".join(sys.argv), "rows": rows, "versions": versions(),
                     "device": device_info()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
