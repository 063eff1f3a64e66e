"""The battery every registered method must pass (the Optax-style shared test of the method interface)."""
import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill.checkpoint import RunDir
from jaxdistill.methods import METHODS, Method, make_method, method_config
from tests import helpers

REAL = helpers.tiny_real(num_per_class=4, num_classes=3)
IPC = 2


@pytest.fixture(scope="session")
def expert_buffer(tmp_path_factory):
    """A tiny buffer of expert trajectories on REAL, for methods that match trajectories."""
    from jaxdistill.experts import ExpertConfig, train_experts
    path = tmp_path_factory.mktemp("experts")
    cfg = ExpertConfig(model_kwargs=(("depth", 1), ("width", 4)), epochs=3, batch_size=6, augment="none",
                       parallel="vmap")
    train_experts(path, np.asarray(REAL.images), np.asarray(REAL.labels), "tiny", 3, [0, 1], cfg, progress=False)
    return str(path)


class Battery(NamedTuple):
    name: str
    method: Method
    data: Any  # what `step` takes besides state and key: the real data, or the method's host data


def build(name, buffer_dir):
    cls = METHODS[name].config_cls
    overrides = dict(getattr(cls, "TEST_OVERRIDES", {}))
    if "buffer_dir" in {f.name for f in dataclasses.fields(cls)}:
        overrides["buffer_dir"] = buffer_dir
    m = make_method(name, method_config(name, ipc=IPC, **overrides))
    return m, (REAL if m.host_batch is None else jax.tree.map(jnp.asarray, m.host_batch(0, 0)))


@pytest.fixture(scope="module", params=sorted(METHODS))
def compiled(request, expert_buffer):
    m, data = build(request.param, expert_buffer)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    vinit = jax.jit(jax.vmap(m.init, in_axes=(0, None)))
    vstep = jax.jit(jax.vmap(m.step, in_axes=(0, 0, None)))
    return request.param, m, keys, vinit, lambda state, keys_: vstep(state, keys_, data), data


def test_synthetic_set_shapes_and_finite(compiled):
    name, m, keys, vinit, vstep, data = compiled
    state = vinit(keys, REAL)
    state, metrics = vstep(state, keys)
    syn = jax.vmap(m.synthetic)(state)
    assert syn.images.shape == (2, 3 * IPC, 8, 8, 1)
    assert syn.labels.shape[:2] == (2, 3 * IPC)
    assert bool(jnp.all(jnp.isfinite(syn.images)))
    for k, v in metrics.items():
        assert v.shape[0] == 2 and bool(jnp.all(jnp.isfinite(v))), k
    hard = syn.labels if syn.labels.ndim == 2 else jnp.argmax(syn.labels, -1)
    assert hard[0].tolist() == [c for c in range(3) for _ in range(IPC)]


def test_step_compiles_once(compiled):
    name, m, keys, vinit, vstep, data = compiled
    step = jax.jit(m.step)
    state = m.init(keys[0], REAL)
    for i in range(3):
        state, _ = step(state, jax.random.fold_in(keys[1], i), data)
    assert step._cache_size() == 1


def test_vmap_over_keys_matches_single_runs(compiled):
    name, m, keys, vinit, vstep, data = compiled
    batched, _ = vstep(vinit(keys, REAL), keys)
    for i in range(2):
        single, _ = jax.jit(m.step)(jax.jit(m.init)(keys[i], REAL), keys[i], data)
        np.testing.assert_allclose(m.synthetic(single).images, jax.vmap(m.synthetic)(batched).images[i],
                                   rtol=1e-4, atol=1e-5)


def test_state_round_trips_through_a_checkpoint(compiled, tmp_path):
    name, m, keys, vinit, vstep, data = compiled
    state, _ = vstep(vinit(keys, REAL), keys)
    run = RunDir(tmp_path)
    run.open({"method": name})
    run.save(1, state)
    step, restored = RunDir(tmp_path).restore(state)
    assert step == 1
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
