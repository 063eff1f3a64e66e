"""Every experiment's smoke variant runs end to end on real MNIST (the configs CI keeps honest)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("JAXDISTILL_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not Path(DATA, "mnist").is_dir(),
                                reason="needs the MNIST files: set JAXDISTILL_DATA to a folder holding mnist/")


@needs_mnist
@pytest.mark.parametrize("script,expect", [
    (["random_mnist.py"], "random ipc=1:"),
    (["full_data_mnist.py"], "full-data ConvNet, 1 epochs: test accuracy"),
    (["gradient_matching.py", "--method", "dc"], "over 2 networks"),  # smoke: 2 seeds x 1 network
    (["gradient_matching.py", "--method", "dsa", "--seeds", "1"], "over 1 networks"),  # one of the 2 seeds
    (["kd_mnist.py"], "KD (T=4, alpha=0.1)"),
    (["trajectory_matching.py", "--method", "mtt"], "mtt mnist ipc=1 (smoke):"),
    (["trajectory_matching.py", "--method", "datm"], "datm mnist ipc=1 (smoke):"),
], ids=["random", "full_data", "dc", "dsa", "kd", "mtt", "datm"])
def test_smoke_variant_runs(script, expect, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / script[0]), *script[1:], "--variant", "smoke",
                           "--workdir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
    assert (tmp_path / "run" / "config.json").exists()
    assert not list((ROOT / "results").glob("*smoke*"))  # smoke runs never write result records


def test_every_trajectory_matching_variant_builds_a_valid_config():
    # The CIFAR-10 rows cannot run here; their settings must still make valid MTT / DATM configs.
    import importlib.util
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        spec = importlib.util.spec_from_file_location("trajectory_matching", ROOT / "experiments" /
                                                      "trajectory_matching.py")
        tm = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tm)
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    from jaxdistill.methods import method_config
    built = 0
    for (method, dataset, ipc) in tm.SETTINGS:
        for variant, cfg in tm.VARIANTS.items():
            if cfg["ipc"] != ipc:
                continue
            settings, zca = tm.method_settings(method, dataset, variant)
            iterations = settings.pop("iterations")
            c = method_config(method, dataset=dataset, ipc=ipc, buffer_dir="b", iterations=iterations, **settings)
            assert c.syn_steps >= 1 and c.iterations == iterations
            assert zca == (dataset == "cifar10" and not (method == "mtt" and ipc == 50))
            built += 1
    assert built >= 20
    assert tm.method_settings("mtt", "cifar10", "ipc10")[0]["lr_img"] == 1e5  # the MTT paper's table


def test_a_finished_variant_draws_its_sets_and_writes_its_record(tiny_idx, tmp_path, monkeypatch, capsys):
    # The part of a long run that smoke variants skip: figures (here of a ZCA-whitened set with soft labels, drawn
    # by their argmax) and the record, after an evaluation that a rerun does not repeat.
    import argparse
    import json

    import numpy as np

    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.records import write_npz
    from jaxdistill.runner import distill, load_real
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from common import finish_distillation
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    spec = tiny_idx(tmp_path / "data", name="exp_tiny")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    data = load_real(spec.name, str(tmp_path / "data"), progress=False, zca=True)
    work = tmp_path / "run"
    rec = distill("random", spec.name, 2, [0, 1], work, progress=False, zca=True, data=data)
    with np.load(work / "synthetic.npz") as z:
        soft = np.eye(3, dtype=np.float32)[z["labels"]] * 0.9 + 0.1 / 3
        write_npz(work / "synthetic.npz", images=z["images"], labels=soft, seeds=z["seeds"])
    (work / "metrics.jsonl").write_text('{"step": 1, "match_loss": 2.0}\n{"step": 2, "match_loss": 1.5}\n')
    args = argparse.Namespace(method="random", dataset=spec.name, variant="ipc2_reduced_cpu", no_progress=True,
                              out=str(tmp_path / "rec.json"))
    cfg = dict(ipc=2, models=2, epochs=2)
    kw = dict(name="t", experiment="test", paper=(1.0, 0.5), started=0.0, record_config=cfg, full_command="full",
              figures=tmp_path / "figures")
    finish_distillation(args, cfg, work, data, rec, **kw)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["t_loss.png", "t_seed0.png", "t_seed1.png"]
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["reduced_protocol"] is True and record["full_protocol_command"] == "full"
    assert len(record["result"]["accuracies"]) == 4 and record["result"]["distill_config"]["zca"] is True
    assert "(paper 1.0 +- 0.5)" in capsys.readouterr().out
    (work / "eval.json").write_text(json.dumps({**json.loads((work / "eval.json").read_text()), "accuracy_mean": 0.5}))
    finish_distillation(args, cfg, work, data, rec, **kw)  # the finished evaluation is reused, not redone
    assert json.loads((tmp_path / "rec.json").read_text())["result"]["accuracy_mean"] == 0.5


def load_common():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    return common


def test_seeds_part_names_a_subset_of_the_variants_seeds():
    common = load_common()
    assert common.seeds_part([0, 1, 2], None) == ([0, 1, 2], "")
    assert common.seeds_part([0, 1, 2], "2,0") == ([0, 2], "_seed0_2")
    assert common.seeds_part([0, 1, 2], "1") == ([1], "_seed1")
    for bad in ("3", "1,1", "one"):
        with pytest.raises(SystemExit, match="--seeds"):
            common.seeds_part([0, 1, 2], bad)


def part_record(seeds, accs, epochs=1000, jax_version="x"):
    """A record as finish_distillation writes it for a run over `seeds` (one list of accuracies per seed)."""
    import numpy as np
    eval_cfg = {"num_models": len(accs[0]), "train": {"epochs": epochs}}
    per_set = [{"seed": s, "accuracies": a, "accuracy_mean": float(np.mean(a))} for s, a in zip(seeds, accs)]
    return {"experiment": "gradient_matching", "variant": "ipc1", "reduced_protocol": False, "command": "c",
            "full_protocol_command": "f", "config": {"method": "dsa", "ipc": 1, "seeds": seeds},
            "versions": {"jax": jax_version}, "device": {"backend": "cpu"}, "wall_time_s": 10.0,
            "result": {"per_set": per_set, "eval_config": eval_cfg, "paper_mean_std": [88.7, 0.6],
                       "distill_config": {"method": "dsa", "seeds": seeds}, "distill_record": {"seeds": seeds}}}


def test_records_of_seed_parts_merge_into_the_record_of_all_seeds(tmp_path, capsys):
    import json

    import numpy as np
    common = load_common()
    accs = {0: [0.90, 0.92], 1: [0.80, 0.84], 2: [0.86, 0.88]}
    for other in ("r_seed1_gpu.json", "r_seeds.json", "rr_seed1.json", "r_reduced_seed1.json"):  # not parts of r
        (tmp_path / other).write_text("{}")
    (tmp_path / "r_seed0_2.json").write_text(json.dumps(part_record([0, 2], [accs[0], accs[2]])))
    (tmp_path / "r_seed1.json").write_text(json.dumps(part_record([1], [accs[1]])))
    parts = common.seed_part_records(tmp_path, "r")
    assert [p.name for p in parts] == ["r_seed0_2.json", "r_seed1.json"]
    out = tmp_path / "r.json"
    common.merge_seed_records(parts, out, [0, 1, 2])
    rec = json.loads(out.read_text())
    every = accs[0] + accs[1] + accs[2]  # sets in seed order
    assert rec["result"]["accuracies"] == pytest.approx(every)
    assert rec["result"]["accuracy_mean"] == pytest.approx(np.mean(every))
    assert rec["result"]["accuracy_std"] == pytest.approx(np.std(every))
    assert [ps["seed"] for ps in rec["result"]["per_set"]] == [0, 1, 2]
    assert rec["config"]["seeds"] == [0, 1, 2] and rec["result"]["distill_config"]["seeds"] == [0, 1, 2]
    assert [p["seeds"] for p in rec["parts"]] == [[0, 2], [1]] and rec["wall_time_s"] == 20.0
    assert rec["versions"] == {"jax": "x"} and rec["device"] == {"backend": "cpu"}
    assert "warning" not in capsys.readouterr().out

    with pytest.raises(SystemExit, match="r_seed0_2.json: \\[0, 2\\]"):  # seed 1 missing
        common.merge_seed_records(parts[:1], out, [0, 1, 2])
    with pytest.raises(SystemExit, match="no part records"):
        common.merge_seed_records([], out, [0, 1, 2])
    with pytest.raises(SystemExit, match="not the record of a --seeds run"):
        common.merge_seed_records(parts + [tmp_path / "r_seeds.json"], out, [0, 1, 2])
    with pytest.raises(SystemExit, match="no record"):
        common.merge_seed_records(parts + [tmp_path / "absent.json"], out, [0, 1, 2])
    parts[1].write_text(json.dumps(part_record([1], [accs[1]], epochs=300)))
    with pytest.raises(SystemExit, match="differ in eval_config"):
        common.merge_seed_records(parts, out, [0, 1, 2])
    parts[1].write_text(json.dumps(part_record([1], [accs[1]], jax_version="y")))  # pooled, with a warning
    rec = common.merge_seed_records(parts, out, [0, 1, 2])
    assert rec["versions"] == [{"jax": "x"}, {"jax": "y"}] and "warning" in capsys.readouterr().out
