import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import kd
from jaxdistill.errors import ConfigError
from jaxdistill.models import MLP
from jaxdistill.train import Trainer, TrainConfig, cross_entropy, predict_logits
from tests.helpers import tiny_images

STUDENT = jnp.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.1]])
TEACHER = jnp.array([[2.0, 0.1, -1.0], [-0.4, 1.5, 0.0]])
LABELS = jnp.array([0, 1])


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kd_loss_matches_a_hand_computed_value():
    t, alpha = 2.0, 0.3
    s, te = np.asarray(STUDENT, np.float64), np.asarray(TEACHER, np.float64)
    p, q = _softmax(te / t), _softmax(s / t)
    kl = np.sum(p * (np.log(p) - np.log(q)), -1).mean()
    ce = -np.log(_softmax(s)[[0, 1], [0, 1]]).mean()
    expected = alpha * ce + (1 - alpha) * t * t * kl
    got = float(kd.kd_loss(STUDENT, TEACHER, LABELS, t, alpha))
    assert got == pytest.approx(expected, rel=1e-5)


def test_dkd_terms_match_hand_computed_values_and_decompose_hintons_kl():
    t = 2.0
    s, te = np.asarray(STUDENT, np.float64), np.asarray(TEACHER, np.float64)
    p, q = _softmax(te / t), _softmax(s / t)
    tckd, nckd, p_gt = (np.asarray(x) for x in kd.dkd_terms(STUDENT, TEACHER, LABELS, t))
    for i, gt in enumerate(np.asarray(LABELS)):
        bt, bs = np.array([p[i, gt], 1 - p[i, gt]]), np.array([q[i, gt], 1 - q[i, gt]])
        assert tckd[i] == pytest.approx(np.sum(bt * np.log(bt / bs)), rel=1e-5)
        rest = [c for c in range(3) if c != gt]
        qt, qs = p[i, rest] / p[i, rest].sum(), q[i, rest] / q[i, rest].sum()
        assert nckd[i] == pytest.approx(np.sum(qt * np.log(qt / qs)), rel=1e-5)
        assert p_gt[i] == pytest.approx(p[i, gt], rel=1e-6)
    # KL(p_t || p_s) = TCKD + (1 - p_t) NCKD, per example
    kl = np.sum(p * np.log(p / q), -1)
    np.testing.assert_allclose(tckd + (1 - p_gt) * nckd, kl, rtol=1e-5)


def test_dkd_loss_weights_and_objective():
    t, alpha = 4.0, 0.5
    tckd, nckd, _ = kd.dkd_terms(STUDENT, TEACHER, LABELS, t)
    ce = float(cross_entropy(STUDENT, LABELS))
    expected = alpha * ce + (1 - alpha) * t * t * float(jnp.mean(1.0 * tckd + 8.0 * nckd))
    assert float(kd.dkd_loss(STUDENT, TEACHER, LABELS, t, alpha)) == pytest.approx(expected, rel=1e-5)
    loss = kd.kd_objective(t, alpha, "dkd", 2.0, 3.0)
    targets = {"labels": LABELS, "teacher_logits": TEACHER}
    assert float(loss(STUDENT, targets, None)) == pytest.approx(
        float(kd.dkd_loss(STUDENT, TEACHER, LABELS, t, alpha, 2.0, 3.0)), rel=1e-6)
    with pytest.raises(ConfigError, match="unknown KD loss"):
        kd.kd_objective(t, alpha, "fitnets")


def test_alpha_one_is_plain_cross_entropy_value_and_gradient():
    f = lambda z: kd.kd_loss(z, TEACHER, LABELS, 4.0, 1.0)
    g = lambda z: cross_entropy(z, LABELS)
    assert float(f(STUDENT)) == pytest.approx(float(g(STUDENT)), rel=1e-6)
    np.testing.assert_allclose(jax.grad(f)(STUDENT), jax.grad(g)(STUDENT), rtol=1e-6)


def test_soft_term_is_zero_when_student_equals_teacher_and_masked_rows_do_not_count():
    assert float(kd.kd_loss(TEACHER, TEACHER, LABELS, 3.0, 0.0)) == pytest.approx(0.0, abs=1e-6)
    padded_s = jnp.concatenate([STUDENT, jnp.array([[9.0, -9.0, 0.0]])])
    padded_t = jnp.concatenate([TEACHER, jnp.array([[-9.0, 9.0, 0.0]])])
    masked = kd.kd_loss(padded_s, padded_t, jnp.array([0, 1, 2]), 3.0, 0.4, jnp.array([1.0, 1.0, 0.0]))
    assert float(masked) == pytest.approx(float(kd.kd_loss(STUDENT, TEACHER, LABELS, 3.0, 0.4)), rel=1e-6)


