import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdistill import runner
from jaxdistill.errors import ConfigError
from jaxdistill.methods.base import single_stage
from jaxdistill.runner import distill, evaluate_workdir, load_synthetic
from tests.helpers import SMALL_MODEL, tiny_loaded

DATA = tiny_loaded()
ROOT = Path(__file__).resolve().parents[1]


def walk(workdir, **kw):
    kw.setdefault("iterations", 6)
    return distill("test_walk", "tiny", 1, [0, 1], workdir, data=DATA, checkpoint_every=2, log_every=1,
                   progress=False, **kw)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    walk(workdir)
    return load_synthetic(workdir)


def test_random_selection_picks_real_training_images(tmp_path):
    distill("random", "tiny", 2, 0, tmp_path, data=DATA, progress=False)
    config, images, labels, seeds = load_synthetic(tmp_path)
    assert images.shape == (1, 4, 8, 8, 1) and seeds == [0]
    assert labels[0].tolist() == [0, 0, 1, 1]
    train = np.asarray(DATA.train.images)
    train_labels = np.asarray(DATA.train.labels)
    for img, lab in zip(images[0], labels[0]):
        matches = np.flatnonzero(np.all(train == img, axis=(1, 2, 3)))
        assert len(matches) == 1 and train_labels[matches[0]] == lab
    assert (tmp_path / "config.json").exists() and (tmp_path / "run.json").exists()


class Crash(Exception):
    """Raised inside a run to interrupt it, as a crash would."""


def crash_at(iteration):
    def hook(i):
        if i == iteration:
            raise Crash
    return hook


def test_interrupted_run_resumes_to_the_same_result(tmp_path, uninterrupted):
    with pytest.raises(Crash):
        walk(tmp_path, on_iteration=crash_at(5))
    assert not (tmp_path / "synthetic.npz").exists()
    record = walk(tmp_path)
    assert record["resumed_from"] == 4  # the checkpoint before the crash
    _, images, _, _ = load_synthetic(tmp_path)
    np.testing.assert_array_equal(images, uninterrupted[1])
    steps = [m["step"] for m in __import__("jaxdistill.checkpoint", fromlist=["RunDir"]).RunDir(tmp_path).read_metrics()]
    assert steps == [1, 2, 3, 4, 5, 6]  # iteration 5's line, lost work, was dropped and redone once


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_result(tmp_path, uninterrupted):
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.helpers import tiny_loaded\n"
        "from jaxdistill.runner import distill\n"
        "distill('test_walk', 'tiny', 1, [0, 1], sys.argv[1], data=tiny_loaded(), iterations=6, checkpoint_every=2,"
        " log_every=1, progress=False, on_iteration=lambda i: time.sleep(float(sys.argv[2])))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), "1.0"])
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "checkpoints" / "2").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "checkpoints" / "2").exists() and not (tmp_path / "synthetic.npz").exists()
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), "0"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    _, images, _, _ = load_synthetic(tmp_path)
    np.testing.assert_array_equal(images, uninterrupted[1])


def test_workdir_with_another_config_is_refused(tmp_path):
    walk(tmp_path, iterations=2)
    with pytest.raises(ConfigError, match="different config.*iterations"):
        walk(tmp_path, iterations=3)


def test_run_older_than_a_config_field_resumes_when_the_field_keeps_its_default(tmp_path, uninterrupted):
    # a run begun before `step_size` existed: its config.json lacks the field, whose default is what it did
    with pytest.raises(Crash):
        walk(tmp_path, on_iteration=crash_at(5))
    config_path = tmp_path / "config.json"
    stored = json.loads(config_path.read_text())
    del stored["method_config"]["step_size"]
    config_path.write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match="step_size: workdir has 0.1, this command has 0.2"):
        walk(tmp_path, method_overrides={"step_size": 0.2})  # another value is another run
    record = walk(tmp_path)
    assert record["resumed_from"] == 4
    np.testing.assert_array_equal(load_synthetic(tmp_path)[1], uninterrupted[1])
    assert json.loads(config_path.read_text())["method_config"]["step_size"] == 0.1  # the record is completed


