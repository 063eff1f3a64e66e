"""Benchmark: seconds per DC outer iteration on MNIST, jaxdistill against the reference PyTorch code, same machine.

    python scripts/bench_dc.py --reference-dir DIR --reference-python PY --reference-data DIR \
        [--ipcs 1,10] [--iterations 1:4,10:2] [--out results/bench/dc_<backend>.json]
    python scripts/bench_dc.py --dataset mhist --data-dir MHIST --ipcs 10 --iterations 10:2   # MHIST, 64 px

jaxdistill: every configuration runs in a fresh process (so its peak RSS is its own), compiles the DC step first
(timed separately), then times steady-state iterations one by one. Its FLOP count is XLA's cost analysis of the
compiled step; the achieved rate is set beside a float32 4096^3 matmul timed in the same run. `--conv-impls auto,fastgrad`
times several convolution kernels in one run (Winograd's program does fewer FLOPs than the direct convolution the
reference computes, so each rate is also given on the direct-convolution count).

Reference: the unmodified `main.py` of VICO-UoE/DatasetCondensation (a checkout outside this repository, run with
its own Python that has torch, torchvision and scipy), `--method DC --dataset MNIST --model ConvNet --num_eval 0`,
so no evaluation networks are trained. Its `for it in range(Iteration + 1)` loop runs Iteration + 1 outer iterations
after a setup phase (data loading, tensor building), so it is run twice, with N and N + k iterations, and one
iteration takes (T(N + k) - T(N)) / k: setup cancels. Its peak RSS is the larger run's. `--reference-data` is a
folder holding MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's layout, uncompressed).

The script opts in to this package's CPU settings first (`cpu_tuning.apply(reexec=True)`: the XLA:CPU flag, and a
restart with the allocator setting GLIBC_TUNABLES; JAXDISTILL_CPU_TUNING=0 times without them). Both sides get that
same environment, including the allocator setting, and use all cores (2 threads on the machine it was written on).
With `--reference-plain 1` the reference also runs without GLIBC_TUNABLES at ipc 1, as a user would run it, and the
record gives the speed-up against that too. The record states what each side ran with (`settings`: jaxdistill's
`cpu_tuning.applied_settings()`, each reference run's GLIBC_TUNABLES; every jaxdistill row also holds its worker's
own `cpu_tuning`) and the host (`host`: CPU model from /proc/cpuinfo, kernel release).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxdistill import cpu_tuning


def reference_over_rounds(refs: list[dict]) -> dict:
    """One reference configuration timed in several rounds: the median of the resolved rounds, the largest peak."""
    import numpy as np

    resolved = [r["iteration_s"] for r in refs if r["iteration_s"]]
    return {"command": refs[0]["command"], "glibc_tunables": refs[0]["glibc_tunables"],
            "iteration_s_rounds": [r["iteration_s"] for r in refs],
            "iteration_s": float(np.median(resolved)) if resolved else None,
            "peak_rss_gib": max(r["peak_rss_gib"] for r in refs)}


def child_rusage(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float, str]:
    """Run cmd; (wall seconds, peak RSS in GiB of that process, stdout)."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, text  # ru_maxrss is in KiB on Linux


def iteration_flops(m, state, inputs) -> float:
    """XLA's cost analysis of one iteration, begin + length x body + end of the method's loop (cost analysis counts
    a loop body once, so the loop is counted here)."""
    import jax

    def cost(f, *args) -> float:
        lowered = jax.jit(f).lower(*args)
        analysis = lowered.cost_analysis()  # None on GPU before compilation: ask the compiled program there
        if analysis is None:
            analysis = lowered.compile().cost_analysis()
        if isinstance(analysis, (list, tuple)):
            analysis = analysis[0] if analysis else {}
        return float((analysis or {}).get("flops", float("nan")))

    carry = jax.eval_shape(m.loop.begin, state, jax.random.PRNGKey(1), inputs)
    body = m.loop.length * cost(m.loop.body, carry, 0, inputs) if m.loop.length else 0.0
    return cost(m.loop.begin, state, jax.random.PRNGKey(1), inputs) + body + cost(m.loop.end, carry, inputs)