def test_t_squared_keeps_the_soft_gradient_magnitude_constant_as_t_grows():
    def grad_norm(t, scaled):
        soft = lambda z: kd.kd_loss(z, TEACHER, LABELS, t, 0.0) / (1.0 if scaled else t * t)
        return float(jnp.linalg.norm(jax.grad(soft)(STUDENT)))
    assert grad_norm(40.0, True) / grad_norm(10.0, True) == pytest.approx(1.0, abs=0.02)
    assert grad_norm(10.0, False) / grad_norm(40.0, False) == pytest.approx(16.0, rel=0.05)  # what T^2 undoes


def test_soft_labels_train_through_the_kd_loss_like_soft_cross_entropy():
    # alpha = 0, T = 1: the KD loss is CE against softmax(teacher) minus the teacher's entropy (same gradient).
    f = lambda z: kd.kd_loss(z, TEACHER, LABELS, 1.0, 0.0)
    g = lambda z: cross_entropy(z, kd.soften(TEACHER, 1.0))
    np.testing.assert_allclose(jax.grad(f)(STUDENT), jax.grad(g)(STUDENT), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("t,alpha", [(0.0, 0.5), (-1.0, 0.5), (float("nan"), 0.5), (float("inf"), 0.5), (2.0, -0.1),
                                     (2.0, 1.5), (2.0, float("nan"))])
def test_bad_settings_are_refused(t, alpha):
    with pytest.raises(ConfigError):
        kd.kd_objective(t, alpha)


def test_bias_shift_recovers_an_omitted_class():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    logits = rng.normal(0, 0.1, (60, 3))
    logits[np.arange(60), labels] += 3.0
    logits[labels == 2, 2] -= 2.0  # class 2 never seen in training: its logit is too low ...
    logits[labels == 2, 0] += 1.5  # ... and its examples go to class 0
    assert (np.argmax(logits, -1)[labels == 2] == 2).sum() == 0
    d = kd.best_bias_shift(logits, labels, 2)
    assert 0.5 < d < 3.0
    fixed = np.argmax(kd.shift_class_bias(logits, 2, d), -1)
    assert (fixed == labels).mean() > 0.9
    assert kd.shift_class_bias(logits, 2, 0.0) is not logits  # never modifies its input


def test_compare_gives_difference_standard_error_and_z():
    r = kd.compare([10, 12, 14], [5, 6, 7])
    assert r["difference"] == pytest.approx(6.0)
    assert r["standard_error"] == pytest.approx(np.sqrt(4 / 3 + 1 / 3))
    assert r["z"] == pytest.approx(6.0 / np.sqrt(5 / 3))
    with pytest.raises(ConfigError):
        kd.compare([1], [2, 3])


def test_split_transfer_holds_out_validation_and_omits_a_class_from_the_transfer_set_only():
    images = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)
    labels = np.arange(40) % 4
    teacher_set, transfer, val = kd.split_transfer(images, labels, validation=8, omit_class=3)
    assert len(val.labels) == 8 and len(teacher_set.labels) == 32
    assert not set(val.images.ravel()) & set(teacher_set.images.ravel())
    assert 3 in teacher_set.labels and 3 not in transfer.labels
    assert len(transfer.labels) == int((teacher_set.labels != 3).sum())
    with pytest.raises(ConfigError):
        kd.split_transfer(images, labels, omit_class=7)


def test_cached_logits_compute_once_and_again_when_the_fingerprint_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.full((2, 3), len(calls), np.float32)
    a = kd.cached_logits(tmp_path / "t.npz", compute, {"teacher": "a"})
    b = kd.cached_logits(tmp_path / "t.npz", compute, {"teacher": "a"})
    c = kd.cached_logits(tmp_path / "t.npz", compute, {"teacher": "b"})
    assert len(calls) == 2
    np.testing.assert_array_equal(a, b)
    assert float(c[0, 0]) == 2.0


# ---- training with per-network teachers ---------------------------------------------------------------------------
IMAGES, HARD = tiny_images(num_per_class=6, num_classes=2, size=4)
NET = MLP(2, widths=(8,))