@pytest.mark.parametrize("parallel", ["sequential", "vmap"])
def test_resuming_a_finished_run_compiles_no_step(tmp_path, monkeypatch, parallel):
    # resuming a finished run (to go on to its evaluation) must not pay the step's compile, minutes for DSA
    walk(tmp_path, iterations=2, parallel=parallel)
    finished = load_synthetic(tmp_path)[1]
    real_make_method = runner.make_method

    def untraceable_step(*args):
        raise AssertionError("the step was traced for a run with nothing left to do")

    monkeypatch.setattr(runner, "make_method",
                        lambda *a, **kw: real_make_method(*a, **kw)._replace(step=untraceable_step,
                                                                             loop=single_stage(untraceable_step)))
    record = walk(tmp_path, iterations=2, parallel=parallel)
    assert record["resumed_from"] == 2
    np.testing.assert_array_equal(load_synthetic(tmp_path)[1], finished)
    with pytest.raises(AssertionError, match="traced"):  # the patch does reach a run with work left
        walk(tmp_path / "fresh", iterations=2, parallel=parallel)


def test_evaluate_writes_per_network_accuracies(tmp_path):
    distill("random", "tiny", 3, [0, 1], tmp_path, data=DATA, progress=False)
    res = evaluate_workdir(tmp_path, num_models=2, epochs=20, augment="none", data=DATA, progress=False,
                           model=SMALL_MODEL)
    assert len(res["accuracies"]) == 4 and res["num_sets"] == 2
    assert res["accuracy_mean"] == pytest.approx(np.mean(res["accuracies"]))
    assert res["accuracy_std"] == pytest.approx(np.std(res["accuracies"]))
    assert res["accuracy_mean"] > 0.9  # separable toy classes, real images: fresh nets must learn them
    assert (tmp_path / "eval.json").exists()


def test_evaluation_stopped_after_a_set_resumes_with_the_next_and_redoes_a_changed_config(tmp_path, monkeypatch):
    import jaxdistill.runner as runner
    distill("random", "tiny", 3, [0, 1], tmp_path, data=DATA, progress=False)
    kw = dict(num_models=2, augment="none", data=DATA, progress=False, model=SMALL_MODEL)
    real_evaluate_set = runner.evaluate_set
    evaluated = []

    def evaluate_then_crash_on(crash_call):
        def fake(images, labels, *args, **kwargs):
            evaluated.append(kwargs.get("config", args[-1] if args else None).train.epochs)
            if len(evaluated) == crash_call:
                raise Crash
            return real_evaluate_set(images, labels, *args, **kwargs)
        return fake

    partial = tmp_path / "eval_partial.json"
    monkeypatch.setattr(runner, "evaluate_set", evaluate_then_crash_on(2))
    with pytest.raises(Crash):
        evaluate_workdir(tmp_path, epochs=20, **kw)
    assert list(json.loads(partial.read_text())) == ["0"]  # the first set's result was kept

    evaluated.clear()  # another config: the kept result is not reused
    with pytest.raises(Crash):
        evaluate_workdir(tmp_path, epochs=21, **kw)
    assert evaluated == [21, 21]
    kept = json.loads(partial.read_text())["0"]
    assert kept["config"]["train"]["epochs"] == 21

    evaluated.clear()
    monkeypatch.setattr(runner, "evaluate_set", evaluate_then_crash_on(None))
    res = evaluate_workdir(tmp_path, epochs=21, **kw)
    assert evaluated == [21]  # only the second set was trained
    assert res["per_set"][0] == kept and res["per_set"][1]["seed"] == 1
    assert len(res["accuracies"]) == 4 and not partial.exists()


