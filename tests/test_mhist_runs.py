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
