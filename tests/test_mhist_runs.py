"""Every method on MHIST through the same commands: `jaxdistill distill --dataset mhist --data-dir FOLDER` and
`jaxdistill evaluate` on a tiny stand-in (32 px, tiny settings), with the records an imbalanced problem needs."""
import json
import warnings

import pytest

from jaxdistill.cli import main
from tests.helpers import TEST_POLICY, TINY_SETTINGS

pytestmark = pytest.mark.filterwarnings("ignore::jaxdistill.errors.DataWarning")  # tiny stand-in: not official


@pytest.fixture(scope="module")
def buffer(tiny_mhist_standin, tmp_path_factory):
    """One tiny expert trajectory on the stand-in, for MTT and DATM."""
    path = tmp_path_factory.mktemp("mhist_experts") / "buffer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["experts", "--dataset", "mhist", "--data-dir", str(tiny_mhist_standin), "--buffer", str(path),
                     "--num-experts", "2", "--epochs", "2", "--model", TINY_SETTINGS["mtt"]["model"],
                     "--resolution", "32", "--no-progress"])
    assert code == 0
    return path


def settings_argv(method):
    out = []
    for name, value in TINY_SETTINGS.get(method, {}).items():
        out += ["--set", f"{name}={value}"]
    for name, value in TEST_POLICY.items():
        out += ["--policy", f"{name}={value}"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["random", "dc", "dsa", "mtt", "datm"])
def test_distill_and_evaluate_on_the_standin(method, tiny_mhist_standin, tmp_path, capsys, request):
    work = tmp_path / "run"
    argv = ["distill", "--method", method, "--dataset", "mhist", "--ipc", "1", "--data-dir", str(tiny_mhist_standin),
            "--workdir", str(work), "--iterations", "1", "--resolution", "32", "--no-progress",
            *settings_argv(method)]
    if method in ("mtt", "datm"):
        argv += ["--buffer", str(request.getfixturevalue("buffer"))]
    assert main(argv) == 0, capsys.readouterr().err
    run = json.loads((work / "run.json").read_text())
    assert run["data"]["stand_in"] is True and len(run["data"]["source_sha256"]) == 64
    assert run["data"]["image_shape"] == [32, 32, 3] and run["config"]["resolution"] == 32
    evaluate = ["evaluate", str(work), "--models", "1", "--epochs", "1", "--no-progress"]
    if method == "random":
        evaluate += ["--model", "convnet:depth=2,width=8"]
    assert main(evaluate) == 0, capsys.readouterr().err  # the data folder comes from the distill run's record
    out = capsys.readouterr().out
    assert "balanced_accuracy" in out and "roc_auc" in out
    rec = json.loads((work / "eval.json").read_text())
    assert rec["data"]["stand_in"] is True
    means = rec["metrics_mean"]
    assert {"balanced_accuracy", "sensitivity", "specificity", "f1", "roc_auc"} <= set(means)
    (network,) = [m for s in rec["per_set"] for m in s["metrics"]]
    assert sum(map(sum, network["confusion_matrix"])) == sum(run["data"]["test_counts"])
    assert rec["confusion_matrix_total"] == network["confusion_matrix"]  # one network: what the figure draws


@pytest.mark.slow
def test_the_full_data_baseline_opens_a_workdir_and_resumes_network_by_network(tiny_mhist_standin, tmp_path,
                                                                                 monkeypatch, capsys):
    # It once trained outside any workdir: a crash lost every network, and CI's smoke check found no config.json.
    from jaxdistill import experiment
    module = experiment.load_experiment(experiment.find_experiment("mhist_baselines"))
    monkeypatch.setitem(module.VARIANTS, "smoke", {**module.VARIANTS["smoke"], "models": 2})
    argv = ["--baseline", "full_data", "--variant", "smoke", "--data-dir", str(tiny_mhist_standin), "--no-progress"]

    def run(workdir):
        experiment.run_experiment(module, [*argv, "--workdir", str(workdir)], "mhist_baselines")
        return capsys.readouterr().out

    whole = run(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["kind"] == "mhist_full_data"
    import jaxdistill.runner as runner
    original, trained, done = runner.evaluate_set, [], []

    def crash_after_the_first_network(*args, on_network, **kw):
        def keep(per_network, wall_time_s):
            on_network(per_network, wall_time_s)
            trained.append(len(per_network))
            if len(per_network) == 1:
                raise KeyboardInterrupt
        return original(*args, on_network=keep, **kw)

    monkeypatch.setattr(runner, "evaluate_set", crash_after_the_first_network)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")

    def count(*args, **kw):
        done.append(len(kw["done"]))
        return original(*args, **kw)

    monkeypatch.setattr(runner, "evaluate_set", count)
    assert run(tmp_path / "b") == whole  # the same metrics as the uninterrupted run
    assert trained == [1] and done == [1]  # the rerun trained only the second network
    assert run(tmp_path / "b") == whole and done == [1]  # a finished run trains nothing