def test_evaluation_stopped_after_a_network_resumes_with_the_next_to_the_same_accuracies(tmp_path, monkeypatch):
    import shutil

    import jaxdistill.evaluate as evaluate
    distill("random", "tiny", 3, [0], tmp_path / "a", data=DATA, progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    kw = dict(num_models=3, epochs=20, augment="none", data=DATA, progress=False, model=SMALL_MODEL)
    whole = evaluate_workdir(tmp_path / "a", **kw)

    real_test = evaluate.test_metrics
    tested = []

    def test_then_crash_on(crash_call):
        def fake(model, states, *args, **kwargs):
            tested.append(int(states.step.shape[0]))
            if len(tested) == crash_call:
                raise Crash
            return real_test(model, states, *args, **kwargs)
        return fake

    monkeypatch.setattr(evaluate, "test_metrics", test_then_crash_on(2))
    with pytest.raises(Crash):
        evaluate_workdir(tmp_path / "b", **kw)
    kept = json.loads((tmp_path / "b" / "eval_partial.json").read_text())["0"]
    assert kept["partial"] and kept["accuracies"] == whole["accuracies"][:1]  # the first network's result was kept

    tested.clear()
    monkeypatch.setattr(evaluate, "test_metrics", test_then_crash_on(None))
    resumed = evaluate_workdir(tmp_path / "b", **kw)
    assert tested == [1, 1]  # only the second and third networks were trained
    assert resumed["accuracies"] == whole["accuracies"]
    assert resumed["per_set"][0]["wall_time_s"] >= kept["wall_time_s"]
    assert not (tmp_path / "b" / "eval_partial.json").exists()

    tested.clear()  # kept accuracies of another config are not reused
    evaluate_workdir(tmp_path / "b", **{**kw, "epochs": 21})
    assert tested == [1, 1, 1]


def test_an_evaluation_grows_to_more_networks_training_only_the_new_ones(tmp_path, monkeypatch):
    # 1 network per set evaluated first, then 3: the first network of each set is the same one (network k trains
    # from the same key whatever the number), so only 2 more train and the result is that of 3 from scratch
    import shutil

    import jaxdistill.evaluate as evaluate
    distill("random", "tiny", 3, [0, 1], tmp_path / "a", data=DATA, progress=False)
    for copy in ("b", "c"):
        shutil.copytree(tmp_path / "a", tmp_path / copy)
    kw = dict(epochs=20, augment="none", data=DATA, progress=False, model=SMALL_MODEL)
    whole = evaluate_workdir(tmp_path / "a", num_models=3, **kw)
    few = evaluate_workdir(tmp_path / "b", num_models=1, **kw)
    assert few["accuracies"] == [whole["accuracies"][0], whole["accuracies"][3]]
    real_test, tested = evaluate.test_metrics, []

    def counted(model, states, *args, **kwargs):
        tested.append(int(states.step.shape[0]))
        return real_test(model, states, *args, **kwargs)

    monkeypatch.setattr(evaluate, "test_metrics", counted)
    grown = evaluate_workdir(tmp_path / "b", num_models=3, **kw)  # from the workdir's eval.json of 1 network
    assert tested == [1, 1, 1, 1]  # two new networks per set
    assert grown["accuracies"] == whole["accuracies"]
    assert grown["per_set"][0]["wall_time_s"] >= few["per_set"][0]["wall_time_s"]
    # the first networks known from elsewhere (e.g. a record), given with `first`
    first = [{"metrics": r["metrics"], "wall_time_s": r["wall_time_s"]} for r in few["per_set"]]
    tested.clear()
    assert evaluate_workdir(tmp_path / "c", num_models=3, first=first, **kw)["accuracies"] == whole["accuracies"]
    assert tested == [1, 1, 1, 1]
    with pytest.raises(ConfigError, match="1 sets' first networks given for the 2 sets"):
        evaluate_workdir(tmp_path / "c", num_models=3, first=first[:1], **kw)
    tested.clear()  # networks of another evaluation (here: more epochs) are not taken for the first ones
    more = evaluate_workdir(tmp_path / "c", num_models=4, **{**kw, "epochs": 21})
    assert tested == [1] * 8
    tested.clear()  # and fewer networks than a finished evaluation's are its first ones: nothing trains
    fewer = evaluate_workdir(tmp_path / "c", num_models=2, **{**kw, "epochs": 21})
    assert tested == [] and fewer["accuracies"] == [*more["accuracies"][:2], *more["accuracies"][4:6]]
    tested.clear()  # an evaluation stopped after 3 of 4 networks goes on as one of 5 with what it has
    shutil.rmtree(tmp_path / "c")
    shutil.copytree(tmp_path / "a", tmp_path / "c")

    def crash_on_the_fourth(*args, **kwargs):
        if len(tested) == 3:
            raise Crash
        return counted(*args, **kwargs)

    monkeypatch.setattr(evaluate, "test_metrics", crash_on_the_fourth)
    with pytest.raises(Crash):
        evaluate_workdir(tmp_path / "c", num_models=4, **{**kw, "epochs": 21})
    monkeypatch.setattr(evaluate, "test_metrics", counted)
    tested.clear()  # (given one network per set, the stopped evaluation's three of the first set count more)
    one_each = [{"metrics": r["metrics"][:1], "wall_time_s": 1.0} for r in more["per_set"]]
    resumed = evaluate_workdir(tmp_path / "c", num_models=5, first=one_each, **{**kw, "epochs": 21})
    assert resumed["accuracies"][:4] == more["accuracies"][:4] and resumed["accuracies"][5:9] == more["accuracies"][4:]
    assert len(tested) == 2 + 4  # the first set's 4th and 5th networks, the second set's 2nd to 5th
    from jax._src.config import threefry_partitionable
    with threefry_partitionable(False):  # where keys depend on their number, an eval.json's networks are not reused
        tested.clear()
        evaluate_workdir(tmp_path / "c", num_models=4, **{**kw, "epochs": 21})
        assert tested == [1] * 8  # (with it on: none, the first 4 of the 5 evaluated)


def test_a_vmapped_evaluation_trains_only_the_networks_not_yet_evaluated():
    from jaxdistill.evaluate import EvalConfig, evaluate_set
    from jaxdistill.train import TrainConfig
    images, labels = DATA.train.images[:4], DATA.train.labels[:4]
    cfg = EvalConfig(num_models=3, model=SMALL_MODEL,
                     train=TrainConfig(epochs=5, augment="none", parallel="vmap"))
    steps, seen = [], []
    rec = evaluate_set(images, labels, DATA.test_images, DATA.test_labels, 2, cfg, progress=steps.append,
                       done=[0.25], done_wall_time_s=7.0, on_network=lambda accs, wall: seen.append(len(accs)))
    assert rec["accuracies"][0] == 0.25 and len(rec["accuracies"]) == 3
    assert sum(steps) == 2 * 5 and seen == [3]  # two networks of 5 steps each, reported once as one program
    assert rec["wall_time_s"] >= 7.0
    with pytest.raises(ConfigError, match="4 networks already evaluated"):
        evaluate_set(images, labels, DATA.test_images, DATA.test_labels, 2, cfg, done=[0.5] * 4)


@pytest.mark.slow
def test_train_baseline_interrupted_after_an_epoch_resumes_to_the_same_network(tmp_path, monkeypatch):
    from jaxdistill.checkpoint import RunDir
    from jaxdistill.runner import train_baseline
    kw = dict(epochs=3, augment="none", data=DATA, progress=False, batch_size=4)
    train_baseline("tiny", tmp_path / "full", **kw)
    full_params = RunDir(tmp_path / "full").restore(_template(tmp_path / "full"))[1].params

    real_save = RunDir.save

    def save_then_crash(self, step, state):
        real_save(self, step, state)
        if step == 2 * 3:  # after epoch 2 (3 steps per epoch)
            raise Crash

    monkeypatch.setattr(RunDir, "save", save_then_crash)
    with pytest.raises(Crash):
        train_baseline("tiny", tmp_path / "cut", **kw)
    monkeypatch.setattr(RunDir, "save", real_save)
    train_baseline("tiny", tmp_path / "cut", **kw)
    assert [m["epoch"] for m in RunDir(tmp_path / "cut").read_metrics()] == [1, 2, 3]
    cut_params = RunDir(tmp_path / "cut").restore(_template(tmp_path / "cut"))[1].params
    for a, b in zip(jax.tree.leaves(full_params), jax.tree.leaves(cut_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _template(workdir):
    """A state shaped like train_baseline's (one network), to restore its checkpoint."""
    from jaxdistill.models import make_model
    from jaxdistill.train import Trainer, TrainConfig
    trainer = Trainer(make_model("convnet", 2), TrainConfig(epochs=3, batch_size=4), 12)
    return jax.vmap(trainer.init_state, in_axes=(0, None))(jax.random.PRNGKey(0)[None], DATA.train.images)


def test_crash_before_the_first_checkpoint_does_not_duplicate_metrics(tmp_path):
    with pytest.raises(Crash):
        walk(tmp_path, on_iteration=crash_at(1))
    walk(tmp_path)
    from jaxdistill.checkpoint import RunDir
    assert [m["step"] for m in RunDir(tmp_path).read_metrics()] == [1, 2, 3, 4, 5, 6]


def test_seeds_out_of_range_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="2\\*\\*32"):
        distill("random", "tiny", 1, [0, 2**32], tmp_path, data=DATA, progress=False)


@pytest.mark.parametrize("parallel", ["vmap", "sequential"])
def test_seeds_run_vmapped_or_one_after_another_give_the_same_sets(tmp_path, uninterrupted, parallel):
    walk(tmp_path, parallel=parallel)
    _, images, labels, seeds = load_synthetic(tmp_path)
    np.testing.assert_allclose(images, uninterrupted[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels, uninterrupted[2])
    assert seeds == [0, 1]


def test_a_seed_distilled_alone_gives_the_set_it_gets_beside_others(tmp_path, uninterrupted):
    # What lets a long sweep run one seed per machine and pool the records (experiments' --seeds / --merge).
    distill("test_walk", "tiny", 1, [1], tmp_path, data=DATA, iterations=6, progress=False)
    _, images, labels, seeds = load_synthetic(tmp_path)
    assert seeds == [1]
    np.testing.assert_allclose(images[0], uninterrupted[1][1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels[0], uninterrupted[2][1])


def test_unknown_parallel_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="parallel"):
        walk(tmp_path, parallel="threads")


def test_dsa_sets_are_evaluated_with_dsa_augmentation_and_dc_sets_with_dc_s():
    from jaxdistill.runner import default_augmentation_for
    dsa = {"dataset": "mnist", "method_config": {"dsa_strategy": "color_crop_cutout_scale_rotate"}}
    assert default_augmentation_for(dsa) == "dsa:color_crop_cutout_scale_rotate"
    assert default_augmentation_for({"dataset": "mnist", "method_config": {"dsa_strategy": "none"}}) == \
        "crop_scale_rotate"
    assert default_augmentation_for({"dataset": "mnist", "method_config": {}}) == "crop_scale_rotate"


@pytest.mark.slow
def test_trajectory_matching_runs_on_host_data_vmapped_sequential_and_resumed(tmp_path):
    # MTT's step takes an expert window read on the host each iteration: every way of running gives the same sets.
    from jaxdistill.experts import ExpertConfig, train_experts
    buffer = tmp_path / "buffer"
    train_experts(buffer, np.asarray(DATA.train.images), np.asarray(DATA.train.labels), "tiny", 2, [0, 1],
                  ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=4, augment="none",
                               parallel="vmap"), progress=False)
    overrides = {"buffer_dir": str(buffer), "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 2,
                 "model": "convnet:depth=1,width=4", "lr_img": 10.0, "dsa_strategy": "none"}
    runs = {}
    for name, parallel, cut in (("vmap", "vmap", None), ("seq", "sequential", None), ("cut", "vmap", 2)):
        kw = dict(iterations=4, data=DATA, progress=False, checkpoint_every=1, parallel=parallel,
                  method_overrides=overrides)
        if cut:
            with pytest.raises(Crash):
                distill("mtt", "tiny", 1, [0, 1], tmp_path / name, on_iteration=crash_at(cut), **kw)
        distill("mtt", "tiny", 1, [0, 1], tmp_path / name, **kw)
        runs[name] = load_synthetic(tmp_path / name)[1]
    assert not np.allclose(runs["vmap"][0], runs["vmap"][1])  # the seeds drew different windows
    np.testing.assert_allclose(runs["seq"], runs["vmap"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(runs["cut"], runs["vmap"], rtol=1e-6, atol=1e-6)


def test_load_real_with_zca_whitens_both_splits_with_the_training_fit(tiny_idx, tmp_path, monkeypatch):
    from jaxdistill.data.arrays import normalize
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.data.sources import load_dataset
    from jaxdistill.data.zca import fit_zca
    from jaxdistill.runner import load_real
    spec = tiny_idx(tmp_path / "data", name="zca_tiny")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    data = load_real(spec.name, str(tmp_path / "data"), progress=False, zca=True)
    raw = load_dataset(spec.name, str(tmp_path / "data"), progress=False)
    ones = (1.0,) * len(spec.mean)
    zca = fit_zca(normalize(raw.train_images, (0.0,) * len(spec.mean), ones))
    np.testing.assert_allclose(data.test_images, zca(normalize(raw.test_images, (0.0,) * len(spec.mean), ones)),
                               rtol=1e-5, atol=1e-5)
    train = np.asarray(data.train.images).reshape(len(raw.train_labels), -1)
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-4)  # centred by the training mean


# ---- workdirs of earlier versions, data provenance, the distilled network carried to evaluation ---------------------

# the whole workdirs committed before the spine redesign; every other folder of results/sets/ is a set a record kept
PRE_REDESIGN = ("dsa_mnist_ipc1_pre_redesign_seed0", "dsa_mnist_ipc1_pre_redesign_seed1",
                "dsa_mnist_ipc1_pre_redesign_seed2", "dsa_mnist_ipc10_reduced", "dsa_mnist_ipc50_reduced")
COMMITTED = [ROOT / "results" / "sets" / name / "config.json" for name in PRE_REDESIGN]
KEPT = sorted(p.parent for p in (ROOT / "results" / "sets").glob("*/config.json") if p.parent.name not in PRE_REDESIGN)


@pytest.mark.parametrize("config_file", COMMITTED, ids=PRE_REDESIGN)
def test_committed_workdirs_are_the_same_runs_for_todays_code(config_file):
    """Each of these workdirs predates the spine redesign: its config.json, upgraded, is the one today's distill
    call with the same command makes, so rerunning the command resumes it."""
    from jaxdistill.checkpoint import RunDir
    from jaxdistill.runner import distill_config, upgrade_config
    old = json.loads(config_file.read_text())
    assert "iterations" in old["method_config"]  # the old layout, which the upgrade must handle
    _, config, defaults = distill_config(old["method"], old["dataset"], old["method_config"]["ipc"], old["seeds"],
                                         iterations=old["method_config"]["iterations"])
    assert RunDir(config_file.parent).check_config(config, defaults, upgrade=upgrade_config)
    with pytest.raises(ConfigError, match="different config"):  # and a different run is still refused
        RunDir(config_file.parent).check_config({**config, "iterations": 7}, defaults, upgrade=upgrade_config)


@functools.cache
def _sets_records_name() -> frozenset[Path]:
    """Every set folder a record under results/ names (`named_sets`: a distillation's result.set, a
    cross-architecture config.sets, a continual-learning config.synthetic, ...; several sets of one record are kept
    as <record>_set<i>, so the folder's name alone does not find its record)."""
    from jaxdistill.experiment import named_sets
    return frozenset(p for path in (ROOT / "results").glob("*.json")
                     for p in named_sets(json.loads(path.read_text()), ROOT))


def test_every_set_a_record_names_is_committed():
    # a set folder moved or renamed (the DSA ipc-1 workdirs of before the redesign, out of its --seeds parts' way)
    # must take the records that name it along
    named = _sets_records_name()
    assert ROOT.joinpath("results", "sets", "dsa_mnist_ipc1_pre_redesign_seed0").resolve() in named
    committed = [p for p in named if p.is_relative_to(ROOT.resolve() / "results")]  # (early records name runs/)
    assert [str(p) for p in committed if not (p / "synthetic.npz").is_file()] == []


@pytest.mark.parametrize("folder", KEPT, ids=[p.name for p in KEPT])
def test_kept_sets_load_as_the_record_beside_them_describes(folder):
    """A set a record kept (results/sets/<record>/) loads in today's layout and is one a record names."""
    from jaxdistill.data.registry import REGISTRY
    from jaxdistill.runner import load_synthetic, upgrade_config
    config, images, labels, seeds = load_synthetic(folder)
    assert upgrade_config(config) == config  # written by today's code: nothing to upgrade
    assert folder.resolve() in _sets_records_name()
    # an IDC set is kept decoded: factor ** 2 formations of each stored image
    per_seed = (REGISTRY[config["dataset"]].num_classes * config["method_config"]["ipc"]
                * config["method_config"].get("factor", 1) ** 2)
    assert images.shape[:2] == (len(seeds), per_seed) and labels.shape[:2] == (len(seeds), per_seed)


def test_upgrade_spells_old_networks_as_one_model():
    from jaxdistill.runner import upgrade_config
    dc = {"kind": "distill", "method_config": {"ipc": 1, "iterations": 5, "width": 16, "depth": 3, "norm": "batchnorm",
                                               "pooling": "avgpooling", "conv_impl": "auto", "class_loop": "scan",
                                               "real_chunks": None}}
    up = upgrade_config(dc)
    assert up["iterations"] == 5 and up["method_config"] == {"ipc": 1, "model": "convnet:norm=batchnorm,width=16"}
    mtt = {"kind": "distill", "method_config": {"iterations": 3, "model": "convnet",
                                                "model_kwargs": {"depth": 1, "width": 4}}}
    assert upgrade_config(mtt)["method_config"] == {"model": "convnet:depth=1,width=4"}
    assert upgrade_config(up) == up  # today's configs come back unchanged


@pytest.fixture(scope="module")
def mnist():
    if not os.environ.get("JAXDISTILL_DATA"):
        pytest.skip("JAXDISTILL_DATA is unset: the committed MNIST workdirs need the real files")
    return runner.load_real("mnist", os.environ["JAXDISTILL_DATA"], progress=False)


@pytest.mark.slow
def test_a_committed_finished_workdir_resumes_and_evaluates(mnist, tmp_path):
    import shutil
    workdir = tmp_path / "set"
    shutil.copytree(ROOT / "results" / "sets" / "dsa_mnist_ipc1_pre_redesign_seed0", workdir)
    with np.load(workdir / "synthetic.npz") as z:
        committed = z["images"]
    old = json.loads((workdir / "config.json").read_text())
    record = distill("dsa", "mnist", 1, old["seeds"], workdir, iterations=old["method_config"]["iterations"],
                     data=mnist, progress=False)
    assert record["resumed_from"] == old["method_config"]["iterations"]  # nothing left to distil
    np.testing.assert_array_equal(load_synthetic(workdir)[1][0], committed)  # restored from its checkpoint
    res = evaluate_workdir(workdir, num_models=1, epochs=1, data=mnist, progress=False, augment="none")
    assert res["eval_config"]["model"] == "convnet" and 0.0 <= res["accuracy_mean"] <= 1.0


@pytest.mark.slow
def test_evaluation_trains_the_network_the_set_was_distilled_with(tmp_path):
    distill("dc", "tiny", 1, [0], tmp_path, iterations=0, data=DATA, progress=False,
            method_overrides={"model": "convnet:depth=1,width=4", "batch_real": 2})
    res = evaluate_workdir(tmp_path, num_models=1, epochs=1, augment="none", data=DATA, progress=False)
    assert res["eval_config"]["model"] == "convnet:depth=1,width=4"
    res = evaluate_workdir(tmp_path, num_models=1, epochs=1, augment="none", data=DATA, progress=False, model="mlp:16")
    assert res["eval_config"]["model"] == "mlp:16"


def test_evaluate_finds_the_data_folder_the_distillation_used(tiny_idx, tmp_path, monkeypatch, clean_env):
    from jaxdistill.data.registry import REGISTRY
    spec = tiny_idx(tmp_path / "data", name="origin_tiny")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    workdir = tmp_path / "runs" / "a"
    distill("random", spec.name, 1, [0], workdir, data_dir=str(tmp_path / "data"), progress=False)
    remembered = json.loads((workdir / "data.json").read_text())
    assert remembered == {"kind": "data_dir", "data_dir": os.path.join("..", "..", "data")}  # relative, portable
    res = evaluate_workdir(workdir, num_models=1, epochs=1, augment="none", progress=False,
                           model=SMALL_MODEL)  # no data_dir, no $JAXDISTILL_DATA, empty cache: no download tried
    assert len(res["accuracies"]) == 1


def test_a_chosen_resolution_gives_a_convnet_the_datasets_depth(monkeypatch):
    import dataclasses as dc

    from jaxdistill.data.registry import REGISTRY, get_spec
    from jaxdistill.runner import distill_config
    spec = dc.replace(get_spec("mnist"), name="mnist64", resolutions=(64,))
    monkeypatch.setitem(REGISTRY, "mnist64", spec)
    cfg, config, _ = distill_config("dc", "mnist64", 1, [0], resolution=64)
    assert str(cfg.model) == "convnet:depth=4" and config["resolution"] == 64  # 4 at 64 px, as the literature
    cfg, _, _ = distill_config("dc", "mnist64", 1, [0], resolution=64, method_overrides={"model": "convnet:depth=2"})
    assert str(cfg.model) == "convnet:depth=2"  # a model the user names is kept
    cfg, config, _ = distill_config("dc", "mnist64", 1, [0])
    assert str(cfg.model) == "convnet" and "resolution" not in config  # native size: configs as before
    cfg, _, _ = distill_config("random", "mnist64", 1, [0], resolution=64)  # a method without a network
    assert not hasattr(cfg, "model")


def test_a_diverged_distillation_stops_before_writing_a_set(tmp_path):
    from jaxdistill.errors import DivergedError
    with pytest.raises(DivergedError, match=r"norm not finite after iteration 2.*lr_img"):
        distill("test_walk", "tiny", 1, [0], tmp_path, data=DATA, iterations=6, log_every=2, checkpoint_every=2,
                method_overrides={"step_size": float("inf")}, progress=False)
    assert not (tmp_path / "synthetic.npz").exists() and not (tmp_path / "run.json").exists()


def test_a_multi_formation_set_is_saved_compact_and_loaded_decoded(tmp_path):
    from jaxdistill.synthetic import decode_labels, decode_multi_formation
    walk(tmp_path, iterations=2, method_overrides={"factor": 2})
    with np.load(tmp_path / runner.SYNTHETIC_FILE) as z:
        stored, stored_labels = z["images"], z["labels"]
        assert int(z["factor"]) == 2 and str(z["form"]) == "stored" and stored.shape == (2, 2, 8, 8, 1)
    _, images, labels, _ = load_synthetic(tmp_path)
    assert images.shape == (2, 8, 8, 8, 1)  # per seed: 2 stored images -> 8 training images
    for s in range(2):
        np.testing.assert_allclose(images[s], decode_multi_formation(stored[s], 2), atol=1e-6)
        assert labels[s].tolist() == decode_labels(stored_labels[s], 2).tolist() == [0, 1] * 4


def test_network_seeding_per_set_gives_each_set_its_own_networks_and_shared_the_same(tmp_path):
    from jaxdistill.evaluate import EvalConfig, network_keys
    distill("random", "tiny", 3, [0, 1], tmp_path, data=DATA, progress=False)
    kw = dict(num_models=2, epochs=1, augment="none", data=DATA, progress=False, model=SMALL_MODEL)
    per_set = evaluate_workdir(tmp_path, **kw)
    assert [r["config"]["set_seed"] for r in per_set["per_set"]] == [0, 1]
    keys = [network_keys(EvalConfig(num_models=2, seed=0, set_seed=s)) for s in (0, 1, None)]
    assert not np.array_equal(keys[0], keys[1]) and not np.array_equal(keys[0], keys[2])
    shared = evaluate_workdir(tmp_path, network_seeding="shared", **kw)
    assert [r["config"]["set_seed"] for r in shared["per_set"]] == [None, None]
    with pytest.raises(ConfigError, match="network_seeding"):
        evaluate_workdir(tmp_path, network_seeding="each", **kw)
