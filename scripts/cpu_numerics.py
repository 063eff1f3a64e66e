"""CPU numerics: what makes two CPU machines train the same network from the same key to different accuracies.

    python scripts/cpu_numerics.py               # the probe: ~15 min on 2 cores
    python scripts/cpu_numerics.py --network0    # and 4 AlexNet networks on MTT's ipc-10 sets: ~45 min

The probe trains ConvNet and AlexNet for 100 SGD steps (64 random MNIST-shaped images, one key), each in a fresh
process per setting: this machine's defaults (twice: run to run), XLA's generated code held to AVX2 and to AVX
(`--xla_cpu_max_isa`), the oneDNN kernels that XLA calls for convolutions and matrix products held to AVX2 and to
SSE4.1 (`ONEDNN_MAX_CPU_ISA`, which oneDNN reads when it builds its kernels, at run time), and one core instead of
all (the process's affinity). Each gives the SHA-256 of the final parameters: equal digests are the same bits.

`--network0` trains network 0 of the 12-network AlexNet records of MTT's two bounded ipc-10 sets
(results/cross_architecture_mtt_mnist_ipc10_{clip,within_real}_alexnet12_reduced.json) again from the committed
set, with this machine's defaults and with oneDNN held to AVX2, and puts the accuracies beside the two the records
hold: network 0 of the 5-network record (the machine that made it) and the check of the machine that added networks
5 to 11. The record (results/bench/cpu_numerics.json, or --out) names this machine's CPU (`records.cpu_id`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE_SETTINGS = {  # name -> (environment variables, one core)
    "default": ({}, False),
    "default_again": ({}, False),
    "xla_avx2": ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}, False),
    "xla_avx": ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX"}, False),
    "onednn_avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    "onednn_sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, False),
    "one_core": ({}, True),
}
PROBE_MODELS = ("convnet", "alexnet")
NETWORK0_SETTINGS = ("default", "onednn_avx2")
BOUNDS = ("clip", "within_real")


def record_path(bound: str, networks: int) -> Path:
    variant = f"ipc10_{bound}_alexnet12_reduced" if networks == 12 else f"ipc10_{bound}_reduced"
    return ROOT / "results" / f"cross_architecture_mtt_mnist_{variant}.json"


# ---- children: one setting each, in a fresh process -------------------------------------------------------------
def probe(model_name: str, steps: int = 100) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from jaxdistill.models import make_model, parse_model
    name, kwargs = parse_model(model_name)
    model = make_model(name, 10, **dict(kwargs))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 28, 28, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 64), jnp.int32)
    params = model.init(jax.random.key(0), x[:1])
    opt = optax.sgd(0.01, momentum=0.9)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    for _ in range(steps):
        params, state, loss = step(params, state)
    leaves = np.concatenate([np.asarray(leaf, np.float32).ravel() for leaf in jax.tree_util.tree_leaves(params)])
    return {"loss": float(loss), "sha256": hashlib.sha256(leaves.tobytes()).hexdigest()}


def network0(bound: str) -> dict[str, Any]:
    """Network 0 of the record's AlexNet evaluation, trained again here from the committed set: the experiment's own
    check of a record's first networks (`checked_first_networks`, against the five-network record it extends)."""
    from jaxdistill.experiment import Context, find_experiment, load_experiment, prepare_process
    from jaxdistill.runner import load_real
    prepare_process()
    xa = load_experiment(find_experiment(ROOT / "experiments" / "cross_architecture.py"))
    record = json.loads(record_path(bound, 12).read_text())
    base = json.loads(record_path(bound, 5).read_text())["result"]["architectures"]["AlexNet"]
    variant = record["variant"]
    data = load_real("mnist", None, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(experiment="cross_architecture", variant=variant, config=xa.get_config(variant, method="mtt"),
                      name="network0", workdir=Path(tmp), out=Path(tmp) / "record.json", root=ROOT, progress=False)
        _, check = xa.checked_first_networks(ctx, "AlexNet", xa._architecture_model("AlexNet", variant), data,
                                             [ROOT / record["config"]["sets"][0]], base)
    return {"accuracy": check["network_0_here"][0], "seconds": check["seconds"]}


def run_child(args: list[str], env: dict[str, str], one_core: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *args] + (["--one-core"] if one_core else [])
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ---- the parent ----------------------------------------------------------------------------------------------------
def recorded_network0(bound: str) -> dict[str, float]:
    base = json.loads(record_path(bound, 5).read_text())["result"]["architectures"]["AlexNet"]
    grown = json.loads(record_path(bound, 12).read_text())["result"]["architectures"]["AlexNet"]
    return {"five_network_record": base["accuracies"][0],
            "twelve_network_record_check": grown["first_networks"]["check"]["network_0_here"][0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network0", action="store_true", help="also train AlexNet's network 0 again (~7 min each)")
    p.add_argument("--out", default=str(ROOT / "results" / "bench" / "cpu_numerics.json"))
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--one-core", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if args.one_core:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        kind, what = args.child
        print("RESULT " + json.dumps(probe(what) if kind == "probe" else network0(what)), flush=True)
        return

    from jaxdistill.records import device_info, versions, write_json
    start = time.time()
    no_cache = {"JAXDISTILL_COMPILATION_CACHE": "0"}  # every probe compiles for its own setting
    probes = {}
    for model in PROBE_MODELS:
        probes[model] = {}
        for setting, (env, one_core) in PROBE_SETTINGS.items():
            probes[model][setting] = run_child(["probe", model], {**no_cache, **env}, one_core)
            same = probes[model][setting]["sha256"] == probes[model]["default"]["sha256"]
            print(f"probe {model:8s} {setting:14s} {probes[model][setting]['sha256'][:16]} "
                  f"{'same bits as default' if same else 'OTHER BITS'}", flush=True)
    result: dict[str, Any] = {"probe": {"steps": 100, "images": 64, "settings": {
        name: {"env": env, "one_core": one_core} for name, (env, one_core) in PROBE_SETTINGS.items()},
        "models": probes}}
    if args.network0:
        nets: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as cache:
            for bound in BOUNDS:
                nets[bound] = {"recorded": recorded_network0(bound), "here": {}}
                for setting in NETWORK0_SETTINGS:
                    env = dict(PROBE_SETTINGS[setting][0])
                    if env:  # compiled programs of its own, in case a kernel choice is made when compiling
                        env["JAXDISTILL_COMPILATION_CACHE"] = str(Path(cache) / setting)
                    nets[bound]["here"][setting] = run_child(["network0", bound], env, False)
                    print(f"network 0 {bound:11s} {setting:12s} {nets[bound]['here'][setting]['accuracy']:.4f} "
                          f"(recorded: {nets[bound]['recorded']})", flush=True)
        result["network0"] = nets
    write_json(Path(args.out), {"benchmark": "CPU numerics", "command": " ".join(["python"] + sys.argv),
                                "result": result, "versions": versions(), "device": device_info(),
                                "wall_time_s": time.time() - start})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
