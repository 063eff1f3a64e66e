"""The per-backend execution policy: the one place that asks which backend JAX runs on.

Every speed choice that depends on the backend (convolution kernel, pooling form, whether an iteration's inner loop
is one program or driven from Python, whether seeds are vmapped, how a class loop is written, how many chunks a real
batch is split into) is a field of `Policy`. Method and model code reads the policy in force (`current()`) while it is
traced; it never asks for the backend itself (a test greps for that). None of these choices changes what is computed,
only the order of float operations, memory and speed, so a policy is recorded with a run but is not part of its
identity.

Measured on a 2-core XLA:CPU (README "Performance"):
* a rolled `lax.scan` body runs 1.5-8x slower than the same body jitted on its own, so on CPU an iteration's loop is
  driven from Python (`iteration_loop='host'`), inner training loops are unrolled (`unroll_inner=True`) and a
  Trainer steps from Python (`train_driver='python'`); GPU/TPU keep one program with rolled loops;
* per-seed networks under vmap become grouped convolutions, slow on XLA:CPU, so seeds run one after another there;
* XLA:CPU's convolution weight gradient is slow: from MATMUL_MIN_BATCH images on, a ConvNet layer takes the Winograd
  or fast-weight-gradient kernel (`models/layers.py`); MTT's twice-differentiated student takes the im2col matmul;
* 2x2 average pooling as four strided slices fuses with its neighbours on CPU (6.89 -> 5.93 s per DC ipc-1
  iteration); elsewhere flax's reduce-window stays until timed there;
* per-example gradients (vmap over single examples) see a batch of one, where 'auto' picks XLA's convolution, whose
  vmapped weight gradient is a grouped convolution: a private PSG matching step at MNIST ipc 1 takes 4.6 s with it
  and 1.3 s with the fast-weight-gradient kernel, against 0.7 s for the non-private step (scripts/bench_psg.py);
* splitting each real batch in two halves a DC iteration's peak memory on CPU at the same speed.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Iterator

import jax

from jaxdistill.errors import ConfigError

# Measured on a 2-core XLA:CPU (scripts/bench_eval.py): for a 10-image batch XLA's conv is faster (38 vs 54 ms per
# ConvNet training step); from a few dozen images on its slow weight gradient dominates and the matmul forms win.
MATMUL_MIN_BATCH = 32
# Winograd's transforms cost about as much as its matmuls save when there are few input channels (the first layer).
WINOGRAD_MIN_CHANNELS = 16

CHOICES = {
    "conv_impl": ("auto", "xla", "matmul", "fastgrad", "winograd"),
    "student_conv_impl": ("auto", "xla", "matmul", "fastgrad", "winograd"),
    "per_example_conv_impl": ("auto", "xla", "matmul", "fastgrad", "winograd"),
    "pooling": ("slices", "reduce_window"),
    "class_loop": ("unroll", "scan"),
    "iteration_loop": ("host", "program"),
    "seeds": ("sequential", "vmap"),
    "train_driver": ("python", "scan"),
}


@dataclasses.dataclass(frozen=True)
class Policy:
    """How to run, not what to compute. Build one with `default_policy()` (per backend) and `replace` fields."""
    backend: str
    conv_impl: str  # 'auto': by layer shape (`conv_impl_for`), else one kernel for every ConvNet layer
    student_conv_impl: str  # the ConvNet kernel of trajectory matching's unrolled student
    per_example_conv_impl: str  # the ConvNet kernel of per-example gradients (PSG's private real gradient, vmapped)
    pooling: str  # 2x2 average pooling: 'slices' (four strided slices) or 'reduce_window' (flax)
    real_chunks: int  # split each real batch of gradient matching into this many parts (when it divides it)
    class_loop: str  # gradient matching's per-class work: 'unroll' (one copy per class) or 'scan'
    iteration_loop: str  # a method's StepLoop: 'host' (jitted body called from Python) or 'program' (one jit)
    seeds: str  # several seeds: 'vmap' (one program) or 'sequential'
    train_driver: str  # Trainer: 'python' (a jitted step per call) or 'scan' (whole epochs per call)
    unroll_inner: bool  # unroll inner training loops (gradient matching's network training between matches)

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"policy {name}={getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.real_chunks < 1:
            raise ConfigError(f"policy real_chunks must be >= 1, got {self.real_chunks}")

    def replace(self, **changes: Any) -> "Policy":
        """This policy with some fields changed (unknown names -> ConfigError)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"policy has no setting(s) {', '.join(sorted(unknown))}; its settings are "
                              f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def chunks_for(self, batch: int) -> int:
        """How many equal parts a real batch of `batch` images is split into (1 when real_chunks does not divide)."""
        return self.real_chunks if batch % self.real_chunks == 0 else 1

    def conv_impl_for(self, batch_size: int, in_channels: int | None = None, kernel_size: int = 3) -> str:
        """The convolution kernel of a layer: `conv_impl` when fixed, else by backend and shape: XLA's own on GPU/TPU
        and for small CPU batches; on CPU from MATMUL_MIN_BATCH images on, 'winograd' for 3x3 kernels over
        WINOGRAD_MIN_CHANNELS channels or more (`in_channels` None: assumed many), 'fastgrad' otherwise."""
        if self.conv_impl != "auto":
            return self.conv_impl
        if self.backend != "cpu" or batch_size < MATMUL_MIN_BATCH:
            return "xla"
        if kernel_size == 3 and (in_channels is None or in_channels >= WINOGRAD_MIN_CHANNELS):
            return "winograd"
        return "fastgrad"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_policy(backend: str | None = None) -> Policy:
    """The measured policy for `backend` (default: the backend JAX runs on)."""
    backend = backend or jax.default_backend()
    cpu = backend == "cpu"
    return Policy(backend=backend, conv_impl="auto", student_conv_impl="matmul" if cpu else "auto",
                  per_example_conv_impl="fastgrad" if cpu else "auto",
                  pooling="slices" if cpu else "reduce_window", real_chunks=2 if cpu else 1, class_loop="unroll",
                  iteration_loop="host" if cpu else "program", seeds="sequential" if cpu else "vmap",
                  train_driver="python" if cpu else "scan", unroll_inner=cpu)


_CURRENT: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("jaxdistill_policy", default=None)


def current() -> Policy:
    """The policy in force: the innermost `use(...)`, else the default for this backend. Code being traced reads it
    then, so a function jitted under one policy keeps that policy's program."""
    return _CURRENT.get() or default_policy()


@contextlib.contextmanager
def use(policy: Policy | None = None, **changes: Any) -> Iterator[Policy]:
    """Run a block under `policy` (default: the one in force) with `changes`; yields the policy used."""
    chosen = (policy or current()).replace(**changes) if changes else (policy or current())
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)


__all__ = ["CHOICES", "MATMUL_MIN_BATCH", "Policy", "WINOGRAD_MIN_CHANNELS", "current", "default_policy", "use"]
