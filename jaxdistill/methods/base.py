"""The method interface every distillation method shares, and the registry of methods.

A method is built by a lowercase factory from its config and is a `Method`: pure functions and one loop description,
every field always present (the Optax shape: `method(...)` fills in the neutral parts a method does not need):

    init(key, inputs) -> state                       synthetic set + optimiser state + method state
    step(state, key, inputs) -> (state, metrics)     one outer iteration; jit-able, vmap-able over (state, key, host)
    synthetic(state) -> SyntheticSet                 what gets evaluated and saved (with a learned lr, if any)
    loop: StepLoop                                   step == run_loop(loop, ...): how the iteration splits into a
                                                     begin, `length` bodies and an end (length 0: no inner loop)
    host_data(seed, iteration) -> pytree             what the host reads for an iteration (MTT's expert window);
                                                     iteration INIT_ITERATION (-1) feeds `init`; () when nothing
    prepare(plan) -> (Method | None, facts)          checked against the run before it starts (dataset sizes, run
                                                     length); returns the method to run instead (PSG: its noise
                                                     calibrated to the whole run) or None for this one, and facts
                                                     to record
    report(plan, iteration) -> dict                  facts of an iteration known on the host (PSG's epsilon)

`inputs` is always `StepInputs(real, host)`: the real training data (on device, indexed by class) and the host data
of that (seed, iteration), which must depend on nothing else, so that a resumed run sees the same data. The driver
(`jaxdistill.driver`) compiles `step` once per run, vmaps it over seeds or drives `loop` from Python, per policy;
randomness comes only from the key it is given (`fold_in(seed_key, iteration)`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdistill.data.arrays import RealData
from jaxdistill.errors import ConfigError
from jaxdistill.synthetic import SyntheticSet

State = Any
Metrics = dict[str, jax.Array]
INIT_ITERATION = -1  # host_data(seed, INIT_ITERATION) is what `init` gets


class StepInputs(NamedTuple):
    """What init and step get besides state and key: the real data (shared by seeds) and this seed's host data."""
    real: RealData
    host: Any = ()


class RunPlan(NamedTuple):
    """What a run is about to do, for `Method.prepare` to check (and, for PSG, to calibrate its noise to)."""
    dataset: str
    num_classes: int
    image_shape: tuple[int, ...]
    class_counts: tuple[int, ...]
    iterations: int
    seeds: tuple[int, ...]
    zca: bool = False  # the images are ZCA-whitened (trajectory matching's CIFAR protocol), not mean/std normalised

    @classmethod
    def of(cls, dataset: str, real: RealData, iterations: int, seeds=(0,), zca: bool = False) -> "RunPlan":
        import numpy as np
        return cls(dataset, real.num_classes, real.image_shape, tuple(int(c) for c in np.asarray(real.class_counts)),
                   int(iterations), tuple(int(s) for s in seeds), bool(zca))

    @property
    def min_class_count(self) -> int:
        return min(self.class_counts)


class StepLoop(NamedTuple):
    """An iteration as begin -> `length` x body -> end; `length` may be 0."""
    begin: Callable[[State, jax.Array, StepInputs], Any]  # (state, key, inputs) -> carry
    body: Callable[[Any, jax.Array, StepInputs], Any]  # (carry, i, inputs) -> carry, i an int32 scalar
    length: int
    end: Callable[[Any, StepInputs], tuple[State, Metrics]]  # (carry, inputs) -> (state, metrics)


def run_loop(loop: StepLoop, state: State, key: jax.Array, inputs: StepInputs) -> tuple[State, Metrics]:
    """`step` from its StepLoop, as one program: the body inline when it runs once, else a `lax.scan`."""
    carry = loop.begin(state, key, inputs)
    if loop.length == 1:
        carry = loop.body(carry, jnp.zeros((), jnp.int32), inputs)
    elif loop.length > 1:
        carry, _ = jax.lax.scan(lambda c, i: (loop.body(c, i, inputs), None), carry,
                                jnp.arange(loop.length, dtype=jnp.int32))
    return loop.end(carry, inputs)


