"""How a Method is stepped: jit, vmap over seeds, the host-driven loop, donated buffers, all per the policy in force.

`Driver(method, seeds)` turns a `Method` into two calls over a batch of seeds (states stacked on a leading axis):
    states = driver.init(real)
    states, metrics = driver.step(states, iteration, real)
with the key tree every run shares: seed s has keys split(PRNGKey(s)) = (init key, base key) and iteration i uses
fold_in(base key, i), so a resumed run and a run of other seeds alongside give the same numbers. How it runs is the
policy's (`jaxdistill.policy`): seeds as one vmapped program or one after another, and an iteration as one jitted
program or its `StepLoop` driven from Python (a jitted begin, `length` jitted bodies, a jitted end; on XLA:CPU a
rolled loop body runs 1.5-2x slower than the same body jitted on its own). Every form computes the same function
(tests/methods/test_battery.py checks the host-driven form against `step`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jaxdistill import policy as policy_lib
from jaxdistill.cpu_tuning import release_free_memory
from jaxdistill.data.arrays import RealData
from jaxdistill.methods.base import INIT_ITERATION, Method, StepInputs, StepLoop


def seed_keys(seeds: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """Per seed: an init key and a base key for iterations (iteration i uses fold_in(base, i))."""
    pairs = jnp.stack([jax.random.split(jax.random.PRNGKey(int(s))) for s in seeds])
    return pairs[:, 0], pairs[:, 1]


def stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


class HostDriven:
    """`step` with its loop driven from Python: jitted begin, `length` calls of a jitted body, jitted end."""

    def __init__(self, loop: StepLoop):
        self.loop = loop
        self.begin, self.end = jax.jit(loop.begin), jax.jit(loop.end)
        self.body = jax.jit(loop.body, donate_argnums=0)

    def __call__(self, state, key, inputs: StepInputs):
        carry = self.begin(state, key, inputs)
        for i in range(self.loop.length):
            carry = self.body(carry, jnp.asarray(i, jnp.int32), inputs)
        return self.end(carry, inputs)

    def precompile(self, state, key, inputs: StepInputs) -> None:
        carry = jax.eval_shape(self.loop.begin, state, key, inputs)
        self.begin.lower(state, key, inputs).compile()
        if self.loop.length:
            self.body.lower(carry, jnp.zeros((), jnp.int32), inputs).compile()
        self.end.lower(carry, inputs).compile()


def compiled_step(m: Method, state, key: jax.Array, inputs: StepInputs) -> Callable:
    """One seed's step compiled for these shapes: the method's loop driven from Python under the policy's 'host'
    iteration loop (when it has a loop), else `jit(step)`. Compiling ahead of the first call lets the compiler's
    garbage be handed back (`release_free_memory`) before the first iteration allocates on top of it."""
    if m.loop.length > 0 and policy_lib.current().iteration_loop == "host":
        step = HostDriven(m.loop)
        step.precompile(state, key, inputs)
    else:
        step = jax.jit(m.step)
        step.lower(state, key, inputs).compile()
    release_free_memory()
    return step


class Driver:
    """Steps `method` for `seeds` under `policy` (default: the one in force when the driver is built)."""

    def __init__(self, method: Method, seeds: Sequence[int], policy: policy_lib.Policy | None = None):
        self.method, self.seeds = method, [int(s) for s in seeds]
        self.policy = policy or policy_lib.current()
        self.init_keys, self.step_keys = seed_keys(self.seeds)
        self._fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
        self._step: Callable | None = None

    def host_inputs(self, real: RealData, iteration: int) -> list[StepInputs]:
        """Each seed's inputs of `iteration` (INIT_ITERATION: of init): the real data and its host data."""
        return [StepInputs(real, jax.tree.map(jnp.asarray, self.method.host_data(s, iteration))) for s in self.seeds]

    def init(self, real: RealData) -> Any:
        with policy_lib.use(self.policy):
            inputs = self.host_inputs(real, INIT_ITERATION)
            init = jax.jit(jax.vmap(self.method.init, in_axes=(0, StepInputs(None, 0))))
            return init(self.init_keys, StepInputs(real, stack([i.host for i in inputs])))

    def step(self, states: Any, iteration: int, real: RealData) -> tuple[Any, dict[str, jax.Array]]:
        """Iteration `iteration` of every seed; compiled on the first call (so a finished run compiles nothing)."""
        inputs = self.host_inputs(real, iteration)
        keys = self._fold(self.step_keys, iteration)
        with policy_lib.use(self.policy):
            if self._step is None:
                self._step = self._build(states, keys, inputs)
            return self._step(states, keys, inputs)

    def _build(self, states, keys, inputs) -> Callable:
        m = self.method
        if self.policy.seeds == "vmap":
            batched = jax.jit(jax.vmap(m.step, in_axes=(0, 0, StepInputs(None, 0))), donate_argnums=0)
            return lambda states, keys, inputs: batched(states, keys, StepInputs(inputs[0].real,
                                                                                 stack([i.host for i in inputs])))
        one = compiled_step(m, jax.tree.map(lambda a: a[0], states), keys[0], inputs[0])

        def sequential(states, keys, inputs):
            outs = [one(jax.tree.map(lambda a: a[s], states), keys[s], inputs[s]) for s in range(len(self.seeds))]
            return stack(outs)
        return sequential


__all__ = ["Driver", "HostDriven", "compiled_step", "seed_keys", "stack"]