def test_each_network_learns_from_its_own_teacher():
    # Teacher 0 says "class = true label", teacher 1 says the opposite; with alpha = 0 each student follows its own.
    onehot = np.eye(2, dtype=np.float32)[HARD] * 8.0
    teachers = np.stack([onehot, onehot[:, ::-1]])
    trainer = Trainer(NET, TrainConfig(epochs=30, batch_size=4, lr=0.1, momentum=0.9, weight_decay=0.0,
                                       parallel="vmap"), len(HARD), loss=kd.kd_objective(2.0, 0.0))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    targets = {"labels": np.stack([HARD, HARD]), "teacher_logits": teachers}
    states = trainer.run(keys, IMAGES, targets, per_network_labels=True)
    preds = [np.argmax(predict_logits(NET, jax.tree.map(lambda a: a[k], states).params, {}, jnp.asarray(IMAGES)), -1)
             for k in range(2)]
    assert (preds[0] == HARD).mean() == 1.0
    assert (preds[1] != HARD).mean() == 1.0
    with pytest.raises(ConfigError, match="leading axis of 2"):
        trainer.run(keys, IMAGES, {"labels": HARD, "teacher_logits": onehot}, per_network_labels=True)


def _config(**kw):
    net = kd.NetSpec("mlp", (("widths", (8,)),), TrainConfig(epochs=3, batch_size=8, lr=0.1, momentum=0.9,
                                                             weight_decay=0.0, parallel="vmap"))
    return kd.KDConfig(teacher=net, student=net, temperature=4.0, alpha=0.5, seeds=(0, 1), **kw)


@pytest.mark.slow
def test_run_kd_end_to_end_with_an_omitted_class_and_resume(tmp_path):
    images, labels = tiny_images(num_per_class=12, num_classes=3, size=4, seed=1)
    test_images, test_labels = tiny_images(num_per_class=4, num_classes=3, size=4, seed=2)
    cfg = _config(sweep=((1.0, 0.9),), omit_class=2, validation=9)
    rec = kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path, progress=False)
    assert rec["transfer_size"] < rec["teacher_train_size"] == 27
    assert len(rec["teacher"]["test_errors"]) == 2
    for group in (rec["student_alone"], rec["student_kd"]):
        assert len(group["test_errors"]) == 2 and all(0 <= e <= 12 for e in group["test_errors"])
        assert group["omitted_test_examples"] == 4
        assert len(group["bias_shift"]) == 2
    assert [s["temperature"] for s in rec["sweep"]] == [4.0, 1.0]
    assert "z" in rec["student_kd"]["significance_vs_alone"]
    for seed in (0, 1):
        with np.load(tmp_path / "teacher_logits" / f"seed{seed}.npz") as f:
            assert f["logits"].shape == (rec["transfer_size"], 3)
    stamp = (tmp_path / "student_alone" / "errors.json").stat().st_mtime_ns
    again = kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path, progress=False)
    assert (tmp_path / "student_alone" / "errors.json").stat().st_mtime_ns == stamp  # finished phases are skipped
    assert again["student_kd"]["test_errors"] == rec["student_kd"]["test_errors"]
    with pytest.raises(ConfigError, match="different config"):
        kd.run_kd(_config(sweep=((2.0, 0.9),), omit_class=2, validation=9), images, labels, test_images,
                  test_labels, 3, tmp_path, progress=False)


def test_comparisons_share_a_teacher_dir_and_refuse_a_teacher_of_another_config(tmp_path):
    images, labels = tiny_images(num_per_class=8, num_classes=3, size=4, seed=1)
    test_images, test_labels = tiny_images(num_per_class=2, num_classes=3, size=4, seed=2)
    teachers = tmp_path / "teachers"
    kd.run_kd(_config(validation=6), images, labels, test_images, test_labels, 3, tmp_path / "a", False, teachers)
    stamp = (teachers / "seed1" / "errors.json").stat().st_mtime_ns
    kd.run_kd(_config(validation=6, omit_class=1), images, labels, test_images, test_labels, 3, tmp_path / "b",
              False, teachers)
    assert (teachers / "seed1" / "errors.json").stat().st_mtime_ns == stamp  # the second comparison reused them
    assert not (tmp_path / "b" / "teacher").exists()
    with pytest.raises(ConfigError, match="different config"):  # another validation split: another teacher set
        kd.run_kd(_config(validation=3), images, labels, test_images, test_labels, 3, tmp_path / "c", False,
                  teachers)