def worker(ipc: int, iterations: int, data_dir: str | None, class_loop: str = "unroll", conv_impl: str = "auto",
           dataset: str = "mnist") -> None:
    """One jaxdistill configuration in this process (the policy's defaults with this class loop and conv kernel);
    prints one JSON line."""
    import jax
    import numpy as np

    from jaxdistill import policy
    from jaxdistill.driver import compiled_step
    from jaxdistill.methods import make_method
    from jaxdistill.methods.base import StepInputs
    from jaxdistill.runner import distill_config, load_real

    t0 = time.perf_counter()
    data = load_real(dataset, data_dir, progress=False)
    setup = time.perf_counter() - t0
    inputs = StepInputs(data.train)
    # the DC config a `jaxdistill distill` run on this dataset uses (MHIST at 64 px: the depth-4 ConvNet)
    m_config = distill_config("dc", dataset, ipc, [0])[0]
    m = make_method("dc", m_config)
    run_policy = policy.current().replace(class_loop=class_loop, conv_impl=conv_impl)
    with policy.use(run_policy):
        state = jax.jit(m.init)(jax.random.PRNGKey(0), inputs)
        t0 = time.perf_counter()
        compiled = compiled_step(m, state, jax.random.PRNGKey(1), inputs)  # what `jaxdistill distill` runs
        compile_s = time.perf_counter() - t0
    # Cost analysis counts a scan's body once: the FLOPs come from the unrolled program (the same computation).
    with policy.use(run_policy, class_loop="unroll"):
        flops = iteration_flops(m, state, inputs)
    # The same iteration with direct convolutions (the reference's algorithm): Winograd's programs do fewer FLOPs,
    # so their rate is also given on this count, comparable across kernels and with the reference.
    direct = flops
    if jax.default_backend() == "cpu" and conv_impl in ("auto", "winograd"):
        with policy.use(run_policy, class_loop="unroll", conv_impl="fastgrad"):
            direct = iteration_flops(m, state, inputs)
    times = []
    for i in range(iterations + 1):  # the first run also pays one-time allocation; not counted
        t0 = time.perf_counter()
        state, metrics = compiled(state, jax.random.PRNGKey(2 + i), inputs)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    steady = times[1:]
    mm = jax.jit(lambda a, b: a @ b)
    a = jax.random.normal(jax.random.PRNGKey(0), (4096, 4096))
    jax.block_until_ready(mm(a, a))
    t0 = time.perf_counter()
    jax.block_until_ready(mm(a, a))
    matmul_rate = 2 * 4096**3 / (time.perf_counter() - t0)
    stats = jax.devices()[0].memory_stats() or {}  # None on CPU; the accelerator's allocator peak elsewhere
    device_peak = stats["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in stats else None
    print(json.dumps({"backend": jax.default_backend(), "device_peak_gib": device_peak, "ipc": ipc, "setup_s": setup,
                      "compile_s": compile_s, "first_iteration_s": times[0],
                      "iteration_s": steady, "iteration_s_median": float(np.median(steady)),
                      "conv_impl": conv_impl, "policy": run_policy.to_dict(), "flops_per_iteration": flops,
                      "achieved_flop_rate": flops / float(np.median(steady)), "direct_conv_flops_per_iteration": direct,
                      "direct_conv_flop_rate": direct / float(np.median(steady)),
                      "matmul_flop_rate_4096": matmul_rate, "match_loss": float(metrics["match_loss"]),
                      "cpu_tuning": cpu_tuning.applied_settings(), "dataset": dataset,
                      "image_shape": list(data.spec.image_shape), "model": str(m_config.model),
                      "stand_in": bool(data.stand_in)}))


def reference_seconds(args, ipc: int, n: int, k: int, env: dict[str, str]) -> dict:
    rows = []
    for iterations in (n, n + k):
        with tempfile.TemporaryDirectory() as save:
            cmd = [args.reference_python, "main.py", "--method", "DC", "--dataset", "MNIST", "--model", "ConvNet",
                   "--ipc", str(ipc), "--num_exp", "1", "--num_eval", "0", "--Iteration", str(iterations),
                   "--data_path", args.reference_data, "--save_path", save]
            wall, rss, _ = child_rusage(cmd, env, cwd=args.reference_dir)
            rows.append({"iterations_arg": iterations, "wall_s": wall, "peak_rss_gib": rss})
            print(f"  reference ipc {ipc} --Iteration {iterations}: {wall:.1f} s, peak {rss:.2f} GiB", flush=True)
    per_iteration = (rows[1]["wall_s"] - rows[0]["wall_s"]) / k
    out = {"runs": rows, "iteration_s": per_iteration, "peak_rss_gib": max(r["peak_rss_gib"] for r in rows),
           "glibc_tunables": env.get("GLIBC_TUNABLES"),  # the allocator setting this reference run had
           "command": " ".join(cmd[:-6] + ["--Iteration", "N"] + cmd[-4:])}
    if per_iteration <= 0:  # the setup's run-to-run variation exceeded k iterations: no measurement
        out.update(iteration_s=None, note=f"{k} iterations took less than the setup's run-to-run variation; "
                                          f"rerun with a larger k in --reference-iterations")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ipcs", default="1,10")
    p.add_argument("--iterations", default="1:4,10:2", help="timed steady-state iterations per ipc (ipc:count)")
    p.add_argument("--dataset", default="mnist", help="mnist, or mhist (with --data-dir naming its folder; no "
                                                       "reference timing: the reference code has no MHIST)")
    p.add_argument("--data-dir", default=None, help="the dataset for jaxdistill (default: $JAXDISTILL_DATA or cache)")
    p.add_argument("--reference-dir", default=None, help="checkout of VICO-UoE/DatasetCondensation (skip if unset)")
    p.add_argument("--reference-python", default=sys.executable)
    p.add_argument("--reference-data", default=None)
    p.add_argument("--reference-iterations", default="1:0+3,10:0+1",
                   help="per ipc, N+k: the reference runs --Iteration N and N+k")
    p.add_argument("--reference-plain", default="", help="ipcs (e.g. 1) at which the reference also runs without "
                                                       "GLIBC_TUNABLES, as it runs out of the box")
    p.add_argument("--class-loop", default="unroll", choices=("unroll", "scan"),
                   help="the policy's class_loop for jaxdistill (the reference always loops in Python)")
    p.add_argument("--conv-impls", default="auto", help="comma-separated policy conv_impl values, each timed in "
                                                       "this run (the first is the row's `jaxdistill`)")
    p.add_argument("--baseline-tree", default=None,
                   help="a checkout of another jaxdistill commit (e.g. `git worktree add /tmp/old COMMIT`): its own "
                        "bench_dc.py worker is timed in every round beside this one (first conv kernel), on the same "
                        "host and settings, and the record gives this commit's time over the baseline's")
    p.add_argument("--rounds", type=int, default=1, help="time every configuration this many times, in turn; "
                                                          "each figure is the median over the rounds")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-iterations", type=int, default=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        worker(args.worker, args.worker_iterations, args.data_dir, args.class_loop, args.conv_impls, args.dataset)
        return
    settings = cpu_tuning.apply(reexec=True)  # restarts once, then goes on from here; the workers inherit it
    print(cpu_tuning.describe(settings), flush=True)

    import platform

    import jax
    import numpy as np

    from jaxdistill.records import cpu_model, device_info, versions, write_json

    ipcs = [int(s) for s in args.ipcs.split(",")]
    counts = dict(tuple(int(x) for x in s.split(":")) for s in args.iterations.split(","))
    ref_counts = {int(k): tuple(int(x) for x in v.split("+"))
                  for k, v in (s.split(":") for s in args.reference_iterations.split(","))}
    env = dict(os.environ)
    def one_round(ipc: int, baseline_first: bool = False) -> dict:
        row = {"ipc": ipc}

        def time_ours():
            for impl in args.conv_impls.split(","):
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(ipc), "--worker-iterations",
                       str(counts.get(ipc, 2)), "--class-loop", args.class_loop, "--conv-impls", impl,
                       "--dataset", args.dataset] + (["--data-dir", args.data_dir] if args.data_dir else [])
                _, rss, out = child_rusage(cmd, env)
                ours = json.loads(out.strip().splitlines()[-1])
                ours["peak_rss_gib"] = rss
                ours["projected_1000_iterations_min"] = (ours["compile_s"] + 1000 * ours["iteration_s_median"]) / 60
                row.setdefault("jaxdistill_by_conv_impl", {})[impl] = ours
                print(f"jaxdistill ipc {ipc}, conv {impl}: {ours['iteration_s_median']:.2f} s/iteration "
                      f"(compile {ours['compile_s']:.1f} s), peak {rss:.2f} GiB, "
                      f"{ours['achieved_flop_rate'] / 1e9:.0f} GFLOP/s ({ours['direct_conv_flop_rate'] / 1e9:.0f} "
                      f"direct-conv equivalent) of {ours['matmul_flop_rate_4096'] / 1e9:.0f} (matmul)"
                      + (f", device peak {ours['device_peak_gib']:.2f} GiB" if ours["device_peak_gib"] else "")
                      + f"; 1000 iterations ~{ours['projected_1000_iterations_min']:.1f} min", flush=True)

        def time_baseline():
            if args.baseline_tree:
                tree = str(Path(args.baseline_tree).resolve())
                cmd = [sys.executable, str(Path(tree) / "scripts" / "bench_dc.py"), "--worker", str(ipc),
                       "--worker-iterations", str(counts.get(ipc, 2)), "--class-loop", args.class_loop,
                       "--conv-impls", args.conv_impls.split(",")[0]] + (["--data-dir", args.data_dir] if args.data_dir
                                                                         else [])
                _, rss, out = child_rusage(cmd, {**env, "PYTHONPATH": tree}, cwd=tree)
                base = json.loads(out.strip().splitlines()[-1])
                base.update(peak_rss_gib=rss, tree=tree, commit=subprocess.run(
                    ["git", "-C", tree, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip())
                row["baseline"] = base
                print(f"baseline ({base['commit'][:7]}) ipc {ipc}: {base['iteration_s_median']:.2f} s/iteration "
                      f"(compile {base['compile_s']:.1f} s), peak {rss:.2f} GiB", flush=True)

        # The host drifts within a round too: the baseline goes first in every other round, so order cancels.
        for timed in ((time_baseline, time_ours) if baseline_first else (time_ours, time_baseline)):
            timed()
        if args.reference_dir:
            n, k = ref_counts.get(ipc, (0, 1))
            row["reference"] = reference_seconds(args, ipc, n, k, env)
            if str(ipc) in args.reference_plain.split(","):
                plain = {key: v for key, v in env.items() if key != "GLIBC_TUNABLES"}
                row["reference_without_glibc_tunables"] = reference_seconds(args, ipc, n, k, plain)
        return row

    rows = []
    for ipc in ipcs:
        rounds = [one_round(ipc, baseline_first=bool(r % 2)) for r in range(args.rounds)]
        # The machine's speed drifts between runs by more than the effects measured: with several rounds (each
        # timing every configuration once, in turn) a configuration's figure is its median over the rounds.
        row = {"ipc": ipc, "rounds": rounds, "jaxdistill_by_conv_impl": {}}
        for impl in args.conv_impls.split(","):
            per_round = [r["jaxdistill_by_conv_impl"][impl] for r in rounds]
            summary = dict(per_round[0], iteration_s_rounds=[o["iteration_s_median"] for o in per_round],
                           iteration_s_median=float(np.median([o["iteration_s_median"] for o in per_round])),
                           peak_rss_gib=max(o["peak_rss_gib"] for o in per_round))
            summary["achieved_flop_rate"] = summary["flops_per_iteration"] / summary["iteration_s_median"]
            summary["direct_conv_flop_rate"] = summary["direct_conv_flops_per_iteration"] / summary["iteration_s_median"]
            row["jaxdistill_by_conv_impl"][impl] = summary
        row["jaxdistill"] = ours = row["jaxdistill_by_conv_impl"][args.conv_impls.split(",")[0]]
        if args.baseline_tree:
            # Per round, this commit's time over the baseline's measured right beside it; the median of those ratios
            # (the host's drift between rounds cancels within a round).
            ratios = [r["jaxdistill_by_conv_impl"][args.conv_impls.split(",")[0]]["iteration_s_median"]
                      / r["baseline"]["iteration_s_median"] for r in rounds]
            base_rounds = [r["baseline"]["iteration_s_median"] for r in rounds]
            row["baseline"] = dict(rounds[0]["baseline"], iteration_s_rounds=base_rounds,
                                   iteration_s_median=float(np.median(base_rounds)),
                                   peak_rss_gib=max(r["baseline"]["peak_rss_gib"] for r in rounds))
            row["time_over_baseline_rounds"] = ratios
            row["time_over_baseline"] = float(np.median(ratios))
            print(f"ipc {ipc}: this commit's time / baseline's = {row['time_over_baseline']:.3f} (median of "
                  f"{len(ratios)} rounds: {', '.join(f'{x:.3f}' for x in ratios)})", flush=True)
        if args.reference_dir:
            row["reference"] = reference_over_rounds([r["reference"] for r in rounds])
            if "reference_without_glibc_tunables" in rounds[0]:
                plain = row["reference_without_glibc_tunables"] = reference_over_rounds(
                    [r["reference_without_glibc_tunables"] for r in rounds])
                plain_speedup = plain["iteration_s"] / ours["iteration_s_median"] if plain["iteration_s"] else None
                row["speedup_vs_reference_without_glibc_tunables"] = plain_speedup
                if plain_speedup:
                    print(f"ipc {ipc}: reference without GLIBC_TUNABLES {plain['iteration_s']:.2f} s/iteration, "
                          f"peak {plain['peak_rss_gib']:.2f} GiB ({plain_speedup:.2f}x)", flush=True)
            ref_s = row["reference"]["iteration_s"]
            row["speedup"] = ref_s / ours["iteration_s_median"] if ref_s else None
            for impl, o in row["jaxdistill_by_conv_impl"].items():
                o["speedup"] = ref_s / o["iteration_s_median"] if ref_s else None
            if ref_s:
                print(f"ipc {ipc} over {args.rounds} round(s): reference {ref_s:.2f} s/iteration, peak "
                      f"{row['reference']['peak_rss_gib']:.2f} GiB; jaxdistill " + ", ".join(
                          f"{impl} {o['iteration_s_median']:.2f} s ({o['speedup']:.2f}x), peak {o['peak_rss_gib']:.2f} GiB"
                          for impl, o in row["jaxdistill_by_conv_impl"].items()), flush=True)
            else:
                print(f"reference ipc {ipc}: not resolved ({rounds[0]['reference'].get('note')})", flush=True)
        rows.append(row)
    ref_versions = None
    if args.reference_dir:
        ref_versions = subprocess.run([args.reference_python, "-c", "import torch, torchvision, scipy; "
                                       "print(torch.__version__, torchvision.__version__, scipy.__version__, "
                                       "torch.get_num_threads())"], capture_output=True, text=True).stdout.strip()
    ran_with = {"jaxdistill": settings}  # what each side ran with
    if args.reference_dir:
        ran_with["reference"] = {"glibc_tunables": env.get("GLIBC_TUNABLES")}
        if args.reference_plain:
            ran_with["reference_without_glibc_tunables"] = {"glibc_tunables": None}
    out = Path(args.out or f"results/bench/dc_{jax.default_backend()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"benchmark": f"DC outer iteration, {args.dataset} ConvNet",
                     "command": " ".join(["python"] + sys.argv),
                     "rows": rows, "versions": versions(), "device": device_info(),
                     "glibc_tunables": env.get("GLIBC_TUNABLES"), "xla_flags": env.get("XLA_FLAGS"),
                     "settings": ran_with, "host": {"cpu_model": cpu_model(), "kernel": platform.release(),
                                                    "cpu_count": os.cpu_count(), "node": platform.node()},
                     "reference_versions (torch torchvision scipy threads)": ref_versions})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
