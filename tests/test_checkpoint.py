"""RunDir checkpoints: named-tuple states restore by field name, and an optional field left empty (None) changes
neither what is written nor what an older checkpoint restores into."""
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxdistill.checkpoint import RunDir


class Old(NamedTuple):
    images: jnp.ndarray
    labels: jnp.ndarray


class New(NamedTuple):
    images: jnp.ndarray
    labels: jnp.ndarray
    lr: jnp.ndarray | None = None


class State(NamedTuple):
    synthetic: NamedTuple
    opt_state: tuple
    iteration: jnp.ndarray  # sorts before the other fields: restoring must not depend on key order


def state(cls):
    return State(cls(jnp.arange(6.0).reshape(2, 3), jnp.array([0, 1])), (jnp.ones(3), {"m": jnp.zeros(2)}),
                 jnp.array(7))


def test_a_checkpoint_without_a_new_optional_field_restores_into_todays_state(tmp_path):
    old = RunDir(tmp_path)
    old.open({"kind": "test"})
    old.save(3, state(Old))
    old.close()
    step, restored = RunDir(tmp_path).restore(state(New))
    assert step == 3 and isinstance(restored.synthetic, New) and restored.synthetic.lr is None
    np.testing.assert_array_equal(restored.synthetic.images, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(restored.opt_state[1]["m"], np.zeros(2))
    assert int(restored.iteration) == 7


def test_a_set_field_round_trips(tmp_path):
    run = RunDir(tmp_path)
    run.open({"kind": "test"})
    full = state(New)._replace(synthetic=New(jnp.ones((2, 3)), jnp.array([1, 0]), jnp.array(0.5)))
    run.save(1, full)
    _, restored = RunDir(tmp_path).restore(full)
    assert float(restored.synthetic.lr) == 0.5
    np.testing.assert_array_equal(restored.synthetic.labels, [1, 0])
