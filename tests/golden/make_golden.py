"""Generate the golden values (golden.npz + golden.json) that the redesigned code is tested against.

This script is written against the OLD API: it was run at commit 3b04c74 (the last commit before the spine
redesign), with jax/jaxlib 0.10.2 on CPU, normal compilation (jax_disable_most_optimizations NOT set). Rerun it with:

    git worktree add /tmp/old 3b04c74 && cd /tmp/old && \
        JAXDISTILL_DATA=<mnist parent folder> PYTHONPATH=/tmp/old python <path>/make_golden.py --out <path>/tests/golden

(<mnist parent folder> holds mnist/ with the four IDX .gz files; <path> is a checkout of the new code; the
original run used `cd /work/wt_old && PYTHONPATH=/work/wt_old:/work/main JAXDISTILL_DATA=/work/shared/data
python /work/main/tests/golden/make_golden.py --out /work/main/tests/golden`). The script refuses to run unless the
imported `jaxdistill` is a checkout of 3b04c74 (--any-commit overrides, for experiments only).

Every case is a call of the old `jaxdistill.runner.distill` (so the runner's key derivation -- seed_keys, fold_in of
the iteration -- is covered), with progress=False, parallel='sequential', log_every=1, checkpoint_every=10**6, a
fresh temporary workdir, and `data=` a LoadedData (nothing is downloaded). golden.json["cases"][name]["params"] holds
the exact keyword arguments.

(a) tiny runs. data = old tests.helpers.tiny_loaded(num_per_class=4, num_classes=3): 8x8x1 images, 12 train and 12
    test images (not normalised: mean 0, std 1). dataset name "mnist" (the mnist dataset defaults of each method
    config apply), ipc=2, seeds=[0, 1], iterations=2, method_overrides = the config class's TEST_OVERRIDES (+
    buffer_dir for mtt/datm). Cases: dc (class_loop='scan', from TEST_OVERRIDES), dc_unroll (the same with
    class_loop='unroll'), dsa, mtt, datm. Per case: `<case>/init/images|labels[|lr]` = synthetic.npz of the same
    call with iterations=0 (the set right after init), `<case>/images|labels[|lr]` = synthetic.npz after 2
    iterations (images (S=2, N=6, 8, 8, 1)), and the metrics.jsonl lines in golden.json.
    The tiny input arrays are stored too, so a new test needs no helpers: `tiny/train_images|train_labels`
    (tiny_images(4, 3, 8), before make_real_data's stable sort by label) and `tiny/test_images|test_labels`
    (tiny_images(4, 3, 8, seed=1)).
    Expert buffer for mtt/datm, as old tests/methods/test_battery.py's `expert_buffer` fixture:
    ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=6, augment="none",
    parallel="vmap"); train_experts(buf, tiny train images, labels, "tiny", 3, [0, 1], cfg, progress=False).
    All its snapshots are stored as `experts/<seed>/<epoch>/<param path>` and golden.json["experts"]["sha256"] is
    the sha256 over the raw float32 bytes of every leaf (jax.tree.leaves order) of every snapshot, experts in
    ascending seed order, epochs 0..3 ascending, each loaded with the old ExpertBuffer.load. The window that
    mtt's iteration 0 of seed 0 used (host_batch(0, 0)) is stored as `mtt/window_s0_i0/start|target/<path>`.
(b) evaluation. old evaluate.evaluate_set(dc seed-0 final images, labels, test images, test labels, 3,
    EvalConfig(model="convnet", model_kwargs=(("depth", 2), ("width", 8)), num_models=2,
    train=TrainConfig(epochs=3, augment="crop_scale_rotate"), seed=0)) with the test split
    `eval/test_images|test_labels` = tiny_images(20, 3, 8, seed=1) (60 images). golden.json has the accuracies.
    Network 0 is also trained directly as evaluate_set does it (keys = split(PRNGKey(0), 2); Trainer(model,
    train_cfg, 6).run(keys[0:1], images, labels)): `eval/net0/params/<path>`, `eval/net0/batch_stats/<path>`
    (if any) and `eval/net0/logits` (predict_logits on the 60 test images).
(c) production DC step on real MNIST: distill("dc", "mnist", ipc=1, seeds=[0], iterations=1,
    data=load_real("mnist", $JAXDISTILL_DATA)) with NO method overrides (the production defaults: default conv
    implementation, real_chunks, class_loop='unroll'). `dc_mnist/init/*` (iterations=0) and `dc_mnist/*` (after one
    iteration), match_loss in golden.json. (c2) the same for "dsa" as `dsa_mnist/*` (unless --skip-dsa-mnist).

Keys of golden.npz are '/'-joined; parameter paths are the Flax dict keys joined by '/', e.g. 'Conv_0/kernel'.
golden.json also records versions, device, XLA_FLAGS, the source commit and the wall time of each case.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

OLD_COMMIT = "3b04c74"

TINY = dict(num_per_class=4, num_classes=3)
IPC, SEEDS, ITERATIONS = 2, [0, 1], 2
RUN_KW = dict(progress=False, parallel="sequential", checkpoint_every=10**6, log_every=1)
EXPERT_CFG = dict(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=6, augment="none",
                  parallel="vmap")
EXPERT_SEEDS = [0, 1]
TINY_CASES = ("dc", "dc_unroll", "dsa", "mtt", "datm")


def path_name(path) -> str:
    return "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)


def flat(tree) -> dict:
    import jax
    import numpy as np
    return {path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for golden.npz and golden.json")
    ap.add_argument("--cases", default="all", help="comma list of: tiny cases (dc,dc_unroll,dsa,mtt,datm), eval, "
                                                   "dc_mnist, dsa_mnist; default all")
    ap.add_argument("--skip-dsa-mnist", action="store_true")
    ap.add_argument("--any-commit", action="store_true", help="do not insist on a 3b04c74 checkout")
    args = ap.parse_args(argv)

    import jaxdistill  # before jax: sets XLA_FLAGS as the library does in production
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdistill.records import device_info, source_commit, versions
    print("jaxdistill imported from", jaxdistill.__file__, "commit", source_commit(), flush=True)
    commit = source_commit() or ""
    if not commit.startswith(OLD_COMMIT) and not args.any_commit:
        sys.exit(f"jaxdistill at {jaxdistill.__file__} is commit {commit!r}, not {OLD_COMMIT}: put a {OLD_COMMIT} "
                 f"checkout first on PYTHONPATH (see the docstring)")
    assert not jax.config.read("jax_disable_most_optimizations")

    from jaxdistill import runner
    from jaxdistill.evaluate import EvalConfig, evaluate_set
    from jaxdistill.experts import ExpertBuffer, ExpertConfig, train_experts
    from jaxdistill.methods import METHODS, make_method, method_config
    from jaxdistill.models import make_model
    from jaxdistill.train import Trainer, TrainConfig, predict_logits
    from tests import helpers
    print("tests.helpers from", helpers.__file__, flush=True)

    wanted = set(TINY_CASES) | {"eval", "dc_mnist", "dsa_mnist"} if args.cases == "all" else set(args.cases.split(","))
    if args.skip_dsa_mnist:
        wanted.discard("dsa_mnist")
    if "eval" in wanted:
        wanted.add("dc")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    record = {"generated_at_commit": commit, "old_commit": OLD_COMMIT, "versions": versions(),
              "device": device_info(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "jax_disable_most_optimizations": bool(jax.config.read("jax_disable_most_optimizations")),
              "command": " ".join(sys.argv), "cases": {}}
    tmp_root = Path(tempfile.mkdtemp(prefix="jaxdistill-golden-"))

    def read_synthetic(workdir: Path) -> dict:
        with np.load(workdir / runner.SYNTHETIC_FILE) as z:
            return {k: z[k] for k in z.files if k != "seeds"}

    def read_metrics(workdir: Path) -> list:
        p = workdir / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def run_case(name, method, dataset, ipc, seeds, iterations, overrides, data, params_extra=None):
        """distill at iterations=0 (init) and at `iterations`; store both synthetic sets and the metrics."""
        case = {"method": method, "dataset": dataset, "ipc": ipc, "seeds": seeds, "iterations": iterations,
                "method_overrides": overrides, **RUN_KW, **(params_extra or {})}
        t0 = time.time()
        for tag, its in (("init", 0), ("final", iterations)):
            wd = tmp_root / f"{name}_{tag}"
            rec = runner.distill(method, dataset, ipc, seeds, wd, iterations=its,
                                 method_overrides=dict(overrides) if overrides else None, data=data, **RUN_KW)
            prefix = f"{name}/init/" if tag == "init" else f"{name}/"
            for k, v in read_synthetic(wd).items():
                arrays[prefix + k] = v
            if tag == "final":
                case["metrics"] = read_metrics(wd)
                case["method_config"] = rec["config"]["method_config"]
                case["run_wall_time_s"] = rec["wall_time_s"]
        case["wall_time_s"] = time.time() - t0
        record["cases"][name] = jsonable(case)
        print(f"[{name}] {case['wall_time_s']:.1f}s metrics={case['metrics']}", flush=True)

    # ---- (a) tiny runs ----------------------------------------------------------------------------------------
    tiny = [c for c in TINY_CASES if c in wanted]
    if tiny:
        data = helpers.tiny_loaded(**TINY)
        train_x, train_y = helpers.tiny_images(TINY["num_per_class"], TINY["num_classes"], 8)
        test_x, test_y = helpers.tiny_images(4, TINY["num_classes"], 8, seed=1)
        assert np.array_equal(np.asarray(data.test_images), test_x) and np.array_equal(data.test_labels, test_y)
        real = helpers.tiny_real(**TINY)
        assert np.array_equal(np.asarray(real.images), np.asarray(data.train.images))
        arrays.update({"tiny/train_images": train_x, "tiny/train_labels": train_y,
                       "tiny/test_images": test_x, "tiny/test_labels": test_y,
                       "tiny/sorted_train_images": np.asarray(data.train.images),
                       "tiny/sorted_train_labels": np.asarray(data.train.labels)})
        record["tiny"] = {"helpers": "tests.helpers.tiny_loaded(num_per_class=4, num_classes=3) at 3b04c74",
                          "train": "tiny_images(4, 3, 8) (seed 0)", "test": "tiny_images(4, 3, 8, seed=1)",
                          "sorted_train": "LoadedData.train (make_real_data: stable argsort by label, float32)"}

        buffer_dir = None
        if {"mtt", "datm"} & set(tiny):
            t0 = time.time()
            buffer_dir = tmp_root / "experts"
            cfg = ExpertConfig(**EXPERT_CFG)
            train_experts(buffer_dir, np.asarray(real.images), np.asarray(real.labels), "tiny", 3, EXPERT_SEEDS, cfg,
                          progress=False)
            buf = ExpertBuffer(buffer_dir)
            h = hashlib.sha256()
            order = []
            for seed in sorted(buf.experts):
                for epoch in range(buf.epochs + 1):
                    params = buf.load(seed, epoch)
                    for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
                        leaf = np.ascontiguousarray(np.asarray(leaf))
                        assert leaf.dtype == np.float32, leaf.dtype
                        h.update(leaf.tobytes())
                        arrays[f"experts/{seed}/{epoch}/{path_name(p)}"] = leaf
                        if seed == buf.experts[0] and epoch == 0:
                            order.append(path_name(p))
            record["experts"] = {"config": {**dataclasses.asdict(cfg), "model_kwargs": dict(cfg.model_kwargs)},
                                 "call": "train_experts(buf, REAL.images, REAL.labels, 'tiny', 3, [0, 1], cfg, "
                                         "progress=False), REAL = tiny_real(num_per_class=4, num_classes=3)",
                                 "seeds": sorted(buf.experts), "epochs": buf.epochs, "leaf_order": order,
                                 "sha256": h.hexdigest(),
                                 "sha256_covers": "raw float32 bytes of jax.tree.leaves(ExpertBuffer.load(seed, "
                                                  "epoch)), seeds ascending, epochs 0..epochs ascending",
                                 "manifest_checksums": {s: e["checksums"] for s, e in buf.manifest["experts"].items()},
                                 "wall_time_s": time.time() - t0}
            print(f"[experts] sha256 {h.hexdigest()} {time.time() - t0:.1f}s", flush=True)

        for name in tiny:
            method = "dc" if name == "dc_unroll" else name
            overrides = dict(getattr(METHODS[method].config_cls, "TEST_OVERRIDES", {}))
            if name == "dc_unroll":
                overrides["class_loop"] = "unroll"
            if method in ("mtt", "datm"):
                overrides["buffer_dir"] = str(buffer_dir)
            run_case(name, method, "mnist", IPC, SEEDS, ITERATIONS, overrides, data)
            if method in ("mtt", "datm"):
                for part in ("method_overrides", "method_config"):  # a temporary path: not part of the golden
                    record["cases"][name][part]["buffer_dir"] = "<expert buffer, see 'experts'>"
            if name == "mtt":  # the expert window iteration 0 of seed 0 used
                cfg = method_config("mtt", dataset="mnist", ipc=IPC, iterations=ITERATIONS, **overrides)
                rng = np.random.default_rng([0, 0, 0x4D5454])  # as mtt.window_sampler's host_batch(0, 0)
                e_seed, e_start, start, target = ExpertBuffer(buffer_dir).sample_window(
                    rng, cfg.expert_epochs, cfg.max_start_epoch, 0)
                window = make_method("mtt", cfg).host_batch(0, 0)
                for got, want in ((window.start, start), (window.target, target)):
                    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                        assert np.array_equal(np.asarray(a), np.asarray(b))
                for part, tree in (("start", start), ("target", target)):
                    for k, v in flat(tree).items():
                        arrays[f"mtt/window_s0_i0/{part}/{k}"] = v
                record["cases"]["mtt"]["window_s0_i0"] = {"expert_seed": e_seed, "start_epoch": e_start,
                                                          "target_epoch": e_start + cfg.expert_epochs}

    # ---- (b) evaluation ---------------------------------------------------------------------------------------
    if "eval" in wanted:
        t0 = time.time()
        images, labels = arrays["dc/images"][0], arrays["dc/labels"][0]
        test_x, test_y = helpers.tiny_images(20, 3, 8, seed=1)
        arrays.update({"eval/test_images": test_x, "eval/test_labels": test_y})
        train_cfg = TrainConfig(epochs=3, augment="crop_scale_rotate")
        eval_cfg = EvalConfig(model="convnet", model_kwargs=(("depth", 2), ("width", 8)), num_models=2,
                              train=train_cfg, seed=0)
        res = evaluate_set(images, labels, test_x, test_y, 3, eval_cfg)
        # network 0, trained the way evaluate_set trains it
        model = make_model(eval_cfg.model, 3, **dict(eval_cfg.model_kwargs))
        keys = jax.random.split(jax.random.PRNGKey(eval_cfg.seed), eval_cfg.num_models)
        trainer = Trainer(model, train_cfg, int(images.shape[0]))
        states = trainer.run(keys[0:1], jnp.asarray(images, jnp.float32), jnp.asarray(labels))
        one = jax.tree.map(lambda a: a[0], states)
        for k, v in flat(one.params).items():
            arrays[f"eval/net0/params/{k}"] = v
        for k, v in flat(one.batch_stats).items():
            arrays[f"eval/net0/batch_stats/{k}"] = v
        logits = np.asarray(predict_logits(model, one.params, one.batch_stats, jnp.asarray(test_x)))
        arrays["eval/net0/logits"] = logits
        acc0 = float(np.mean(np.argmax(logits, -1) == test_y))
        record["cases"]["eval"] = {
            "call": "evaluate_set(dc/images[0], dc/labels[0], eval/test_images, eval/test_labels, 3, config)",
            "config": jsonable(eval_cfg.to_dict()), "accuracies": res["accuracies"],
            "accuracy_mean": res["accuracy_mean"], "accuracy_std": res["accuracy_std"],
            "net0_direct_accuracy": acc0, "net0_step": int(one.step),
            "net0_trainer": {"driver": trainer.driver, "parallel": trainer.parallel,
                             "total_steps": trainer.total_steps},
            "wall_time_s": time.time() - t0}
        print(f"[eval] {res['accuracies']} direct net0 {acc0} {time.time() - t0:.1f}s", flush=True)
        if abs(acc0 - res["accuracies"][0]) > 1e-6:
            print("WARNING: network 0 trained directly differs from evaluate_set's", flush=True)
            record["cases"]["eval"]["warning"] = "direct network 0 accuracy differs from evaluate_set's"

    # ---- (c) production DC / DSA on real MNIST ----------------------------------------------------------------
    prod = [c for c in ("dc_mnist", "dsa_mnist") if c in wanted]
    if prod:
        data_dir = os.environ.get("JAXDISTILL_DATA")
        t0 = time.time()
        mnist = runner.load_real("mnist", data_dir, progress=False)
        record["mnist"] = {"load": "runner.load_real('mnist', $JAXDISTILL_DATA, progress=False)",
                           "train_images_shape": list(mnist.train.images.shape),
                           "test_images_shape": list(np.shape(mnist.test_images)), "load_s": time.time() - t0}
        for name in prod:
            run_case(name, name.split("_")[0], "mnist", 1, [0], 1, None, mnist)
    if args.skip_dsa_mnist:
        record["skipped"] = ["dsa_mnist"]

    np.savez_compressed(out / "golden.npz", **arrays)
    record["npz_keys"] = {k: [str(v.dtype), list(v.shape)] for k, v in sorted(arrays.items())}
    (out / "golden.json").write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out / 'golden.npz'} ({(out / 'golden.npz').stat().st_size} bytes) and golden.json", flush=True)


if __name__ == "__main__":
    main()
