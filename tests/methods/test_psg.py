"""PSG: the private real gradient against the plain one, the run's accounting, and every refusal."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdistill import privacy
from jaxdistill.errors import ConfigError
from jaxdistill.methods import gradient_matching as gm
from jaxdistill.methods import make_method, method_config
from jaxdistill.methods.base import INIT_ITERATION, RunPlan, StepInputs
from jaxdistill.methods.psg import mixed_matching, private_gradient
from jaxdistill.models import ModelConfig
from jaxdistill.privacy import PrivacyError
from jaxdistill.runner import distill
from tests.helpers import SMALL_MODEL, TINY_SETTINGS, tiny_loaded

DATA = tiny_loaded(num_per_class=50)  # 100 training images of 2 classes, 8x8
REAL = DATA.train
# the battery's tiny setting, with its noise multiplier calibrated by prepare to a budget of a real order
TINY = {**{k: v for k, v in TINY_SETTINGS["psg"].items() if k != "noise_multiplier"}, "epsilon": 20.0}
NET = ModelConfig.parse(SMALL_MODEL).build(2)
PARAMS = NET.init(jax.random.PRNGKey(0), REAL.images[:1], train=True)["params"]


def plan(iterations=3, seeds=(0,), zca=False):
    return RunPlan.of("tiny", REAL, iterations, seeds, zca)


def config(**kw):
    return method_config("psg", ipc=1, **{**TINY, **kw})


@pytest.mark.slow
def test_private_gradient_with_infinite_clip_and_no_noise_is_the_mean_gradient_of_the_poisson_batch():
    idx, mask = privacy.poisson_batch(jax.random.PRNGKey(1), 100, 0.1, 20)
    images, labels = REAL.images[idx], REAL.labels[idx]
    assert 0 < int(mask.sum()) < 20
    private = private_gradient(math.inf, 0.0, float(mask.sum()))(NET, PARAMS, {}, (images, labels, mask,
                                                                                   jax.random.PRNGKey(2)))
    plain = gm.mean_gradient(NET, PARAMS, {}, (images, labels, mask))
    for a, b in zip(jax.tree.leaves(private), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


@pytest.mark.slow
def test_with_infinite_clip_and_no_noise_the_match_is_the_non_private_match_on_the_same_batch():
    # the same key draws the same Poisson batch; DC's layer-wise cosine distance does not see the normaliser
    # (expected vs drawn batch size), so the image update is the same
    syn = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 1))
    labels = jnp.arange(2, dtype=jnp.int32)
    opt = optax.sgd(0.1, momentum=0.5)

    def match(cfg):
        m = mixed_matching(REAL, labels, cfg, 20, 0.0, lambda key, images, siamese: images)
        return gm.match(m, syn, opt.init(syn), opt, NET, PARAMS, {}, jax.random.PRNGKey(4), "scan")

    private = match(config(epsilon=50.0, clip_norm=math.inf, noise_multiplier=0.0))
    plain = match(config(epsilon=math.inf))
    np.testing.assert_allclose(private[0], plain[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(private[2], plain[2], rtol=1e-4)


@pytest.mark.slow
def test_the_noise_reaches_the_matched_gradient():
    images, labels = REAL.images[:4], REAL.labels[:4]
    mask = jnp.ones(4, bool)
    grads = [private_gradient(0.1, 2.0, 4.0)(NET, PARAMS, {}, (images, labels, mask, jax.random.PRNGKey(k)))
             for k in (0, 1)]
    quiet = private_gradient(0.1, 0.0, 4.0)(NET, PARAMS, {}, (images, labels, mask, jax.random.PRNGKey(0)))
    diff = [np.asarray(a - b) for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(quiet))]
    flat = np.concatenate([d.ravel() for d in diff])
    assert flat.std() == pytest.approx(2.0 * 0.1 / 4.0, rel=0.1)  # sigma C / expected batch per coordinate
    assert not np.allclose(jax.tree.leaves(grads[0])[0], jax.tree.leaves(grads[1])[0])  # fresh noise per key


@pytest.mark.slow
def test_prepare_calibrates_the_noise_to_the_queries_the_run_makes():
    m = make_method("psg", config())
    prepared, facts = m.prepare(plan(iterations=3, seeds=(0, 1)))
    p = facts["privacy"]
    outer, batch_loop = config().loops[0], TINY["batch_loop"]
    assert p["queries"] == 3 * outer * batch_loop == 3 * facts["queries_per_iteration"]
    assert p["epsilon"] == pytest.approx(TINY["epsilon"], rel=2e-3) and p["epsilon"] <= TINY["epsilon"] * 1.001
    assert p["sampling_rate"] == pytest.approx(TINY["batch_real"] / 100)
    assert p["accountant_delta"] + p["overflow_delta"] == pytest.approx(TINY["delta"])
    assert p["epsilon_pld"] <= p["epsilon"] * 1.001 and p["epsilon_all_seeds_released"] > p["epsilon"]
    assert p["noise_multiplier"] == pytest.approx(privacy.calibrate_noise(
        TINY["epsilon"], p["accountant_delta"], p["sampling_rate"], p["queries"]), rel=1e-6)
    # the prepared method runs what was accounted: it refuses the iteration after the last
    prepared.host_data(0, 2)
    with pytest.raises(PrivacyError, match="beyond the 3 iterations"):
        prepared.host_data(0, 3)
    assert prepared.report(plan(3), 3)["epsilon"] == pytest.approx(p["epsilon"], rel=1e-6)
    assert prepared.report(plan(3), 1)["epsilon"] < p["epsilon"]


def test_a_given_noise_multiplier_is_checked_against_the_budget():
    _, facts = make_method("psg", config(noise_multiplier=5.0)).prepare(plan())
    assert facts["privacy"]["noise_multiplier"] == 5.0 and facts["privacy"]["epsilon"] < TINY["epsilon"]
    with pytest.raises(PrivacyError, match="above the target"):
        make_method("psg", config(noise_multiplier=0.05, epsilon=1.0)).prepare(plan())


def test_an_uncalibrated_private_method_refuses_to_start():
    m = make_method("psg", config())
    with pytest.raises(PrivacyError, match="prepare"):
        m.init(jax.random.PRNGKey(0), StepInputs(REAL, m.host_data(0, INIT_ITERATION)))


@pytest.mark.parametrize("kw, match", [
    (dict(init="real"), "copies private training images"),
    (dict(model="convnet:depth=2,width=8,norm=batchnorm"), "batch norm"),
    (dict(epsilon=0.0), "epsilon must be > 0"),
    (dict(delta=0.0), "delta must lie"),
    (dict(clip_norm=0.0), "clip_norm must be > 0"),
    (dict(accountant="moments"), "unknown accountant"),
])
def test_settings_that_would_leak_or_mean_nothing_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        config(**kw)


@pytest.mark.parametrize("kw, run, match", [
    (dict(), dict(zca=True), "ZCA"),
    (dict(delta=0.02), dict(), "not below 1/N"),
    (dict(batch_real=100), dict(), "below the number of training images"),
    (dict(max_batch=5, batch_real=4), dict(), "overflows too often"),
])
def test_runs_that_would_leak_or_cannot_be_accounted_are_refused(kw, run, match):
    with pytest.raises(PrivacyError, match=match):
        make_method("psg", config(**kw)).prepare(plan(**run))


def test_a_model_with_batch_norm_is_refused_at_prepare_even_when_its_settings_do_not_say_so():
    m = make_method("psg", config(model="mobilenetv2:alpha=0.35"))
    with pytest.raises(PrivacyError, match="batch norm"):
        m.prepare(RunPlan.of("tiny", REAL, 1))


def test_non_private_psg_needs_no_calibration():
    m = make_method("psg", config(epsilon=math.inf, init="real"))
    prepared, facts = m.prepare(plan())
    assert "privacy" not in facts and facts["max_batch_size"] >= TINY["batch_real"]
    assert prepared.report(plan(), 3) == {}


@pytest.mark.slow
def test_a_private_run_records_its_guarantee_and_refuses_to_resume_with_more_iterations(tmp_path):
    kw = dict(data=DATA, progress=False, log_every=1, checkpoint_every=1, method_overrides=TINY,
              policy={"class_loop": "scan"})
    record = distill("psg", "tiny", 1, [0], tmp_path, iterations=2, **kw)
    p = record["method_facts"]["privacy"]
    assert p["queries"] == 2 * record["method_facts"]["queries_per_iteration"]
    assert p["epsilon"] <= TINY["epsilon"] * 1.001
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["epsilon"], 6) for r in logged] == sorted(round(r["epsilon"], 6) for r in logged)
    assert logged[-1]["epsilon"] == pytest.approx(p["epsilon"], rel=1e-6)
    with pytest.raises(ConfigError, match="different config"):
        distill("psg", "tiny", 1, [0], tmp_path, iterations=3, **kw)


@pytest.mark.slow
def test_the_pld_accountant_calibrates_less_noise_and_records_the_rdp_epsilon_beside_it():
    # epsilon 1: a larger noise multiplier than TINY's budget gives PLD a small support (seconds, not a minute)
    _, rdp = make_method("psg", config(epsilon=1.0)).prepare(plan())
    _, pld = make_method("psg", config(accountant="pld", epsilon=1.0)).prepare(plan())
    assert pld["privacy"]["accountant"] == "pld"
    assert pld["privacy"]["noise_multiplier"] < rdp["privacy"]["noise_multiplier"]
    assert pld["privacy"]["epsilon"] <= 1.001 <= pld["privacy"]["epsilon_rdp"]
