"""The experiments: config-as-code files under experiments/ run by one entry point (jaxdistill.experiment).

Every experiment's smoke variant runs end to end on real MNIST, by name, by path and the old way (the file run as a
script); every variant of every experiment builds a valid config; the shared plumbing (records, seed parts and their
merge, the end of a distillation) is tested on tiny data.
"""
import dataclasses
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxdistill import experiment
from jaxdistill.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py"))
DATA = os.environ.get("JAXDISTILL_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not Path(DATA, "mnist").is_dir(),
                                reason="needs the MNIST files: set JAXDISTILL_DATA to a folder holding mnist/")


def load(name: str):
    return experiment.load_experiment(ROOT / "experiments" / f"{name}.py")


RUNNER = [sys.executable, "-m", "jaxdistill.experiment"]


# The three ways of invoking an experiment; every experiment's smoke variant runs end to end in
# `scripts/reproduce_all.py --smoke`, which CI runs after this suite (each run checked: exit status, workdir, no
# record).
@needs_mnist
@pytest.mark.parametrize("command,expect", [
    (RUNNER + ["experiments/coreset_mnist.py", "--selection", "herding", "--seeds", "0"],  # by path, one selection
     "herding mnist ipc=1 (smoke):"),
    # the old way: the file run as a script hands itself to the runner
    ([sys.executable, "experiments/gradient_matching.py", "--method", "dc"], "over 2 networks"),  # 2 seeds x 1 net
    (RUNNER + ["gradient_matching", "--method", "dsa", "--seeds", "1"], "over 1 networks"),  # one of the 2 seeds
], ids=["herding_by_path", "dc_as_script", "dsa_seed_part"])
@pytest.mark.slow
def test_smoke_variant_runs(command, expect, tmp_path):
    done = subprocess.run([*command, "--variant", "smoke", "--workdir", str(tmp_path / "run")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout
    assert (tmp_path / "run" / "config.json").exists()
    assert not list((ROOT / "results").glob("*smoke*"))  # smoke runs never write result records


def test_no_experiment_imports_common_or_touches_sys_path():
    for path in sorted((ROOT / "experiments").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(from\s+common\s+import|import\s+common\b)", text, re.M), path
        assert not re.search(r"sys\.path\s*(\.|\+?=|\[)", text), path  # no sys.path.insert / append / assignment
    for name in EXPERIMENTS:  # each file runs through the one runner
        text = (ROOT / "experiments" / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":\n    from jaxdistill.experiment import main\n    main(__file__)' in text
    assert not (ROOT / "experiments" / "common.py").exists()


def variant_configs(name: str):
    """(variant, choices, config) of every variant of an experiment under every combination of its choices that
    has a config (trajectory matching has no MNIST settings at ipc 50: it says so)."""
    module = load(name)
    choices = experiment.config_choices(module)
    combos = [dict(zip(choices, values)) for values in itertools.product(*(c[0] for c in choices.values()))]
    for variant in module.VARIANTS:
        for combo in combos or [{}]:
            try:
                yield variant, combo, module.get_config(variant, **combo)
            except ConfigError as e:  # combinations an experiment does not offer, each saying so
                assert (name == "trajectory_matching" and "no settings" in str(e)) or (
                    name == "cross_architecture" and "evaluates committed sets" in str(e)) or (
                    name == "mhist_baselines" and ("has variants" in str(e) or "--weighting" in str(e))), e


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_variant_builds_a_config_the_runner_and_library_accept(name):
    # The rows that cannot run here (GPU rows, full protocols) must still make valid configs.
    from jaxdistill.kd import KDConfig
    from jaxdistill.methods import method_config
    from jaxdistill.models import ModelConfig
    from jaxdistill.policy import current

    module = load(name)
    assert "smoke" in module.VARIANTS
    built = 0
    for variant, combo, cfg in variant_configs(name):
        assert cfg["name"].endswith(variant) and isinstance(cfg["reduced"], bool)
        *before, full = (part.split() for part in cfg["full_protocol_command"].split(" && "))
        assert full[:2] == ["python", f"experiments/{name}.py"] and full[full.index("--variant") + 1] in module.VARIANTS
        for part in before:  # the run that makes what the last command reads (a cross-architecture row's sets)
            assert part[0] == "python" and part[1].startswith("experiments/") and (ROOT / part[1]).is_file()
            assert "--variant" in part
        if cfg["reduced"]:
            assert full[full.index("--variant") + 1] != variant
        if "eval_model" in cfg:
            ModelConfig.parse(cfg["eval_model"])
        if name == "gradient_matching":
            c = method_config(combo["method"], dataset=combo["dataset"], ipc=cfg["ipc"],
                              **cfg.get("method_overrides", {}))
            current().replace(**cfg.get("policy", {}))
            assert isinstance(cfg["iterations"], int) and c.ipc == cfg["ipc"]
        elif name == "trajectory_matching":
            c = method_config(combo["method"], dataset=combo["dataset"], ipc=cfg["ipc"], buffer_dir="b",
                              **cfg["method_settings"])
            assert c.syn_steps >= 1 and isinstance(cfg["iterations"], int)
            assert cfg["zca"] == (combo["dataset"] == "cifar10" and not (combo["method"] == "mtt" and cfg["ipc"] == 50))
        elif name == "psg":
            c = method_config("psg", ipc=cfg["ipc"], **cfg["method_overrides"])
            current().replace(**cfg.get("policy", {}))
            assert c.epsilon == float(combo["epsilon"]) and c.init == "noise" and c.delta == 1e-5
        elif name == "idc":
            c = method_config("idc", dataset=combo["dataset"], ipc=cfg["ipc"], **cfg["method_overrides"])
            assert c.factor == int(combo["factor"]) and isinstance(cfg["iterations"], int)
        elif name == "kd_mnist":
            assert isinstance(cfg["kd"], KDConfig) or (variant == "hinton_teacher_probe" and cfg["probe"]["lrs"])
        built += 1
    assert built >= {"gradient_matching": 28, "trajectory_matching": 26}.get(name, len(module.VARIANTS))


def test_variants_keep_their_settings_through_the_new_api():
    # What the variants ran before the spine redesign, in today's spelling: results stay valid.
    from jaxdistill.methods import method_config
    from jaxdistill.models import ModelConfig

    noise = load("gradient_matching").get_config("ipc1_init_reduced", "dc", init="noise")
    assert noise["name"] == "dc_mnist_noise_ipc1_init_reduced" and noise["method_overrides"] == {"init": "noise"}
    assert noise["start_control"] and noise["paper"] is None and "--init noise" in noise["full_protocol_command"]
    assert not load("gradient_matching").get_config("ipc1", "dc")["start_control"]
    gm = load("gradient_matching").get_config("smoke", "dc")
    c = method_config("dc", dataset="mnist", ipc=1, **gm["method_overrides"])
    assert c.model == ModelConfig("convnet", {"width": 16}) and c.batch_real == 8  # was width=16, batch_real=8
    assert gm["policy"] == {"class_loop": "scan"} and "eval_model" not in gm  # evaluated by the distilled network
    assert load("gradient_matching").get_config("ipc1", "dc", "fashion_mnist")["epochs"] == 300
    assert "method_overrides" not in load("gradient_matching").get_config("ipc1", "dsa")
    for ipc in (1, 10, 50):  # the full rows are the reference's 5 distillations x 20 networks x 1000 epochs
        for method in ("dc", "dsa"):
            full = load("gradient_matching").get_config(f"ipc{ipc}", method)
            assert (len(full["seeds"]), full["models"], full["epochs"], full["iterations"]) == (5, 20, 1000, 1000)
    tm = load("trajectory_matching")
    assert tm.get_config("smoke", "mtt")["method_settings"]["model"] == "convnet:depth=2,width=16"
    assert tm.get_config("smoke", "mtt")["buffer_name"] == "experts_mnist_2x3_depth2_width16_subset30"
    assert tm.get_config("ipc10", "mtt", "cifar10")["method_settings"]["lr_img"] == 1e5  # the MTT paper's table
    assert tm.get_config("ipc1", "datm", "cifar10")["iterations"] == 10000
    assert "model" not in tm.get_config("ipc1_reduced", "mtt")["method_settings"]  # the default ConvNet
    assert load("random_mnist").get_config("smoke")["eval_model"] == "convnet:width=16"
    assert load("full_data_mnist").get_config("smoke")["model_kwargs"] == {"width": 16}


def test_experiments_are_found_by_name_or_path_and_errors_name_the_fix(tmp_path, capsys):
    assert experiment.find_experiment("random_mnist") == ROOT / "experiments" / "random_mnist.py"
    assert experiment.find_experiment(ROOT / "experiments" / "kd_mnist.py") == ROOT / "experiments" / "kd_mnist.py"
    assert set(EXPERIMENTS) <= set(experiment.available_experiments())
    with pytest.raises(ConfigError, match="no experiment named 'nope'.*gradient_matching"):
        experiment.find_experiment("nope")
    with pytest.raises(ConfigError, match="no experiment file at"):
        experiment.find_experiment(tmp_path / "absent.py")
    (tmp_path / "half.py").write_text("VARIANTS = {'smoke': {}}\n")
    with pytest.raises(ConfigError, match="defines no get_config, run"):
        experiment.load_experiment(tmp_path / "half.py")
    with pytest.raises(SystemExit) as e:  # the command: one line, status 2, before any process setup
        experiment.main(argv=["nope", "--variant", "smoke"])
    assert e.value.code == 2 and "error: no experiment named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        experiment.main(argv=[])
    assert e.value.code == 2 and "usage: python -m jaxdistill.experiment" in capsys.readouterr().out
    typed = experiment.command_line(["experiments/x.py", "--variant", "a b"])
    assert typed == "python experiments/x.py --variant 'a b'"
    assert (experiment.command_line([experiment.__file__, "x", "--variant", "a"])
            == "python -m jaxdistill.experiment x --variant a")


def test_the_runner_parses_an_experiments_flags_and_merges_its_seed_parts(tmp_path, capsys):
    # runs/ and results/ live beside the experiments folder of the file; --merge pools the parts found there.
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "gradient_matching.py"
    path.write_text((ROOT / "experiments" / "gradient_matching.py").read_text())
    module = experiment.load_experiment(path)
    accs = {0: [0.90, 0.92], 1: [0.80, 0.84], 2: [0.86, 0.88], 3: [0.85, 0.87], 4: [0.89, 0.91]}
    (tmp_path / "results").mkdir()
    for seed in (0, 1, 2):
        (tmp_path / "results" / f"dsa_mnist_ipc1_seed{seed}.json").write_text(
            json.dumps(part_record([seed], [accs[seed]])))
    # the full variant is the reference's 5 distillations: three parts are not all of it
    with pytest.raises(ConfigError, match=r"not the variant's \[0, 1, 2, 3, 4\] once each"):
        experiment.run_experiment(module, ["--method", "dsa", "--variant", "ipc1", "--merge"], "gm")
    (tmp_path / "results" / "dsa_mnist_ipc1_seed3_4.json").write_text(
        json.dumps(part_record([3, 4], [accs[3], accs[4]])))
    experiment.run_experiment(module, ["--method", "dsa", "--variant", "ipc1", "--merge"], "gm", command="c m")
    rec = json.loads((tmp_path / "results" / "dsa_mnist_ipc1.json").read_text())
    assert rec["config"]["seeds"] == [0, 1, 2, 3, 4] and rec["command"] == "c m"
    assert rec["result"]["accuracies"] == [a for s in range(5) for a in accs[s]]
    with pytest.raises(ConfigError, match="neither --seeds nor --workdir"):
        experiment.run_experiment(module, ["--method", "dsa", "--variant", "ipc1", "--merge", "--seeds", "1"], "gm")
    with pytest.raises(SystemExit):  # argparse: --method is required, and has two values
        experiment.run_experiment(module, ["--method", "sgd", "--variant", "ipc1"], "gm")
    assert "invalid choice: 'sgd'" in capsys.readouterr().err

    seen = {}
    module.run = lambda config, ctx: seen.update(config=config, ctx=ctx)  # what a --seeds run is handed
    experiment.run_experiment(module, ["--method", "dc", "--variant", "ipc1", "--seeds", "2,0", "--no-progress",
                                       "--checkpoint-every", "5"], "gm")
    ctx = seen["ctx"]
    assert seen["config"]["seeds"] == [0, 2]
    assert ctx.name == "dc_mnist_ipc1_seed0_2" and ctx.grid_name == "dc_mnist_ipc1"
    assert ctx.workdir == tmp_path / "runs" / "dc_mnist_ipc1_seed0_2"
    assert ctx.out == tmp_path / "results" / "dc_mnist_ipc1_seed0_2.json"
    assert ctx.checkpoint_every == 5 and not ctx.progress and ctx.writes_record


def test_coreset_parts_differ_only_in_their_seeds_so_that_they_merge(monkeypatch):
    # a full coreset row is 5 selections, about half an hour each on a CPU: one per `--seeds` run, pooled by
    # `--merge`, which refuses parts whose record configs differ in anything but the seeds
    import jaxdistill.runner
    module = load("coreset_mnist")
    assert "seeds" in module.FLAGS
    monkeypatch.setattr(jaxdistill.runner, "load_real", lambda *a, **k: None)
    monkeypatch.setattr(jaxdistill.runner, "distill", lambda *a, **k: {})
    written = []
    monkeypatch.setattr(module, "finish_distillation", lambda ctx, data, rec, record_config: written.append(
        record_config))
    config = module.get_config("ipc1", selection="herding")
    ctx = experiment.Context(experiment="coreset_mnist", variant="ipc1", config=config, name=config["name"],
                             workdir=Path("unused"), out=Path("unused.json"), root=Path("."), progress=False)
    for seeds in ([0], [1, 2, 3, 4]):
        module.run({**config, "seeds": seeds}, ctx)
    a, b = ({k: v for k, v in c.items() if k != "seeds"} for c in written)
    assert a == b and [c["seeds"] for c in written] == [[0], [1, 2, 3, 4]]


@pytest.mark.slow
def test_a_finished_variant_draws_its_sets_and_writes_its_record(tiny_idx, tmp_path, monkeypatch, capsys):
    # The part of a long run that smoke variants skip: figures (here of a ZCA-whitened set with soft labels, drawn
    # by their argmax) and the record, after an evaluation that a rerun does not repeat.
    import numpy as np

    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.records import write_npz
    from jaxdistill.runner import distill, load_real
    spec = tiny_idx(tmp_path / "data", name="exp_tiny")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    data = load_real(spec.name, str(tmp_path / "data"), progress=False, zca=True)
    work = tmp_path / "run"
    rec = distill("random", spec.name, 2, [0, 1], work, progress=False, zca=True, data=data)
    with np.load(work / "synthetic.npz") as z:
        soft = np.eye(3, dtype=np.float32)[z["labels"]] * 0.9 + 0.1 / 3
        write_npz(work / "synthetic.npz", images=z["images"], labels=soft, seeds=z["seeds"])
    (work / "metrics.jsonl").write_text('{"step": 1, "match_loss": 2.0}\n{"step": 2, "match_loss": 1.5}\n')
    config = dict(method="random", dataset=spec.name, ipc=2, models=2, epochs=2, paper=(1.0, 0.5),
                  reduced=True, full_protocol_command="full")
    ctx = experiment.Context(experiment="test", variant="ipc2_reduced_cpu", config=config, name="t",
                             workdir=work, out=tmp_path / "rec.json", root=tmp_path, progress=False,
                             started=0.0, command="c", figures=tmp_path / "figures")
    record_config = dict(ipc=2, models=2, epochs=2)
    experiment.finish_distillation(ctx, data, rec, record_config)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["t_loss.png", "t_seed0.png",
                                                                        "t_seed1.png"]
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["reduced_protocol"] is True and record["full_protocol_command"] == "full"
    assert record["command"] == "c" and record["config"] == record_config
    assert len(record["result"]["accuracies"]) == 4 and record["result"]["distill_config"]["zca"] is True
    assert "(paper 1.0 +- 0.5)" in capsys.readouterr().out
    kept = tmp_path / "sets" / "rec"  # the sets stay beside the record, their arrays deflated
    assert record["result"]["set"] == "sets/rec"
    assert sorted(p.name for p in kept.iterdir()) == ["config.json", "synthetic.npz"]
    assert (kept / "config.json").read_bytes() == (work / "config.json").read_bytes()
    assert experiment.same_set(kept, work)
    (work / "eval.json").write_text(json.dumps({**json.loads((work / "eval.json").read_text()),
                                                "accuracy_mean": 0.5}))
    experiment.finish_distillation(ctx, data, rec, record_config)  # the finished evaluation is reused
    assert json.loads((tmp_path / "rec.json").read_text())["result"]["accuracy_mean"] == 0.5
    # a run folder that is where the record keeps its sets (--workdir D/sets/N --out D/N.json) is kept as it is
    # (it once raised SameFileError after the evaluation, before the record was written)
    in_place = tmp_path / "sets" / "in_place"
    shutil.copytree(work, in_place)
    arrays = (in_place / "synthetic.npz").read_bytes()
    experiment.finish_distillation(dataclasses.replace(ctx, workdir=in_place, out=tmp_path / "in_place.json"), data,
                                   rec, record_config)
    assert json.loads((tmp_path / "in_place.json").read_text())["result"]["set"] == "sets/in_place"
    assert (in_place / "synthetic.npz").read_bytes() == arrays


def test_seeds_part_names_a_subset_of_the_variants_seeds():
    assert experiment.seeds_part([0, 1, 2], None) == ([0, 1, 2], "")
    assert experiment.seeds_part([0, 1, 2], "2,0") == ([0, 2], "_seed0_2")
    assert experiment.seeds_part([0, 1, 2], "1") == ([1], "_seed1")
    for bad in ("3", "1,1", "one"):
        with pytest.raises(ConfigError, match="--seeds"):
            experiment.seeds_part([0, 1, 2], bad)


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
    import numpy as np

    accs = {0: [0.90, 0.92], 1: [0.80, 0.84], 2: [0.86, 0.88]}
    for other in ("r_seed1_gpu.json", "r_seeds.json", "rr_seed1.json", "r_reduced_seed1.json"):  # not parts of r
        (tmp_path / other).write_text("{}")
    (tmp_path / "r_seed0_2.json").write_text(json.dumps(part_record([0, 2], [accs[0], accs[2]])))
    (tmp_path / "r_seed1.json").write_text(json.dumps(part_record([1], [accs[1]])))
    parts = experiment.seed_part_records(tmp_path, "r")
    assert [p.name for p in parts] == ["r_seed0_2.json", "r_seed1.json"]
    out = tmp_path / "r.json"
    experiment.merge_seed_records(parts, out, [0, 1, 2])
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

    with pytest.raises(ConfigError, match="r_seed0_2.json: \\[0, 2\\]"):  # seed 1 missing
        experiment.merge_seed_records(parts[:1], out, [0, 1, 2])
    with pytest.raises(ConfigError, match="no part records"):
        experiment.merge_seed_records([], out, [0, 1, 2])
    with pytest.raises(ConfigError, match="not the record of a --seeds run"):
        experiment.merge_seed_records(parts + [tmp_path / "r_seeds.json"], out, [0, 1, 2])
    with pytest.raises(ConfigError, match="no record"):
        experiment.merge_seed_records(parts + [tmp_path / "absent.json"], out, [0, 1, 2])
    parts[1].write_text(json.dumps(part_record([1], [accs[1]], epochs=300)))
    with pytest.raises(ConfigError, match="differ in eval_config"):
        experiment.merge_seed_records(parts, out, [0, 1, 2])
    parts[1].write_text(json.dumps(part_record([1], [accs[1]], jax_version="y")))  # pooled, with a warning
    rec = experiment.merge_seed_records(parts, out, [0, 1, 2])
    assert rec["versions"] == [{"jax": "x"}, {"jax": "y"}] and "warning" in capsys.readouterr().out


def test_a_merged_record_pooled_a_part_only_while_its_file_holds_that_run(tmp_path):
    parts = {"r_seed0.json": part_record([0], [[0.9]]), "r_seed1.json": part_record([1], [[0.8]])}
    merged = experiment.pool_seed_records(parts)
    assert experiment.pooled_part("r_seed0.json", parts["r_seed0.json"], merged)
    assert not experiment.pooled_part("r_seed2.json", parts["r_seed0.json"], merged)  # another file
    assert not experiment.pooled_part("r_seed0.json", parts["r_seed0.json"], None)  # no merged record
    # the same command run again (a row rerun at another protocol, its part named as before): another wall time
    again = {**parts["r_seed0.json"], "wall_time_s": 11.0}
    assert not experiment.pooled_part("r_seed0.json", again, merged)
    assert not experiment.pooled_part("r_seed0.json", {**parts["r_seed0.json"], "command": "c2"}, merged)


def test_a_run_never_writes_its_set_over_one_that_other_records_read_or_a_committed_run_folder(tmp_path):
    (tmp_path / "experiments").mkdir()
    path = tmp_path / "experiments" / "gradient_matching.py"
    path.write_text((ROOT / "experiments" / "gradient_matching.py").read_text())
    module = experiment.load_experiment(path)
    ran = []
    module.run = lambda config, ctx: ran.append(ctx.name)
    results, sets = tmp_path / "results", tmp_path / "results" / "sets"
    folder = sets / "dsa_mnist_ipc1_seed0"
    folder.mkdir(parents=True)
    for name in ("config.json", "synthetic.npz"):
        (folder / name).write_text("{}")
    argv = ["--method", "dsa", "--variant", "ipc1", "--seeds", "0"]
    # its own record and the merged record of its variant name the set: a rerun replaces them, so it runs
    (results / "dsa_mnist_ipc1_seed0.json").write_text(json.dumps({"set": "results/sets/dsa_mnist_ipc1_seed0"}))
    (results / "dsa_mnist_ipc1.json").write_text(json.dumps({"sets": ["results/sets/dsa_mnist_ipc1_seed0"]}))
    (results / "other.json").write_text(json.dumps(  # not it, and not where a record names its sets
        {"config": {"sets": ["results/sets/dsa_mnist_ipc1_seed01"]},
         "command": "--distilled x/sets/dsa_mnist_ipc1_seed0"}))
    experiment.run_experiment(module, argv, "gm")
    assert ran == ["dsa_mnist_ipc1_seed0"]
    # another record evaluated it: refused before the run starts, naming the reader
    (results / "xa.json").write_text(json.dumps({"config": {"sets": ["results/sets/dsa_mnist_ipc1_seed0"]}}))
    with pytest.raises(ConfigError, match="read by xa.json"):
        experiment.run_experiment(module, argv, "gm")
    experiment.run_experiment(module, [*argv, "--out", str(tmp_path / "elsewhere" / "x.json")], "gm")  # or not
    (results / "xa.json").unlink()
    # a whole run folder committed as it is: refused, unless the run resumes that very folder
    (folder / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="whole run folder committed as it is \\(checkpoints\\)"):
        experiment.run_experiment(module, argv, "gm")
    experiment.run_experiment(module, [*argv, "--workdir", str(folder)], "gm")
    assert len(ran) == 3
    # the several sets of one record (sets/<record>_set<i>) are checked alike
    (results / "xa.json").write_text(json.dumps({"config": {"sets": ["results/sets/r_set1"]}}))
    (sets / "r_set1").mkdir()
    (sets / "r_set10x").mkdir()  # another record's name
    with pytest.raises(ConfigError, match="r_set1 is read by xa.json"):
        experiment.check_kept_set(_context(results / "r.json", tmp_path))


def _context(out, root, **args):
    import argparse
    return experiment.Context(experiment="x", variant="v", config={}, name=out.stem, workdir=root / "runs" / "w",
                              out=out, root=root, args=argparse.Namespace(**args))


def test_the_committed_sets_that_records_read_are_guarded_and_given_ones_are_not(tmp_path):
    results = ROOT / "results"
    # the committed DSA ipc-1 workdirs of before the spine redesign are out of the way of its --seeds parts
    for seed in (0, 1, 2):
        experiment.check_kept_set(_context(results / f"dsa_mnist_ipc1_seed{seed}.json", ROOT))
    with pytest.raises(ConfigError, match="read by continual_mnist_ipc10_reduced.json"):  # its config.synthetic
        experiment.check_kept_set(_context(results / "dsa_mnist_ipc10_reduced.json", ROOT))
    # a cross-architecture record resumed from its own kept sets (`--distilled results/sets/<record>`) writes
    # nothing new there, though other records read them
    mtt = results / "cross_architecture_mtt_mnist_ipc10_reduced.json"
    with pytest.raises(ConfigError, match="read by cross_architecture_mtt_mnist_ipc10_clip"):
        experiment.check_kept_set(_context(mtt, ROOT))
    experiment.check_kept_set(_context(mtt, ROOT, distilled=[str(results / "sets" / mtt.stem)]))
    # a record whose command names a set elsewhere (--distilled /scratch/sets/<name>) does not read it
    assert experiment.kept_set_readers(results / "sets" / "mtt_mnist_ipc10_reduced_cpu_within_real",
                                       results / "mtt_mnist_ipc10_reduced_cpu_within_real.json", ROOT) == []


def test_hintons_teacher_lr_is_the_one_its_held_out_probe_chose():
    from jaxdistill.records import read_json
    module = load("kd_mnist")
    probe = read_json(ROOT / "results" / "kd_mnist_hinton_teacher_probe.json")
    assert probe["result"]["chosen_lr"] == module.TEACHER_LR
    assert module.get_config("hinton")["kd"].teacher.train.lr == module.TEACHER_LR
    assert [r["lr"] for r in probe["result"]["rows"]] == list(module.PROBE_LRS)


def test_the_hinton_run_keeps_its_phases_one_teacher_at_a_time_and_matches_what_is_kept():
    # the 6-hour run spans machines: its teachers finish one by one, and the phases committed under results/ must be
    # of today's config (else a resume refuses them)
    from jaxdistill.checkpoint import RunDir
    from jaxdistill.train import resolve_parallel
    cfg = load("kd_mnist").get_config("hinton")
    assert cfg["keep_phases"] and resolve_parallel(cfg["kd"].teacher.train.parallel) == "sequential"
    assert not load("kd_mnist").get_config("hinton_reduced")["keep_phases"]
    kept = ROOT / "results" / "kd_mnist_hinton_phases"
    if kept.exists():
        assert RunDir(kept).check_config({"kind": "kd_outputs", **cfg["kd"].to_dict()})


def test_mhist_baselines_count_the_networks_of_either_result_layout():
    # the random baseline's result is an evaluation of sets (no per-network "metrics" list at its top level); its
    # confusion-matrix title once raised KeyError after the record was written
    count = load("mhist_baselines").network_count
    assert count({"metrics": [{}, {}, {}]}) == 3
    assert count({"accuracies": [0.5] * 5, "per_set": [{}]}) == 5


def test_cross_architecture_evaluates_any_methods_sets_given_with_distilled_and_checks_them(tmp_path):
    module = load("cross_architecture")
    cfg = module.get_config("ipc1_reduced", "idc")
    run = tmp_path / "idc_run"
    run.mkdir()
    with pytest.raises(ConfigError, match="not a finished distill run"):
        module.given_sets(cfg, [str(run)])
    (run / "synthetic.npz").write_bytes(b"")
    (run / "config.json").write_text(json.dumps({"method": "idc", "dataset": "mnist", "method_config": {"ipc": 10}}))
    with pytest.raises(ConfigError, match="holds a idc set of mnist at ipc 10; this run evaluates idc sets of mnist "
                                          "at ipc 1"):
        module.given_sets(cfg, [str(run)])
    (run / "config.json").write_text(json.dumps({"method": "idc", "dataset": "mnist", "method_config": {"ipc": 1}}))
    given = module.given_sets(cfg, [str(run)])
    assert list(given) == [run.resolve()] and given[run.resolve()]["method_config"] == {"ipc": 1}  # its config
    # its full protocol runs IDC's full row first, then evaluates that row's sets
    assert cfg["full_protocol_command"] == ("python experiments/idc.py --variant ipc1 && python experiments/"
                                            "cross_architecture.py --method idc --variant ipc1 --distilled "
                                            "runs/idc_mnist_ipc1")
    # a PSG row names its epsilon, read from the given sets, in its source row, run folder and record
    made = {Path("a"): {"method_config": {"epsilon": float("inf")}}, Path("b"): {"method_config": {"epsilon": 10.0}}}
    assert module.psg_epsilon({Path("a"): made[Path("a")]}) == "inf" and module.psg_epsilon(made) is None
    assert module.psg_epsilon({Path("b"): made[Path("b")]}) == "10"
    assert module.full_protocol_command("psg", "ipc10_reduced", "10") == (
        "python experiments/psg.py --epsilon 10 --variant ipc10 && python experiments/cross_architecture.py "
        "--method psg --variant ipc10 --distilled runs/psg_mnist_eps10_ipc10 --workdir "
        "runs/cross_architecture_psg_eps10_mnist_ipc10 --out results/cross_architecture_psg_eps10_mnist_ipc10.json")
    # a set distilled with clip_to_real goes to the *_within_real variants, which take no other, and their full
    # protocol distils such sets first
    within, plain = module.get_config("ipc10_within_real_reduced", "mtt"), module.get_config("ipc10_reduced", "mtt")
    (run / "config.json").write_text(json.dumps({"method": "mtt", "dataset": "mnist",
                                                 "method_config": {"ipc": 10, "clip_to_real": True}}))
    assert list(module.given_sets(within, [str(run)])) == [run.resolve()]
    with pytest.raises(ConfigError, match="distilled with clip_to_real .* an \\*_within_real variant"):
        module.given_sets(plain, [str(run)])
    (run / "config.json").write_text(json.dumps({"method": "mtt", "dataset": "mnist", "method_config": {"ipc": 10}}))
    assert list(module.given_sets(plain, [str(run)])) == [run.resolve()]
    with pytest.raises(ConfigError, match="distilled without clip_to_real"):
        module.given_sets(within, [str(run)])
    assert within["full_protocol_command"] == (
        "python experiments/trajectory_matching.py --method mtt --variant ipc10_within_real && python experiments/"
        "cross_architecture.py --method mtt --variant ipc10_within_real --distilled runs/mtt_mnist_ipc10_within_real")
    # a method this script does not distil needs its sets, and a variant of committed sets takes no others;
    # both are refused before any data loads
    argv = ["--variant", "smoke", "--workdir", str(tmp_path / "w"), "--no-progress"]
    with pytest.raises(ConfigError, match="pass the run with --distilled"):
        experiment.run_experiment(module, ["--method", "idc", *argv], "test")
    with pytest.raises(ConfigError, match="--distilled goes with a variant that distils"):
        experiment.run_experiment(module, ["--method", "dsa", "--variant", "ipc1_stored_reduced", "--distilled",
                                           str(run), "--workdir", str(tmp_path / "w2"), "--no-progress"], "test")


def altered_copy(source: Path, folder: Path, change) -> dict:
    """A copy of the run folder `source` at `folder` whose synthetic images are `change(images)`: another set with
    the same config. Returns the copy's arrays."""
    import numpy as np

    from jaxdistill.records import write_npz
    shutil.copytree(source, folder)
    with np.load(source / "synthetic.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"] = change(arrays["images"])
    write_npz(folder / "synthetic.npz", **arrays)
    return arrays


def test_cross_architecture_keeps_the_sets_it_evaluates_beside_its_record(tiny_idx, tmp_path, monkeypatch):
    # a set distilled (here: selected) by the script itself, or given from runs/, must outlive runs/: the record
    # names its kept copy
    import numpy as np

    from jaxdistill.data.registry import REGISTRY
    module = load("cross_architecture")
    monkeypatch.setitem(REGISTRY, "mnist", tiny_idx(tmp_path / "data", name="mnist"))
    monkeypatch.setitem(module.VARIANTS, "tiny_reduced", dict(ipc=1, seeds=[0], iterations=None, models=1, epochs=1,
                                                              architectures=("MLP",)))
    out, work = tmp_path / "results" / "xa.json", tmp_path / "runs" / "xa"
    experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_reduced", "--workdir", str(work),
                                       "--out", str(out), "--data-dir", str(tmp_path / "data"), "--no-progress"],
                              "test")
    record = json.loads(out.read_text())
    kept = tmp_path / "results" / "sets" / "xa"
    assert record["config"]["sets"] == [str(kept)]  # outside the repository: named absolutely
    assert record["result"]["architectures"]["MLP"]["networks"] == 1
    assert experiment.same_set(kept, work)
    cfg = module.get_config("ipc1_reduced", "random")
    assert list(module.given_sets(cfg, [str(kept)])) == [kept.resolve()]  # and it can be evaluated again
    # a set given with --distilled from outside the records' folder is kept too; one inside it stays where it is
    for source, named in ((work, tmp_path / "results" / "sets" / "xb"), (kept, kept)):
        experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_reduced", "--distilled",
                                           str(source), "--workdir", str(tmp_path / "runs" / "xb"), "--out",
                                           str(tmp_path / "results" / "xb.json"), "--data-dir",
                                           str(tmp_path / "data"), "--no-progress"], "test")
        record = json.loads((tmp_path / "results" / "xb.json").read_text())
        assert record["config"]["sets"] == [str(named)]
        assert record["config"].get("kept_from", [str(source)]) == [str(source)]
        assert record["config"]["method_configs"] == [json.loads((source / "config.json").read_text())["method_config"]]
        assert record["result"]["architectures"]["MLP"]["seconds"] > 0
    # the workdir's finished evaluation is of that set: another set there is refused, not given its results
    other = tmp_path / "other"
    altered_copy(kept, other, lambda images: images + 1)
    assert not experiment.same_set(other, kept)
    with pytest.raises(ConfigError, match="evaluates another set"):
        experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_reduced", "--distilled",
                                           str(other), "--workdir", str(tmp_path / "runs" / "xb"), "--no-progress",
                                           "--out", str(tmp_path / "results" / "xc.json"),
                                           "--data-dir", str(tmp_path / "data")], "test")
    assert not (tmp_path / "results" / "sets" / "xc").exists()  # a run that evaluated nothing keeps no set
    # an *_idc_protocol variant trains every architecture by IDC's protocol and its record says so
    monkeypatch.setitem(module.VARIANTS, "tiny_idc_protocol_reduced",
                        {**module.VARIANTS["tiny_reduced"], "protocol": "idc"})
    experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_idc_protocol_reduced", "--distilled",
                                       str(kept), "--workdir", str(tmp_path / "runs" / "xi"), "--out",
                                       str(tmp_path / "results" / "xi.json"), "--data-dir", str(tmp_path / "data"),
                                       "--no-progress"], "test")
    assert json.loads((tmp_path / "results" / "xi.json").read_text())["config"]["protocol"] == "idc"
    evaluated = json.loads((tmp_path / "runs" / "xi" / "by_MLP_0" / "eval.json").read_text())
    assert evaluated["protocol"] == "idc" and evaluated["eval_config"]["train"]["batch_size"] == 64
    # an *_lr<value> variant trains at that lr and its record says so
    monkeypatch.setitem(module.VARIANTS, "tiny_lr_reduced", {**module.VARIANTS["tiny_reduced"], "lr": 0.05})
    experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_lr_reduced", "--distilled",
                                       str(kept), "--workdir", str(tmp_path / "runs" / "xl"), "--out",
                                       str(tmp_path / "results" / "xl.json"), "--data-dir", str(tmp_path / "data"),
                                       "--no-progress"], "test")
    assert json.loads((tmp_path / "results" / "xl.json").read_text())["config"]["lr"] == 0.05
    evaluated = json.loads((tmp_path / "runs" / "xl" / "by_MLP_0" / "eval.json").read_text())
    assert evaluated["eval_config"]["train"]["lr"] == 0.05 and evaluated["train_overrides"] == {"lr": 0.05}
    # a *_clip variant trains on the set with its pixels clipped to the real images' range: the record keeps the
    # clipped set (not the given one), names the range and where it was clipped from, and resumes only for that range
    monkeypatch.setitem(module.VARIANTS, "tiny_clip_reduced", {**module.VARIANTS["tiny_reduced"], "clip": "real"})
    spread = tmp_path / "spread"
    arrays = altered_copy(kept, spread, lambda images: images * 10.0)  # far outside the real range on both sides
    clip_out = tmp_path / "results" / "xk.json"
    experiment.run_experiment(module, ["--method", "random", "--variant", "tiny_clip_reduced", "--distilled",
                                       str(spread), "--workdir", str(tmp_path / "runs" / "xk"), "--out",
                                       str(clip_out), "--data-dir", str(tmp_path / "data"), "--no-progress"], "test")
    record = json.loads(clip_out.read_text())
    low, high = record["config"]["clip"]
    from jaxdistill.runner import load_real
    real = np.asarray(load_real("mnist", str(tmp_path / "data"), progress=False).train.images)
    assert (low, high) == (float(real.min()), float(real.max())) and low < 0 < high
    assert record["config"]["clipped_from"] == [str(spread)]
    with np.load(tmp_path / "results" / "sets" / "xk" / "synthetic.npz") as z:
        clipped = z["images"]
        assert all(np.array_equal(z[k], arrays[k]) for k in z.files if k != "images")  # labels, seeds as given
    np.testing.assert_array_equal(clipped, np.clip(arrays["images"], low, high))
    assert clipped.min() == low and clipped.max() == high  # the clip did bite on both sides
    assert json.loads((tmp_path / "results" / "sets" / "xk" / "config.json").read_text())["clip"] == [low, high]
    assert not experiment.same_set(tmp_path / "results" / "sets" / "xk", spread)
    evaluated = json.loads((tmp_path / "runs" / "xk" / "by_MLP_0" / "eval.json").read_text())
    assert record["result"]["architectures"]["MLP"]["accuracies"] == evaluated["accuracies"]
    clipped_sources = [tmp_path / "runs" / "xk" / "clipped_0"]
    assert module.recorded_architectures(clip_out, record["config"], clipped_sources).keys() == {"MLP"}
    assert module.recorded_architectures(clip_out, {**record["config"], "clip": [low, 1.0]}, clipped_sources) == {}
    assert module.recorded_architectures(clip_out, {**record["config"], "clip": None}, clipped_sources) == {}