def single_stage(step: Callable) -> StepLoop:
    """The StepLoop of a step with no inner loop worth driving from the host: begin keeps the arguments, end steps."""
    return StepLoop(lambda state, key, inputs: (state, key), lambda carry, i, inputs: carry, 0,
                    lambda carry, inputs: step(carry[0], carry[1], inputs))


class Method(NamedTuple):
    init: Callable[[jax.Array, StepInputs], State]
    step: Callable[[State, jax.Array, StepInputs], tuple[State, Metrics]]
    synthetic: Callable[[State], SyntheticSet]
    loop: StepLoop
    host_data: Callable[[int, int], Any]
    prepare: Callable[[RunPlan], tuple["Method | None", dict[str, Any]]]
    report: Callable[[RunPlan, int], dict[str, float]]


def no_host_data(seed: int, iteration: int) -> tuple:
    return ()


def no_report(plan: RunPlan, iteration: int) -> dict[str, float]:
    return {}


def method(init, synthetic, *, step=None, loop: StepLoop | None = None, host_data=no_host_data,
           check: Callable[[RunPlan], dict[str, Any] | None] | None = None, report=no_report) -> Method:
    """Build a Method from the parts a method has: `step` or its `loop` (or both; one is derived from the other),
    `host_data`, and `check(plan)` (raise ConfigError when the run cannot work; may return facts to record)."""
    if loop is None and step is None:
        raise ValueError("a method needs a step or a loop")
    loop = loop or single_stage(step)
    step = step or (lambda state, key, inputs: run_loop(loop, state, key, inputs))

    def prepare(plan: RunPlan):
        facts = check(plan) if check is not None else None
        return None, dict(facts or {})

    return Method(init, step, synthetic, loop, host_data, prepare, report)


def check_minimums(config: Any, **minimums: int) -> None:
    """ConfigError naming the first setting of `config` below its minimum (settings that are None are skipped)."""
    for name, low in minimums.items():
        value = getattr(config, name)
        if value is not None and value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")


class MethodEntry(NamedTuple):
    factory: Callable[[Any], Method]
    config_cls: type
    description: str
    dataset_defaults: Callable[[str], dict[str, Any]]  # dataset name -> settings that differ per dataset
    iterations: int  # the paper's number of outer iterations (a run setting, not part of the method config)


METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, config_cls: type, description: str, *, iterations: int,
                    dataset_defaults: Callable[[str], dict[str, Any]] | None = None):
    """Decorator: register `factory(config) -> Method` under `name` with its config dataclass and the paper's
    number of outer iterations.

    `dataset_defaults(dataset)` gives the settings whose paper value depends on the dataset (e.g. DSA's strategy
    drops flips on digits); `method_config(..., dataset=...)` applies them under the caller's overrides.
    """
    def wrap(factory):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = MethodEntry(factory, config_cls, description, dataset_defaults or (lambda dataset: {}),
                                    iterations)
        return factory
    return wrap


def method_config(name: str, dataset: str | None = None, **overrides: Any):
    """The config dataclass of method `name` with `overrides` applied (unknown fields -> ConfigError), on top of the
    method's defaults for `dataset` when one is given."""
    entry = get_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"method {name!r} has no setting(s) {', '.join(sorted(unknown))}; "
                          f"its settings are {', '.join(sorted(fields))}")
    defaults = entry.dataset_defaults(dataset) if dataset is not None else {}
    return entry.config_cls(**{**defaults, **overrides})


def make_method(name: str, config=None, **overrides: Any) -> Method:
    """Build method `name` from a config object or from keyword overrides of its defaults."""
    entry = get_entry(name)
    if config is None:
        config = method_config(name, **overrides)
    return entry.factory(config)


def get_entry(name: str) -> MethodEntry:
    try:
        return METHODS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}") from None
