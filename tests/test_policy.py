"""The per-backend policy: the only place that asks for the backend, and what it picks."""
import re
from pathlib import Path

import jax
import pytest

from jaxdistill import policy
from jaxdistill.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1] / "jaxdistill"


def test_the_backend_is_queried_only_in_the_policy_module():
    query = re.compile(r"default_backend\s*\(|\.platform\b.*==|get_backend\s*\(")
    offenders = [f"{path.relative_to(PACKAGE)}:{n}" for path in sorted(PACKAGE.rglob("*.py"))
                 if path.name != "policy.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if query.search(line) and not line.lstrip().startswith("#")]
    assert offenders == [], f"backend queried outside jaxdistill/policy.py: {offenders}"


def test_defaults_per_backend():
    cpu, gpu = policy.default_policy("cpu"), policy.default_policy("gpu")
    assert (cpu.iteration_loop, cpu.seeds, cpu.train_driver, cpu.unroll_inner) == ("host", "sequential", "python", True)
    assert (gpu.iteration_loop, gpu.seeds, gpu.train_driver, gpu.unroll_inner) == ("program", "vmap", "scan", False)
    assert (cpu.real_chunks, gpu.real_chunks) == (2, 1)
    assert (cpu.pooling, gpu.pooling) == ("slices", "reduce_window")
    assert cpu.class_loop == gpu.class_loop == "unroll"
    assert policy.default_policy().backend == jax.default_backend()


def test_conv_kernel_by_layer_shape():
    cpu, gpu = policy.default_policy("cpu"), policy.default_policy("gpu")
    assert cpu.conv_impl_for(1) == "xla"
    assert cpu.conv_impl_for(policy.MATMUL_MIN_BATCH, policy.WINOGRAD_MIN_CHANNELS) == "winograd"
    assert cpu.conv_impl_for(policy.MATMUL_MIN_BATCH, 1) == "fastgrad"  # the first layer
    assert cpu.conv_impl_for(policy.MATMUL_MIN_BATCH, 128, kernel_size=5) == "fastgrad"
    assert gpu.conv_impl_for(256, 128) == "xla"
    assert cpu.replace(conv_impl="matmul").conv_impl_for(1) == "matmul"


def test_use_scopes_a_policy_and_restores_the_previous_one():
    before = policy.current()
    with policy.use(class_loop="scan") as inner:
        assert policy.current() is inner and inner.class_loop == "scan"
        with policy.use(real_chunks=4):
            assert policy.current().class_loop == "scan" and policy.current().real_chunks == 4
        assert policy.current().real_chunks == inner.real_chunks
    assert policy.current() == before


@pytest.mark.parametrize("changes, words", [({"class_loop": "vmap"}, "class_loop"), ({"chunks": 2}, "no setting"),
                                            ({"real_chunks": 0}, "real_chunks")])
def test_bad_settings_are_refused_by_name(changes, words):
    with pytest.raises(ConfigError, match=words):
        policy.current().replace(**changes)
