"""Where the time of one ConvNet gradient step goes on this backend: XLA ops ranked by their time.

    python scripts/profile_convnet_step.py [--batch 100] [--conv-impl auto] [--top 25]

The step is the gradient of the cross-entropy of `--batch` MNIST-shaped images (28 x 28 x 1) with respect to the
default ConvNet's parameters: the SGD step DC's inner loop takes on the synthetic set (batch 100 at ipc 10) and,
with batch 128, one chunk of a real-data gradient. It is compiled, timed (median of `--repeats` calls), then traced
with jax.profiler over three calls; each op's time is its mean per call. Op names are the compiled program's (its
HLO is written next to the trace with `--hlo`), so a fusion can be looked up to see what it computes.
"""
from __future__ import annotations

import argparse
import collections
import glob
import re
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--conv-impl", default="auto")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--group", action="store_true", help="sum ops that differ only in their numeric suffix")
    p.add_argument("--hlo", default=None, help="write the compiled HLO text here")
    args = p.parse_args()

    from jaxdistill import cpu_tuning
    print(cpu_tuning.describe(cpu_tuning.apply()), flush=True)  # the XLA:CPU flags the command line runs with
    import jax
    import jax.numpy as jnp
    from jax._src.lib import _profile_data

    from jaxdistill.models.convnet import ConvNet
    from jaxdistill.train import apply_model, cross_entropy

    net = ConvNet(10, conv_impl=args.conv_impl)
    x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, 28, 28, 1))
    params = net.init(jax.random.PRNGKey(1), x[:2])["params"]
    labels = jnp.arange(args.batch) % 10

    @jax.jit
    def grad(params, x):
        return jax.grad(lambda p: cross_entropy(apply_model(net, p, {}, x, False)[0], labels))(params)

    jax.block_until_ready(grad(params, x))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(grad(params, x))
        times.append(time.perf_counter() - start)
    print(f"{jax.default_backend()}, batch {args.batch}, conv {args.conv_impl}: "
          f"{1e3 * sorted(times)[len(times) // 2]:.1f} ms per step (median of {args.repeats})")
    if args.hlo:
        Path(args.hlo).write_text(grad.lower(params, x).compile().as_text())

    with tempfile.TemporaryDirectory() as trace:
        jax.profiler.start_trace(trace)
        for _ in range(3):
            jax.block_until_ready(grad(params, x))
        jax.profiler.stop_trace()
        files = glob.glob(f"{trace}/**/*.xplane.pb", recursive=True)
        if not files:
            sys.exit("the profiler wrote no trace")
        profile = _profile_data.ProfileData.from_file(files[0])
        per_op = collections.Counter()
        for plane in profile.planes:
            for line in plane.lines:
                if line.name == "python":
                    continue
                for event in line.events:
                    if "Execute" in event.name:
                        continue
                    name = re.sub(r"\.\d+$", "", event.name) if args.group else event.name
                    per_op[name] += event.duration_ns
    total = sum(per_op.values()) / 3e6
    for name, ns in per_op.most_common(args.top):
        print(f"{ns / 3e6:9.2f} ms  {100 * ns / 3e6 / total:5.1f}%  {name}")
    print(f"{total:9.2f} ms  in all ops")


if __name__ == "__main__":
    main()
