"""The battery every registered method must pass (the Optax-style shared test of the method interface).

For every method: its sets have the right shapes and labels; `step` compiles once; vmap over seeds equals single
runs; the state survives a checkpoint; the host-driven form of its `loop` equals `step`; its host data depends only
on (seed, iteration); its `prepare` accepts the tiny run; and it optimises a tiny problem: stepping with one fixed key
(the same network, batches and expert window every time) lowers its matching loss.
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import policy
from jaxdistill.checkpoint import RunDir
from jaxdistill.driver import HostDriven
from jaxdistill.methods import METHODS, Method, make_method, method_config
from jaxdistill.methods.base import INIT_ITERATION, RunPlan, StepInputs
from tests import helpers

REAL = helpers.tiny_real(num_per_class=4, num_classes=3)
IPC = 2
# A method that optimises nothing says so here, with the reason; every other method must lower its loss.
OPTIMISES_NOTHING = {"random": "random selection draws real images once", "test_walk": "a random walk",
                     "herding": "herding selects real images once", "kcenter": "k-center selects real images once"}


@pytest.fixture(scope="session")
def expert_buffer(tmp_path_factory):
    """A tiny buffer of expert trajectories on REAL, for methods that match trajectories."""
    from jaxdistill.experts import ExpertConfig, train_experts
    path = tmp_path_factory.mktemp("experts")
    cfg = ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=6, augment="none",
                       parallel="vmap")
    train_experts(path, np.asarray(REAL.images), np.asarray(REAL.labels), "tiny", 3, [0, 1], cfg, progress=False)
    return str(path)


class Built(NamedTuple):
    name: str
    method: Method
    keys: jax.Array
    inputs: Any  # (seed, iteration) -> StepInputs
    vinit: Any
    vstep: Any
    init: Any  # jit(method.init), shared by the tests (one compile per method)
    step: Any  # jit(method.step), shared likewise


def build(name: str, buffer_dir: str, **overrides) -> Method:
    settings = dict(helpers.TINY_SETTINGS.get(name, {}))
    if name in ("mtt", "datm"):
        settings["buffer_dir"] = buffer_dir
    return make_method(name, method_config(name, ipc=IPC, **{**settings, **overrides}))


def inputs_of(m: Method, seed: int, iteration: int) -> StepInputs:
    return StepInputs(REAL, jax.tree.map(jnp.asarray, m.host_data(seed, iteration)))


def under_test_policy(fn):
    """fn traced (on its first call) and run under the tests' policy."""
    def call(*args):
        with policy.use(**helpers.TEST_POLICY):
            return fn(*args)
    return call


@pytest.fixture(scope="module", params=sorted(METHODS))
def built(request, expert_buffer):
    m = build(request.param, expert_buffer)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    axes = StepInputs(None, 0)
    vinit = under_test_policy(jax.jit(jax.vmap(m.init, in_axes=(0, axes))))
    vstep = under_test_policy(jax.jit(jax.vmap(m.step, in_axes=(0, 0, axes))))

    def stacked(iteration):
        hosts = [inputs_of(m, s, iteration).host for s in (0, 1)]
        return StepInputs(REAL, jax.tree.map(lambda *xs: jnp.stack(xs), *hosts))
    return Built(request.param, m, keys, lambda s, i: inputs_of(m, s, i),
                 lambda keys_: vinit(keys_, stacked(INIT_ITERATION)), lambda st, keys_: vstep(st, keys_, stacked(0)),
                 under_test_policy(jax.jit(m.init)), _Shared(jax.jit(m.step)))


class _Shared:
    """A jitted function called under the tests' policy that still exposes its compile cache."""

    def __init__(self, jitted):
        self.jitted = jitted

    def __call__(self, *args):
        with policy.use(**helpers.TEST_POLICY):
            return self.jitted(*args)

    def cache_size(self) -> int:
        return self.jitted._cache_size()