def test_a_run_resumes_on_another_machine_from_its_outputs_alone(tmp_path):
    # Sequential teachers finish one by one; the small outputs (errors, teacher logits) are all a rerun needs: with
    # the checkpoints gone only the missing teacher retrains, and the students' finished phases are not redone.
    images, labels = tiny_images(num_per_class=8, num_classes=3, size=4, seed=1)
    test_images, test_labels = tiny_images(num_per_class=2, num_classes=3, size=4, seed=2)
    cfg = _config()
    cfg = dataclasses.replace(cfg, teacher=dataclasses.replace(
        cfg.teacher, train=dataclasses.replace(cfg.teacher.train, parallel="sequential")))
    out = tmp_path / "out"
    rec = kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path / "first", False, outputs_dir=out)
    assert (tmp_path / "first" / "teacher" / "seed1" / "checkpoints").is_dir()
    assert not list(out.rglob("checkpoints"))  # checkpoints stay in the workdir
    kept = (out / "teacher" / "seed0" / "errors.json").stat().st_mtime_ns
    alone = (out / "student_alone" / "errors.json").stat().st_mtime_ns
    for lost in (out / "teacher" / "seed1" / "errors.json", out / "teacher_logits" / "seed1.npz"):
        lost.unlink()  # seed 1's teacher was in training when its machine went away
    again = kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path / "second", False, outputs_dir=out)
    assert again["teacher"] == rec["teacher"] and again["student_kd"] == rec["student_kd"]
    assert (out / "teacher" / "seed0" / "errors.json").stat().st_mtime_ns == kept
    assert (out / "student_alone" / "errors.json").stat().st_mtime_ns == alone
    assert [p.name for p in (tmp_path / "second").iterdir() if p.is_dir()] == ["teacher"]
    assert [p.name for p in (tmp_path / "second" / "teacher").iterdir()] == ["seed1"]
    with pytest.raises(ConfigError, match="different config"):  # outputs of another comparison
        kd.run_kd(dataclasses.replace(cfg, temperature=2.0), images, labels, test_images, test_labels, 3,
                  tmp_path / "third", False,
                  outputs_dir=out)
    facts = out / "teacher" / "seed0" / "errors.json"
    from jaxdistill.records import read_json, write_json
    write_json(facts, {**read_json(facts), "facts": {"seed": 5}})
    with pytest.raises(ConfigError, match="teacher with a different config"):
        kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path / "fourth", False, outputs_dir=out)


def test_sequential_seeds_equal_vmapped_seeds(tmp_path):
    images, labels = tiny_images(num_per_class=6, num_classes=2, size=4)
    net = _config().student
    seq = dataclasses.replace(net, train=dataclasses.replace(net.train, parallel="sequential"))
    transfer = kd.TransferSet(images, labels)
    a = kd.train_networks(tmp_path / "v", net, 2, [0, 1], transfer, progress=False)
    b = kd.train_networks(tmp_path / "s", seq, 2, [0, 1], transfer, progress=False)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "s" / "seed1" / "checkpoints").is_dir()


def test_kd_config_refuses_one_seed_and_omission_without_validation():
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        dataclasses.replace(_config(), seeds=(0,))
    with pytest.raises(ConfigError, match="validation"):
        _config(omit_class=1)


@pytest.mark.slow
def test_students_take_the_settings_with_the_fewest_held_out_errors(tmp_path):
    images, labels = tiny_images(num_per_class=12, num_classes=3, size=4, seed=1)
    test_images, test_labels = tiny_images(num_per_class=4, num_classes=3, size=4, seed=2)
    # lr 1e-6 cannot move the network in 3 epochs: its held-out errors stay at chance, lr 0.1's fall
    cfg = _config(select=((("lr", 1e-6),), (("lr", 0.1),)), select_holdout=12, select_seeds=(0, 1))
    rec = kd.run_kd(cfg, images, labels, test_images, test_labels, 3, tmp_path, progress=False)
    sel = rec["selection"]
    assert (sel["holdout"], sel["fit"]) == (12, 24)
    for role in ("alone", "kd"):
        assert len(sel[role]["held_out_errors"]) == 2 and all(len(e) == 2 for e in sel[role]["held_out_errors"])
        assert sel[role]["mean"][1] < sel[role]["mean"][0]
        assert sel[role]["chosen"] == 1
    from jaxdistill.records import read_json
    assert read_json(tmp_path / "student_alone" / "config.json")["net"]["train"]["lr"] == 0.1
    assert read_json(tmp_path / "select" / "kd_0" / "config.json")["net"]["train"]["lr"] == 1e-6
    with pytest.raises(ConfigError, match="names no TrainConfig field"):
        _config(select=((("learning_rate", 0.1),),))
    with pytest.raises(ConfigError, match="leaves no transfer-set example"):
        kd.run_kd(_config(select=((("lr", 0.1),),), select_holdout=36), images, labels, test_images, test_labels, 3,
                  tmp_path / "b", progress=False)
