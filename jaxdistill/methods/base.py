"""The method interface every distillation method shares, and the registry of methods.

A method is built by a lowercase factory from its config and is three pure functions:
    init(key, real) -> state                        synthetic set + optimiser state + method state
    step(state, key, real) -> (state, metrics)      one outer iteration; jit-able, vmap-able over (state, key)
    synthetic(state) -> SyntheticSet                what gets evaluated and saved
The runner jit-compiles `step` once per run and vmaps it over seeds; randomness comes only from the key it is given
(`fold_in(seed_key, iteration)`).

A method whose iteration is itself a loop (DC's outer_loop matches, MTT's student steps) may also expose it as a
`StepLoop`: step == end(body^length(begin(state, key, real)), real). On XLA:CPU a rolled loop (or a conditional)
runs its body about 1.5-2x slower than the same body jitted on its own, so there the runner calls a jitted `body`
from Python instead of `step` (runner.py `HostDriven`); `step` stays the one-program form for GPU/TPU and vmap.
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


class StepLoop(NamedTuple):
    """An iteration as begin -> `length` x body -> end (see the module docstring); `length` may be 0."""
    begin: Callable[[State, jax.Array, RealData], Any]  # (state, key, real) -> carry
    body: Callable[[Any, jax.Array, RealData], Any]  # (carry, i, real) -> carry, i an int32 scalar
    length: int
    end: Callable[[Any, RealData], tuple[State, Metrics]]  # (carry, real) -> (state, metrics)


def run_loop(loop: StepLoop, state: State, key: jax.Array, real: RealData) -> tuple[State, Metrics]:
    """`step` from its StepLoop, as one program: the body inline when it runs once, else a `lax.scan`."""
    carry = loop.begin(state, key, real)
    if loop.length == 1:
        carry = loop.body(carry, jnp.zeros((), jnp.int32), real)
    elif loop.length > 1:
        carry, _ = jax.lax.scan(lambda c, i: (loop.body(c, i, real), None), carry,
                                jnp.arange(loop.length, dtype=jnp.int32))
    return loop.end(carry, real)


class Method(NamedTuple):
    init: Callable[[jax.Array, RealData], State]
    step: Callable[[State, jax.Array, Any], tuple[State, Metrics]]
    synthetic: Callable[[State], SyntheticSet]
    loop: StepLoop | None = None
    # Host-side data of an iteration, for methods whose step needs more than the real data: (seed, iteration) ->
    # a pytree the runner passes to `step` in place of the real data (MTT's expert window, read from disk). It
    # must depend only on its arguments, so that a resumed run sees the same data.
    host_batch: Callable[[int, int], Any] | None = None


class MethodEntry(NamedTuple):
    factory: Callable[[Any], Method]
    config_cls: type
    description: str
    dataset_defaults: Callable[[str], dict[str, Any]]  # dataset name -> settings that differ per dataset


METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, config_cls: type, description: str,
                    dataset_defaults: Callable[[str], dict[str, Any]] | None = None):
    """Decorator: register `factory(config) -> Method` under `name` with its config dataclass.

    `dataset_defaults(dataset)` gives the settings whose paper value depends on the dataset (e.g. DSA's strategy
    drops flips on digits); `method_config(..., dataset=...)` applies them under the caller's overrides.
    """
    def wrap(factory):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = MethodEntry(factory, config_cls, description, dataset_defaults or (lambda dataset: {}))
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
