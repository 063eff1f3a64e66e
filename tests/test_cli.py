"""The `jaxdistill` command: a bad input is one line on stderr naming the problem, exit status 2, no traceback;
a good run distils and evaluates end to end.

Most tests call `jaxdistill.cli.main(argv)` in this process; one runs `python -m jaxdistill` as a user would.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxdistill.cli import main
from jaxdistill.data.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TINY = "cli_tiny"  # 4x4x1, 3 classes, 12 train / 6 test images (conftest.write_tiny_idx)


def cli(capsys, *argv):
    """(exit status, stdout, stderr) of `jaxdistill *argv`, run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(result, *words) -> str:
    """Exit status 2 and exactly one stderr line, 'jaxdistill: error: ...', holding each of `words`."""
    code, _, err = result
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("jaxdistill: error: "), line
    for word in words:
        assert str(word) in line, f"{word!r} not in {line!r}"
    assert code == 2, (code, line)
    return line


def distill_argv(workdir, data_dir, **flags):
    """A `distill` command line for the tiny dataset; a flag given as None is left out."""
    values = {"method": "random", "dataset": TINY, "ipc": 2, "seed": 0, "workdir": workdir, "data-dir": data_dir}
    values.update(flags)
    argv = ["distill"]
    for name, value in values.items():
        if value is not None:
            argv += [f"--{name}", str(value)]
    return argv + ["--no-progress"]


@pytest.fixture
def tiny(monkeypatch, tmp_path, clean_env, tiny_idx):
    """Register the tiny dataset (for this test only; before `main`, which reads the choices from REGISTRY) and
    return the folder holding its files."""
    data = tmp_path / "data"
    spec = tiny_idx(data, name=TINY)
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    return data


# ---- success -------------------------------------------------------------------------------------------------------