@pytest.mark.slow
def test_synthetic_set_shapes_and_finite(built):
    state, metrics = built.vstep(built.vinit(built.keys), built.keys)
    syn = jax.vmap(built.method.synthetic)(state)
    assert syn.images.shape == (2, 3 * IPC, 8, 8, 1)
    assert syn.labels.shape[:2] == (2, 3 * IPC)
    assert bool(jnp.all(jnp.isfinite(syn.images)))
    for k, v in metrics.items():
        assert v.shape[0] == 2 and bool(jnp.all(jnp.isfinite(v))), k
    hard = syn.labels if syn.labels.ndim == 2 else jnp.argmax(syn.labels, -1)
    assert hard[0].tolist() == [c for c in range(3) for _ in range(IPC)]


@pytest.mark.slow
def test_step_compiles_once(built):
    state = built.init(built.keys[0], built.inputs(0, INIT_ITERATION))
    for i in range(3):
        state, _ = built.step(state, jax.random.fold_in(built.keys[1], i), built.inputs(0, i))
    assert built.step.cache_size() == 1


def test_vmap_over_keys_matches_single_runs(built):
    m = built.method
    batched, _ = built.vstep(built.vinit(built.keys), built.keys)
    for i in range(2):
        single, _ = built.step(built.init(built.keys[i], built.inputs(i, INIT_ITERATION)), built.keys[i],
                               built.inputs(i, 0))
        np.testing.assert_allclose(m.synthetic(single).images, jax.vmap(m.synthetic)(batched).images[i],
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_host_driven_loop_equals_step(built):
    m = built.method
    state = built.init(built.keys[0], built.inputs(0, INIT_ITERATION))
    one, m1 = built.step(state, built.keys[1], built.inputs(0, 0))
    with policy.use(**helpers.TEST_POLICY):
        host, m2 = HostDriven(m.loop)(state, built.keys[1], built.inputs(0, 0))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(host)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert set(m1) == set(m2)


def test_host_data_depends_only_on_seed_and_iteration(built, expert_buffer):
    fresh = build(built.name, expert_buffer)
    later = [jax.tree.leaves(built.method.host_data(s, i)) for s, i in ((1, 3), (0, 2), (0, INIT_ITERATION))]
    again = [jax.tree.leaves(fresh.host_data(s, i)) for s, i in ((0, INIT_ITERATION), (0, 2), (1, 3))][::-1]
    for a, b in zip(later, again):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    step0 = jax.tree.structure(built.method.host_data(0, 0))
    assert all(jax.tree.structure(built.method.host_data(0, i)) == step0 for i in (1, 5))  # the same kind each time


def test_prepare_accepts_the_tiny_run_and_returns_a_method(built):
    plan = RunPlan.of("tiny", REAL, iterations=3, seeds=(0, 1))
    prepared, facts = built.method.prepare(plan)
    assert (prepared is None or isinstance(prepared, Method)) and isinstance(facts, dict)
    assert isinstance(built.method.report(plan, 1), dict)


def test_it_optimises_a_tiny_problem(built, expert_buffer):
    """Stepping with one fixed key repeats the same network, batches and window: the loss must fall."""
    if built.name in OPTIMISES_NOTHING:
        pytest.skip(OPTIMISES_NOTHING[built.name])
    key = jax.random.PRNGKey(3)
    state = built.init(built.keys[0], built.inputs(0, INIT_ITERATION))
    losses = []
    for _ in range(4):
        state, metrics = built.step(state, key, built.inputs(0, 0))
        losses.append(float(metrics["match_loss"]))
    assert losses[-1] < losses[0], losses


def test_state_round_trips_through_a_checkpoint(built, tmp_path):
    state, _ = built.vstep(built.vinit(built.keys), built.keys)
    run = RunDir(tmp_path)
    run.open({"method": built.name})
    run.save(1, state)
    step, restored = RunDir(tmp_path).restore(state)
    assert step == 1
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