def test_cross_architecture_reduced_ipc10_rows_all_train_300_optimiser_steps():
    # an epoch is one step over 100 images in batches of 256 (DC's protocol), but seven over IDC's 400 decoded images
    # in batches of 64 (IDC's): 300 epochs would make the IDC row seven times as long as the others
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.evaluate import protocol_train_config
    module = load("cross_architecture")
    steps = {}
    for method, images in (("dc", 100), ("mtt", 100), ("psg", 100), ("idc", 10 * 10 * 2 ** 2)):
        cfg = module.get_config("ipc10_reduced", method)
        train = protocol_train_config("idc" if method == "idc" else "dc", REGISTRY["mnist"], epochs=cfg["epochs"])
        steps[method] = cfg["epochs"] * -(-images // train.batch_size)
    assert set(steps.values()) <= set(range(300, 307)), steps  # within one epoch of 300 steps
    assert module.get_config("ipc10", "idc")["epochs"] == 1000  # the full protocol is the reference's


def test_cross_architecture_resumes_from_its_record_when_the_run_folder_is_gone(tiny_idx, tmp_path, monkeypatch):
    # a run stopped between architectures (each one is written to the record as soon as it is done) picks up where
    # it stopped from the committed record and set alone, e.g. on another machine; other sets are evaluated afresh
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.models import CROSS_ARCHITECTURES
    module = load("cross_architecture")
    monkeypatch.setitem(REGISTRY, "mnist", tiny_idx(tmp_path / "data", name="mnist"))
    monkeypatch.setitem(module.VARIANTS, "tiny_reduced", dict(ipc=1, seeds=[0], iterations=None, models=1, epochs=1,
                                                              architectures=("MLP", "ConvNet")))
    monkeypatch.setitem(CROSS_ARCHITECTURES, "ConvNet", "convnet:width=4,depth=1")  # for the 4x4 images
    evaluated, evaluate, stop = [], module._evaluate, {"at": "convnet:width=4,depth=1"}

    def evaluate_or_stop(ctx, folder, source, model, data, first=None):
        if model == stop["at"]:  # the machine goes away before the second architecture
            raise KeyboardInterrupt
        evaluated.append(model)
        return evaluate(ctx, folder, source, model, data, first)

    monkeypatch.setattr(module, "_evaluate", evaluate_or_stop)
    out, work = tmp_path / "results" / "xa.json", tmp_path / "runs" / "xa"
    argv = ["--method", "random", "--variant", "tiny_reduced", "--workdir", str(work), "--out", str(out),
            "--data-dir", str(tmp_path / "data"), "--no-progress"]
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(module, argv, "test")
    stop["at"] = None
    partial = json.loads(out.read_text())["result"]
    assert list(partial["architectures"]) == ["MLP"] and partial["architectures_left"] == ["ConvNet"]
    shutil.rmtree(tmp_path / "runs")
    evaluated.clear()
    experiment.run_experiment(module, argv, "test")  # the set is selected again, the same one
    assert evaluated == ["convnet:width=4,depth=1"]
    done = json.loads(out.read_text())["result"]
    assert done["from_earlier_record"] == ["MLP"] and done["architectures"]["MLP"] == {
        **partial["architectures"]["MLP"], "command": json.loads(out.read_text())["command"]}  # the same command
    assert "command" not in done["architectures"]["ConvNet"]  # the record's own
    assert "architectures_left" not in done and done["architectures"]["ConvNet"]["networks"] == 1
    # the kept set, given again, is the same set: nothing left to evaluate
    kept = tmp_path / "results" / "sets" / "xa"
    evaluated.clear()
    experiment.run_experiment(module, [*argv, "--distilled", str(kept)], "test")
    again = json.loads(out.read_text())["result"]
    assert evaluated == [] and again["from_earlier_record"] == ["MLP", "ConvNet"]
    assert all(again["architectures"][a] == {**e, "command": again["architectures"][a]["command"]}
               for a, e in done["architectures"].items())
    # another set, or another evaluation of it, replaces the record instead of joining it
    other = tmp_path / "other"
    altered_copy(kept, other, lambda images: images + 1)
    assert module.recorded_architectures(out, json.loads(out.read_text())["config"], [other]) == {}
    record_config = {k: json.loads(out.read_text())["config"][k] for k in ("method", "dataset", "ipc", "models",
                                                                             "epochs")}
    assert module.recorded_architectures(out, record_config, [kept]).keys() == {"MLP", "ConvNet"}
    assert module.recorded_architectures(out, {**record_config, "epochs": 2}, [kept]) == {}
    assert module.recorded_architectures(out, {**record_config, "augment": "dsa"}, [kept]) == {}
    assert module.recorded_architectures(out, {**record_config, "lr": 0.005}, [kept]) == {}  # another lr
    evaluated.clear()
    experiment.run_experiment(module, [*argv[:4], "--workdir", str(tmp_path / "runs" / "o"), *argv[6:],
                                       "--distilled", str(other)], "test")
    assert evaluated == ["mlp:128,128", "convnet:width=4,depth=1"]
    assert "from_earlier_record" not in json.loads(out.read_text())["result"]


def test_cross_architecture_grows_a_records_networks_training_only_the_new_ones(tiny_idx, tmp_path, monkeypatch):
    # a variant that `extends` another evaluates more networks: the ones the other variant's record holds for the
    # same sets, evaluated the same way, are its first ones, so only the rest train, to the same accuracies
    import jaxdistill.evaluate as evaluate
    from jaxdistill.data.registry import REGISTRY
    module = load("cross_architecture")
    monkeypatch.setitem(REGISTRY, "mnist", tiny_idx(tmp_path / "data", name="mnist"))
    monkeypatch.setitem(module.VARIANTS, "tiny_reduced", dict(ipc=1, seeds=[0], iterations=None, models=1, epochs=1,
                                                              architectures=("MLP",)))
    monkeypatch.setitem(module.VARIANTS, "tiny_more_reduced", {**module.VARIANTS["tiny_reduced"], "models": 3,
                                                               "extends": "tiny_reduced"})
    real_test, tested = evaluate.test_metrics, []

    def counted(model, states, *args, **kwargs):
        tested.append(int(states.step.shape[0]))
        return real_test(model, states, *args, **kwargs)

    monkeypatch.setattr(evaluate, "test_metrics", counted)
    results = tmp_path / "results"

    def run(variant, out, workdir):
        tested.clear()
        experiment.run_experiment(module, ["--method", "random", "--variant", variant, "--workdir",
                                           str(tmp_path / "runs" / workdir), "--out", str(results / out),
                                           "--data-dir", str(tmp_path / "data"), "--no-progress"], "test")
        return json.loads((results / out).read_text())["result"]

    base = run("tiny_reduced", "xa_tiny_reduced.json", "base")
    grown = run("tiny_more_reduced", "xa_tiny_more_reduced.json", "more")
    assert tested == [1, 1, 1]  # network 0 again (the check), then the two new ones
    mlp = grown["architectures"]["MLP"]
    assert mlp["networks"] == 3 and mlp["first_networks"]["from"] == str(results / "xa_tiny_reduced.json")
    assert mlp["first_networks"]["per_set"] == 1 and mlp["first_networks"]["check"]["seconds"] > 0
    assert mlp["first_networks"]["check"]["reproduced"]
    assert mlp["accuracies"][:1] == base["architectures"]["MLP"]["accuracies"]
    scratch = run("tiny_more_reduced", "xb_tiny_more_reduced.json", "scratch")  # no record to extend: all three
    assert tested == [1, 1, 1] and "first_networks" not in scratch["architectures"]["MLP"]
    assert scratch["architectures"]["MLP"]["accuracies"] == mlp["accuracies"]
    # a record whose network 0 does not score here what it says (e.g. made on another machine): its
    # networks are still samples of the same protocol and are reused, and the record says they are not reproducible
    record = json.loads((results / "xa_tiny_reduced.json").read_text())
    record["result"]["architectures"]["MLP"]["accuracies"] = [0.01]
    (results / "xc_tiny_reduced.json").write_text(json.dumps(record))
    other = run("tiny_more_reduced", "xc_tiny_more_reduced.json", "other")["architectures"]["MLP"]
    assert tested == [1, 1, 1] and other["accuracies"] == [0.01, *mlp["accuracies"][1:]]
    assert other["first_networks"]["check"] == {**other["first_networks"]["check"], "reproduced": False,
                                                "network_0_recorded": [0.01],
                                                "network_0_here": mlp["accuracies"][:1]}
    # an evaluation finished here before the record to extend appeared keeps its own networks, credited to no record
    (results / "xd_tiny_reduced.json").write_text(json.dumps(record))
    own = run("tiny_more_reduced", "xd_tiny_more_reduced.json", "scratch")["architectures"]["MLP"]
    assert tested == [1] and own["accuracies"] == mlp["accuracies"] and "first_networks" not in own
    # the committed rows that extend others: the full protocol is the extended row's (20 networks already)
    for bound in ("clip", "within_real"):
        assert module.get_config(f"ipc10_{bound}_alexnet12_reduced", "mtt")["full_protocol_command"] == \
            module.get_config(f"ipc10_{bound}_reduced", "mtt")["full_protocol_command"]


def test_figures_go_beside_the_record(tmp_path):
    # a check run with --out elsewhere once redrew the committed figures of its record under results/figures
    ctx = experiment.Context(experiment="e", variant="v", config={}, name="n", workdir=tmp_path / "w",
                             out=tmp_path / "check" / "n.json", root=tmp_path)
    assert ctx.figures_dir == tmp_path / "check" / "figures"
    ctx.figures = tmp_path / "elsewhere"
    assert ctx.figures_dir == tmp_path / "elsewhere"


def test_a_finished_evaluation_is_reused_only_for_the_sets_and_network_it_evaluated(tiny_idx, tmp_path,
                                                                                     monkeypatch):
    # an experiment rerun in a workdir whose set had changed (distilled further, or replaced) once returned the old
    # set's eval.json, matched by its networks and epochs alone
    import numpy as np

    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.records import write_npz
    from jaxdistill.runner import distill, evaluate_workdir, load_real
    spec = tiny_idx(tmp_path / "data", name="reuse_tiny")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    data = load_real(spec.name, str(tmp_path / "data"), progress=False)
    work = tmp_path / "run"
    distill("random", spec.name, 1, [0, 1], work, progress=False, data=data)
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None  # nothing evaluated yet
    evaluate_workdir(work, num_models=1, epochs=1, model="mlp:8", data=data, progress=False)
    done = json.loads((work / "eval.json").read_text())
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") == done
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8,") == done  # the same network, spelled otherwise
    assert experiment.finished_evaluation(work, 2, 1, "mlp:8") is None
    assert experiment.finished_evaluation(work, 1, 2, "mlp:8") is None
    assert experiment.finished_evaluation(work, 1, 1, "mlp:16") is None
    assert experiment.finished_evaluation(work, 1, 1) is None  # the default is the set's own network, a ConvNet
    # and of the augmentation it trained with: the set's own (DC's), not DSA's that a *_dsa_eval variant asks for
    dsa = experiment.evaluation_augment({"augment": "dsa", "dataset": "mnist"})
    assert dsa == "dsa:color_crop_cutout_scale_rotate"
    assert experiment.evaluation_augment({"dataset": "mnist"}) is None
    with pytest.raises(ConfigError, match="unknown evaluation augmentation 'flip'"):
        experiment.evaluation_augment({"augment": "flip"})
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", done["eval_config"]["train"]["augment"]) == done
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", dsa) is None
    evaluate_workdir(work, num_models=1, epochs=1, model="mlp:8", data=data, progress=False, augment=dsa)
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", dsa) is not None
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None  # DSA's evaluation is not the default one
    # and of the protocol it trained by: IDC's (the *_idc_protocol variants) is not DC's, the default for this set
    evaluate_workdir(work, num_models=1, epochs=1, model="mlp:8", data=data, progress=False, protocol="idc")
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", protocol="idc")["protocol"] == "idc"
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", protocol="dc") is None
    evaluate_workdir(work, num_models=1, epochs=1, model="mlp:8", data=data, progress=False)
    done = json.loads((work / "eval.json").read_text())
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", protocol="dc") == done
    older = {k: v for k, v in done.items() if k != "protocol"}  # an eval.json from before it named its protocol
    (work / "eval.json").write_text(json.dumps(older))
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") == older  # was the set's default protocol's
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", protocol="idc") is None
    (work / "eval.json").write_text(json.dumps(done))
    with np.load(work / "synthetic.npz") as z:
        arrays = {k: z[k] for k in z.files}
    # and of the lr it trained at: an evaluation at a fixed lr is not the set's default one, nor one at another lr
    evaluate_workdir(work, num_models=1, epochs=1, model="mlp:8", data=data, progress=False,
                     train_overrides={"lr": 0.05})
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", train_overrides={"lr": 0.02}) is None
    at_lr = experiment.finished_evaluation(work, 1, 1, "mlp:8", train_overrides={"lr": 0.05})
    assert at_lr["per_set"][0]["config"]["train"]["lr"] == 0.05
    (work / "eval.json").write_text(json.dumps(done))
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8", train_overrides={"lr": 0.05}) is None
    write_npz(work / "synthetic.npz", **{**arrays, "images": arrays["images"] * 0.5})  # the set changed
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None
    write_npz(work / "synthetic.npz", **arrays)
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") == done
    write_npz(work / "synthetic.npz", **{k: v[:1] for k, v in arrays.items()})  # one of its two sets left
    assert experiment.finished_evaluation(work, 1, 1, "mlp:8") is None