def test_distill_then_evaluate_end_to_end(tiny, tmp_path, capsys):
    work = tmp_path / "run"
    code, out, err = cli(capsys, *distill_argv(work, tiny))
    assert code == 0, err
    assert "Traceback" not in err
    assert str(work / "synthetic.npz") in out
    with np.load(work / "synthetic.npz") as z:
        images, labels, seeds = z["images"], z["labels"], z["seeds"]
    assert images.shape == (6, 4, 4, 1) and images.dtype == np.float32
    assert labels.shape == (6,) and np.bincount(labels, minlength=3).tolist() == [2, 2, 2]
    assert seeds.tolist() == [0]

    code, out, err = cli(capsys, "evaluate", work, "--models", 2, "--epochs", 2, "--augment", "none",
                         "--no-progress", "--data-dir", tiny)
    assert code == 0, err
    assert "Traceback" not in err
    assert "test accuracy" in out and str(work / "eval.json") in out
    result = json.loads((work / "eval.json").read_text())
    accs = result["accuracies"]
    assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    assert result["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert result["accuracy_std"] == pytest.approx(np.std(accs))
    assert result["eval_config"]["num_models"] == 2 and result["eval_config"]["train"]["epochs"] == 2
    assert result["eval_config"]["train"]["lr"] == pytest.approx(0.01)  # DC's protocol

    # --lr sets the networks' training lr, and a bad one is refused before anything runs.
    code, out, err = cli(capsys, "evaluate", work, "--models", 1, "--epochs", 1, "--augment", "none", "--lr", 0.05,
                         "--no-progress", "--data-dir", tiny)
    assert code == 0, err
    result = json.loads((work / "eval.json").read_text())
    assert result["eval_config"]["train"]["lr"] == pytest.approx(0.05)
    assert result["per_set"][0]["config"]["train"]["lr"] == pytest.approx(0.05)
    for bad in ("0", "-0.1", "nan", "fast"):
        assert_user_error(cli(capsys, "evaluate", work, "--lr", bad, "--no-progress", "--data-dir", tiny),
                          "--lr", repr(bad) if bad == "fast" else bad)

    # The finished workdir refuses a command with other settings and keeps its result.
    before = (work / "synthetic.npz").read_bytes()
    assert_user_error(cli(capsys, *distill_argv(work, tiny, ipc=1)), "different config", "ipc", work)
    assert (work / "synthetic.npz").read_bytes() == before


# ---- bad flags: refused by the parser, before anything is created --------------------------------------------------


@pytest.mark.parametrize("flags, words", [
    ({"method": "nope"}, ["--method", "'nope'"]),
    ({"dataset": "nope"}, ["--dataset", "'nope'"]),
    ({"ipc": 0}, ["--ipc", ">= 1", "got 0"]),
    ({"ipc": -3}, ["--ipc", ">= 1", "got -3"]),
    ({"ipc": "two"}, ["--ipc", "'two'"]),
    ({"ipc": None}, ["--ipc"]),
    ({"seed": None, "seeds": "0,x"}, ["--seeds", "'0,x'"]),
    ({"seed": None, "seeds": "1,1"}, ["distinct"]),
], ids=["unknown-method", "unknown-dataset", "ipc-0", "ipc-negative", "ipc-not-int", "ipc-missing",
        "seeds-not-int", "seeds-repeated"])
def test_bad_distill_flags(tiny, tmp_path, capsys, flags, words):
    work = tmp_path / "run"
    assert_user_error(cli(capsys, *distill_argv(work, tiny, **flags)), *words)
    assert not work.exists()


def _data_dir_argv(command, data_dir, tmp_path):
    if command == "distill":
        return distill_argv(tmp_path / "run", data_dir)
    if command == "evaluate":
        return ["evaluate", tmp_path, "--data-dir", data_dir, "--no-progress"]
    return ["datasets", "--data-dir", data_dir, "--cache-dir", tmp_path / "cache"]


@pytest.mark.parametrize("command", ["distill", "evaluate", "datasets"])
@pytest.mark.parametrize("kind", ["nonexistent", "regular-file"])
def test_data_dir_that_is_not_a_folder(tiny, tmp_path, capsys, command, kind):
    data_dir = tmp_path / "no-such-folder"
    if kind == "regular-file":
        data_dir = tmp_path / "a-file"
        data_dir.write_text("not a folder")
    assert_user_error(cli(capsys, *_data_dir_argv(command, data_dir, tmp_path)), "--data-dir", data_dir)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads any folder, so it cannot be made unreadable")
def test_unreadable_data_dir(tiny, tmp_path, capsys):
    tiny.chmod(0)
    try:
        assert_user_error(cli(capsys, *distill_argv(tmp_path / "run", tiny)), tiny)
    finally:
        tiny.chmod(0o755)


def test_data_dir_without_read_permission(tiny, tmp_path, capsys, monkeypatch):
    # Root reads everything, so simulate the permission check failing for this folder only.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tiny else real_access(p, mode))
    assert_user_error(cli(capsys, *distill_argv(tmp_path / "run", tiny)), "not a readable directory")


@pytest.mark.parametrize("broken", ["synthetic.npz", "config.json"])
def test_evaluate_with_a_damaged_workdir_names_the_damaged_file(tiny, tmp_path, capsys, broken):
    work = tmp_path / "run"
    assert cli(capsys, *distill_argv(work, tiny))[0] == 0
    path = work / broken
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # cut short, as a crash or full disk would
    assert_user_error(cli(capsys, "evaluate", work, "--no-progress", "--data-dir", tiny), path)


# ---- bad inputs found while running ----------------------------------------------------------------------------------


def test_corrupt_dataset_file(tiny, tmp_path, capsys):
    victim = tiny / "train-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert_user_error(cli(capsys, *distill_argv(tmp_path / "run", tiny)), "corrupt", victim, "sha256")
    assert not (tmp_path / "run" / "synthetic.npz").exists()


def test_data_dir_without_the_files(tiny, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(cli(capsys, *distill_argv(tmp_path / "run", empty)), "missing", "train-images-idx3-ubyte.gz")


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_workdir_that_cannot_be_created(tiny, tmp_path, capsys, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    work = blocker / "run" if where == "under-a-file" else blocker
    assert_user_error(cli(capsys, *distill_argv(work, tiny)), "workdir", work)
    assert blocker.read_text() == "in the way"


@pytest.mark.parametrize("case", ["empty", "nonexistent", "failed-distill"])
def test_evaluate_without_synthetic_set(tiny, tmp_path, capsys, case):
    work = tmp_path / "run"
    missing = "config.json"
    if case == "empty":
        work.mkdir()
    elif case == "failed-distill":  # a distill that stopped on missing data leaves no workdir behind
        empty = tmp_path / "empty"
        empty.mkdir()
        assert_user_error(cli(capsys, *distill_argv(work, empty)), "missing")
        assert not work.exists()
    line = assert_user_error(cli(capsys, "evaluate", work, "--no-progress", "--data-dir", tiny),
                             work / missing, "not found")
    assert "jaxdistill distill" in line
    assert not (work / "eval.json").exists()


def test_workdir_with_a_different_config(tiny, tmp_path, capsys):
    work = tmp_path / "run"
    assert cli(capsys, *distill_argv(work, tiny, seed=0))[0] == 0
    config = (work / "config.json").read_text()
    assert_user_error(cli(capsys, *distill_argv(work, tiny, seed=1)), "different config", "seeds", work)
    assert (work / "config.json").read_text() == config


# ---- datasets -------------------------------------------------------------------------------------------------------


def test_datasets_lists_without_downloading(clean_env, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out, err = cli(capsys, "datasets", "--cache-dir", cache)
    assert code == 0 and err == ""
    table, counts = out.split("\n\n")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert {"mnist", "fashion_mnist", "cifar10", "mhist"} <= set(rows)
    assert "mhist" in counts and "train HP 1545 / SSA 630 (2.45:1); test HP 617 / SSA 360 (1.71:1) [official]" in counts
    assert "never downloaded" in rows["mhist"] and rows["mhist"].split()[3] == "missing"
    assert "28x28x1" in rows["mnist"] and "not downloaded yet" in rows["mnist"]
    assert str(cache / "mnist") in rows["mnist"]
    assert not cache.exists()
    assert not (tmp_path / "env-cache").exists()


def test_datasets_reports_a_corrupt_file(clean_env, monkeypatch, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"not the MNIST labels")
    monkeypatch.setenv("JAXDISTILL_DATA", str(data))
    code, out, err = cli(capsys, "datasets", "--cache-dir", tmp_path / "cache")
    assert code == 0 and err == ""
    (row,) = [line for line in out.split("\n\n")[0].splitlines() if line.split()[0] == "mnist"]
    assert row.split()[3] == "corrupt" and "train-labels-idx1-ubyte.gz" in row
    assert not (tmp_path / "cache").exists()


def test_datasets_verifies_a_data_dir(tiny, tmp_path, capsys):
    code, out, err = cli(capsys, "datasets", "--data-dir", tiny, "--cache-dir", tmp_path / "cache")
    assert code == 0 and err == ""
    (row,) = [line for line in out.split("\n\n")[0].splitlines() if line.split()[0] == TINY]
    assert row.split()[1:4] == ["4x4x1", "3", "verified"] and str(tiny) in row


@pytest.mark.parametrize("case", ["applied", "backend_started", "off"])
def test_verbose_says_which_cpu_settings_the_command_applied(clean_env, monkeypatch, tmp_path, capsys, case):
    from jaxdistill import cpu_tuning
    for name in ("XLA_FLAGS", cpu_tuning.APPLIED_ENV):  # whatever main() writes there is undone after the test
        monkeypatch.setenv(name, "")
    for name in ("GLIBC_TUNABLES", "JAXDISTILL_MALLOC_TUNING", "JAXDISTILL_CPU_TUNING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu_tuning, "backend_started", lambda: case == "backend_started")
    if case == "off":
        monkeypatch.setenv("JAXDISTILL_CPU_TUNING", "0")
    code, out, err = cli(capsys, "--verbose", "datasets", "--cache-dir", tmp_path / "cache")
    assert code == 0 and "mnist" in out
    (line,) = [line for line in err.splitlines() if line.startswith("cpu tuning:")]
    assert line == {"applied": f"cpu tuning: XLA_FLAGS += {cpu_tuning.XLA_CPU_FLAGS[0]}; "
                               "allocator untuned (no restart, or not glibc Linux)",  # a call from Python: no restart
                    "backend_started": "cpu tuning: not applied (jax's backend had already started in this process)",
                    "off": "cpu tuning: off (JAXDISTILL_CPU_TUNING=0)"}[case]
    assert "compilation cache: " in err


# ---- as a user runs it ----------------------------------------------------------------------------------------------


def test_no_traceback_reaches_the_user(clean_env, tmp_path):
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    for f in REGISTRY["mnist"].files:
        (data / "mnist" / f.filename).write_bytes(b"truncated download")
    env = {**os.environ, "JAXDISTILL_DATA": str(data)}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdistill", "distill", "--method", "random", "--dataset", "mnist", "--ipc", "1",
         "--workdir", str(tmp_path / "run"), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("jaxdistill: error: ") and "corrupt" in lines[0] and str(data / "mnist") in lines[0]
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert not (tmp_path / "env-cache").exists()  # nothing was downloaded


# ---- kd -------------------------------------------------------------------------------------------------------------


def kd_argv(workdir, data_dir, *extra):
    return ["kd", "--dataset", TINY, "--workdir", workdir, "--data-dir", data_dir, "--teacher", "mlp:8",
            "--student", "mlp:4", "--teacher-epochs", 2, "--student-epochs", 2, "--batch-size", 4, "--seeds", "0,1",
            "--temperature", 2, "--no-progress", *extra]


@pytest.mark.slow
def test_kd_runs_and_writes_a_result(tiny, tmp_path, capsys):
    code, out, err = cli(capsys, *kd_argv(tmp_path / "kd", tiny, "--sweep", "4:0.5"))
    assert code == 0, err
    assert "KD gain over the student alone" in out and "student + KD" in out
    rec = json.loads((tmp_path / "kd" / "result.json").read_text())
    assert len(rec["teacher"]["test_errors"]) == 2
    assert [(s["temperature"], s["alpha"]) for s in rec["sweep"]] == [(2.0, 0.1), (4.0, 0.5)]
    assert rec["config"]["teacher"]["train"]["augment"] == "jitter"
    # with --outputs-dir, a rerun in a fresh workdir (the first one's checkpoints gone) trains nothing again
    code, _, err = cli(capsys, *kd_argv(tmp_path / "a", tiny, "--outputs-dir", tmp_path / "kept"))
    assert code == 0, err
    shutil.rmtree(tmp_path / "a")
    code, _, err = cli(capsys, *kd_argv(tmp_path / "b", tiny, "--outputs-dir", tmp_path / "kept"))
    assert code == 0, err
    assert not [p for p in (tmp_path / "b").iterdir() if p.is_dir()]  # no phase trained, so no checkpoint folder
    assert (tmp_path / "kept" / "teacher_logits" / "seed1.npz").exists()


@pytest.mark.parametrize("extra, words", [
    (("--alpha", "1.5"), ["alpha", "1.5"]),
    (("--temperature", "0"), ["temperature", "> 0"]),
    (("--temperature", "nan"), ["--temperature", "finite number > 0", "nan"]),
    (("--lr", "0"), ["--lr", "> 0"]),
    (("--lr", "-0.05"), ["--lr", "-0.05"]),
    (("--seeds", "0"), ["at least 2 seeds"]),
    (("--student", "resnet:3"), ["unknown model", "resnet"]),
    (("--sweep", "2-0.5"), ["--sweep", "T:ALPHA"]),
    (("--omit-class", "9"), ["omit_class 9"]),
], ids=["alpha", "temperature", "temperature-nan", "lr", "lr-negative", "one-seed", "model", "sweep", "omit-class"])
def test_bad_kd_flags(tiny, tmp_path, capsys, extra, words):
    assert_user_error(cli(capsys, *kd_argv(tmp_path / "kd", tiny, *extra)), *words)


# ---- experts and trajectory matching ----------------------------------------------------------------------------


@pytest.mark.slow
def test_experts_then_mtt_and_datm_distillation(tiny, tmp_path, capsys):
    buffer = tmp_path / "buffer"
    code, out, err = cli(capsys, "experts", "--dataset", TINY, "--buffer", buffer, "--num-experts", 2, "--epochs", 3,
                         "--model", "convnet:width=4,depth=1", "--augment", "none", "--data-dir", tiny,
                         "--no-progress")
    assert code == 0, err
    assert "2 complete expert(s)" in out
    code, out, _ = cli(capsys, "experts", "--dataset", TINY, "--buffer", buffer, "--verify")
    assert code == 0 and "intact" in out
    common = ["--set", "syn_steps=2", "--set", "expert_epochs=1", "--set", "max_start_epoch=2",
              "--set", "model=convnet:depth=1,width=4", "--set", "dsa_strategy=none",
              "--buffer", buffer, "--iterations", 2]
    code, out, err = cli(capsys, *distill_argv(tmp_path / "mtt", tiny, method="mtt"), *common)
    assert code == 0, err
    with np.load(tmp_path / "mtt" / "synthetic.npz") as z:
        learned = float(z["lr"][0])  # the learned syn_lr, moved from its initial 0.01 by lr_lr steps
    code, out, err = cli(capsys, "evaluate", tmp_path / "mtt", "--models", 1, "--epochs", 1, "--data-dir", tiny,
                         "--no-progress")
    assert code == 0, err
    evaluated = json.loads((tmp_path / "mtt" / "eval.json").read_text())["per_set"][0]["config"]["train"]["lr"]
    assert evaluated == pytest.approx(learned) and learned != 0.01
    code, out, err = cli(capsys, "evaluate", tmp_path / "mtt", "--models", 1, "--epochs", 1, "--data-dir", tiny,
                         "--lr", 0.02, "--no-progress")  # --lr replaces the learned lr
    assert code == 0, err
    evaluated = json.loads((tmp_path / "mtt" / "eval.json").read_text())["per_set"][0]["config"]["train"]["lr"]
    assert evaluated == pytest.approx(0.02)
    code, out, err = cli(capsys, *distill_argv(tmp_path / "datm", tiny, method="datm"), *common,
                         "--set", "current_max_start_epoch=1", "--set", "candidate_pool=3")
    assert code == 0, err
    with np.load(tmp_path / "datm" / "synthetic.npz") as z:
        assert z["labels"].shape == (6, 3)  # soft labels
    code, out, err = cli(capsys, *distill_argv(tmp_path / "mtt_zca", tiny, method="mtt"), *common, "--zca")
    assert_user_error((code, out, err), "trained without ZCA")
    (buffer / "expert_0001" / "0002").rename(buffer / "moved")
    code, out, _ = cli(capsys, "experts", "--dataset", TINY, "--buffer", buffer, "--verify")
    assert code == 2 and "expert_0001/0002 is missing" in out and "1 problem(s)" in out


@pytest.mark.parametrize("lr, words", [("0", ["--lr", "> 0"]), ("-0.01", ["--lr", "-0.01"]), ("nan", ["--lr", "nan"]),
                                       ("fast", ["--lr", "expected a number", "fast"])],
                         ids=["zero", "negative", "nan", "text"])
def test_bad_expert_lr_is_refused_before_a_buffer_is_made(tiny, tmp_path, capsys, lr, words):
    buffer = tmp_path / "buffer"
    assert_user_error(cli(capsys, "experts", "--dataset", TINY, "--buffer", buffer, "--epochs", 1, "--lr", lr,
                          "--data-dir", tiny, "--no-progress"), *words)
    assert not buffer.exists()


@pytest.mark.parametrize("text, parsed", [("clip_to_real=true", True), ("soft_labels=False", False),
                                          ("syn_steps=40", 40), ("lr_img=1e3", 1000.0), ("init=noise", "noise"),
                                          ("model=convnet:depth=4", "convnet:depth=4")])
def test_set_values_are_read_as_a_shell_user_writes_them(text, parsed):
    from jaxdistill.cli import _setting
    name, value = _setting(text)
    assert name == text.partition("=")[0] and value == parsed and type(value) is type(parsed)


@pytest.mark.parametrize("argv, words", [
    (["--method", "dc", "--buffer", "b"], ["has no setting", "buffer_dir"]),
    (["--method", "mtt"], ["buffer_dir", "jaxdistill experts"]),
    (["--method", "random", "--set", "ipcs"], ["--set", "NAME=VALUE"]),
], ids=["buffer-for-dc", "mtt-without-buffer", "bad-set"])
def test_bad_trajectory_flags(tiny, tmp_path, capsys, argv, words):
    base = distill_argv(tmp_path / "w", tiny, method=None)
    assert_user_error(cli(capsys, *base, *argv), *words)


def test_zca_distillation_is_recorded_and_its_evaluation_whitens_too(tiny, tmp_path, capsys, monkeypatch):
    from jaxdistill import runner
    seen = []
    real_load = runner.load_real
    monkeypatch.setattr(runner, "load_real", lambda *a, **k: seen.append(k.get("zca")) or real_load(*a, **k))
    plain, white = tmp_path / "plain", tmp_path / "white"
    assert cli(capsys, *distill_argv(plain, tiny))[0] == 0
    code, _, err = cli(capsys, *distill_argv(white, tiny), "--zca")
    assert code == 0, err
    assert json.loads((white / "config.json").read_text())["zca"] is True
    assert "zca" not in json.loads((plain / "config.json").read_text())
    with np.load(plain / "synthetic.npz") as a, np.load(white / "synthetic.npz") as b:
        assert not np.allclose(a["images"], b["images"])  # the same selection, other pixels
    code, _, err = cli(capsys, "evaluate", white, "--models", 1, "--epochs", 1, "--data-dir", tiny, "--no-progress")
    assert code == 0, err
    assert seen == [False, True, True]  # distil plain, distil whitened, evaluate whitened


@pytest.mark.parametrize("settings, words", [
    (["init=real"], ["copies private training images", "init 'noise'"]),
    (["epsilon=1", "delta=0.5"], ["not below 1/N"]),
    (["epsilon=1", "noise_multiplier=0.01"], ["above the target"]),
], ids=["real-init", "delta-too-large", "too-little-noise"])
def test_a_private_run_that_would_leak_or_overspend_is_refused_in_one_line(tiny, tmp_path, capsys, settings, words):
    work = tmp_path / "run"
    argv = distill_argv(work, tiny, method="psg", ipc=1, iterations=2)
    for setting in settings + ["batch_real=2"]:
        argv += ["--set", setting]
    assert_user_error(cli(capsys, *argv), *words)
    assert not work.exists()


def test_report_checks_and_updates_the_readme_tables(capsys, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "dc_mnist_ipc1.json").write_text(json.dumps({
        "experiment": "gradient_matching", "variant": "ipc1", "config": {"method": "dc", "dataset": "mnist", "ipc": 1},
        "result": {"accuracy_mean": 0.9, "accuracy_std": 0.01}}))
    readme = tmp_path / "README.md"
    blocks = "".join(f"<!-- report:{n} -->\n<!-- /report:{n} -->\n"
                     for n in ("comparison_mnist", "comparison_mhist", "mnist", "mhist", "cross_architecture", "training_cost"))
    readme.write_text(blocks)
    code, _, err = cli(capsys, "report", results, "--check-readme", readme)
    assert code == 1 and "disagree" in err
    assert cli(capsys, "report", results, "--update-readme", readme)[0] == 0
    assert "90.00 ± 1.00" in readme.read_text()
    assert cli(capsys, "report", results, "--check-readme", readme)[0] == 0
    readme.write_text("no blocks\n")
    assert_user_error(cli(capsys, "report", results, "--check-readme", readme), "report:comparison_mnist")
    code, out, _ = cli(capsys, "report", results, "--out", tmp_path / "out")
    assert code == 0 and "| DC" in out and (tmp_path / "out" / "comparison.csv").is_file()
    assert_user_error(cli(capsys, "report", tmp_path / "out" / "mnist_accuracy_vs_ipc.png"), "directory")
