"""The CPU settings are an explicit opt-in: importing jaxdistill changes nothing global; `cpu_tuning.apply()` (which
the command and the scripts call) sets them, an environment variable switches them off, and asking after jax has
started its backend is an error naming the fix. Processes whose environment matters run as subprocesses."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from jaxdistill import cpu_tuning

FLAG = cpu_tuning.XLA_CPU_FLAGS[0]
OUR_VARS = ("XLA_FLAGS", "GLIBC_TUNABLES", cpu_tuning.OFF_ENV, cpu_tuning.MALLOC_OFF_ENV, cpu_tuning.APPLIED_ENV)


def clean_env(**extra) -> dict:
    """This process's environment without any of the variables the tuning reads or writes, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARS}
    env.update(extra)
    return env


def run_python(code: str, env: dict, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def glibc_linux() -> bool:
    return cpu_tuning.malloc_tuning_env(clean_env()) is not None


def test_importing_jaxdistill_changes_no_environment_variable_or_jax_setting():
    out = run_python("""
        import json, os
        import jax
        before_env, before_config = dict(os.environ), dict(jax.config.values)
        import jaxdistill, jaxdistill.cpu_tuning, jaxdistill.records, jaxdistill.compilation_cache, jaxdistill.cli
        import jaxdistill.runner  # and everything it imports
        print(json.dumps([dict(os.environ) == before_env, "XLA_FLAGS" in os.environ,
                          {k: str(v) for k, v in jax.config.values.items() if before_config.get(k) != v},
                          jaxdistill.cpu_tuning.backend_started()]))
    """, clean_env())
    same_env, has_xla_flags, changed_config, backend_started = json.loads(out[-1])
    assert same_env and not has_xla_flags and changed_config == {}
    assert not backend_started  # so `cpu_tuning.apply()` may still come after the imports


def test_xla_scheduler_flag_is_added_once_and_a_user_setting_is_kept():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert cpu_tuning.configure_xla(env) == [FLAG]
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {FLAG}"
    assert cpu_tuning.configure_xla(env) == []
    assert env["XLA_FLAGS"].count("concurrency_optimized_scheduler") == 1
    user = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert cpu_tuning.configure_xla(user) == []
    assert user["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


def test_apply_sets_the_xla_flag_before_the_backend_starts_and_reports_it():
    out = run_python("""
        import json, os
        from jaxdistill import cpu_tuning
        settings = cpu_tuning.apply()
        import jax.numpy as jnp
        jnp.ones(2).block_until_ready()  # the backend starts with the flag
        print(json.dumps([os.environ["XLA_FLAGS"], settings, cpu_tuning.applied_settings(),
                          cpu_tuning.describe(settings)]))
    """, clean_env(XLA_FLAGS="--xla_force_host_platform_device_count=1"))
    xla_flags, settings, later, line = json.loads(out[-1])
    assert xla_flags == f"--xla_force_host_platform_device_count=1 {FLAG}"
    assert settings == later
    assert settings["xla_flags_added"] == settings["xla_tuning_flags"] == [FLAG]
    assert not settings["off"] and not settings["malloc_tuned"]  # no restart asked for
    assert line.startswith(f"cpu tuning: XLA_FLAGS += {FLAG}")


def test_apply_after_the_backend_started_is_an_error_naming_the_fix():
    out = run_python("""
        import os
        import jax.numpy as jnp
        from jaxdistill import cpu_tuning
        from jaxdistill.errors import ConfigError
        assert not cpu_tuning.backend_started()
        jnp.ones(2).block_until_ready()
        assert cpu_tuning.backend_started()
        try:
            cpu_tuning.apply()
        except ConfigError as e:
            print(type(e).__name__, "XLA_FLAGS" in os.environ)
            print(e)
    """, clean_env())
    assert out[0] == "BackendStartedError False"  # and nothing was changed
    assert "before any JAX computation" in out[1] and "jaxdistill.cpu_tuning.apply()" in out[1]


def test_the_off_switch_turns_everything_off_even_late():
    out = run_python("""
        import json, os
        import jax.numpy as jnp
        jnp.ones(2).block_until_ready()
        from jaxdistill import cpu_tuning
        settings = cpu_tuning.apply(reexec=True)  # off: neither an error nor a restart
        print(json.dumps([settings, "XLA_FLAGS" in os.environ, cpu_tuning.describe(settings)]))
    """, clean_env(JAXDISTILL_CPU_TUNING="0"))
    settings, has_xla_flags, line = json.loads(out[-1])
    assert settings["off"] and not has_xla_flags and settings["xla_flags_added"] == []
    assert line == "cpu tuning: off (JAXDISTILL_CPU_TUNING=0)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_malloc_tunables_merge_with_existing_ones_and_respect_both_switches():
    env = cpu_tuning.malloc_tuning_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "PATH": "/bin"})
    if env is None:
        pytest.skip("not glibc")
    assert env["GLIBC_TUNABLES"].split(":") == ["glibc.malloc.arena_max=2", *cpu_tuning.MALLOC_TUNABLES]
    assert env["PATH"] == "/bin"
    assert cpu_tuning.malloc_tuning_env({"GLIBC_TUNABLES": env["GLIBC_TUNABLES"]}) is None  # already tuned
    assert cpu_tuning.malloc_tuning_env({cpu_tuning.APPLIED_ENV: env[cpu_tuning.APPLIED_ENV]}) is None  # restarted
    assert cpu_tuning.malloc_tuning_env({"JAXDISTILL_MALLOC_TUNING": "0"}) is None
    assert cpu_tuning.malloc_tuning_env({"JAXDISTILL_CPU_TUNING": "0"}) is None
    assert cpu_tuning.applied_settings(env)["glibc_tunables_added"] == list(cpu_tuning.MALLOC_TUNABLES)
    assert cpu_tuning.applied_settings(env)["malloc_tuned"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_apply_with_reexec_restarts_once_with_the_same_arguments_and_records_it():
    code = """
        import json, os, sys
        print("start", flush=True)
        from jaxdistill import cpu_tuning
        settings = cpu_tuning.apply(reexec=True)
        print(json.dumps([os.environ.get("GLIBC_TUNABLES", ""), sys.argv[1:], settings]))
    """
    out = run_python(code, clean_env(), "a", "--b")
    if not glibc_linux():
        pytest.skip("not glibc")
    assert out[0] == out[1] == "start"  # ran twice: before and after the restart
    tunables, argv, settings = json.loads(out[2])
    assert tunables == ":".join(cpu_tuning.MALLOC_TUNABLES) and argv == ["a", "--b"]
    assert settings["glibc_tunables_added"] == list(cpu_tuning.MALLOC_TUNABLES) and settings["malloc_tuned"]
    assert settings["xla_flags_added"] == [FLAG]  # added before the restart, inherited by it
    out = run_python(code, clean_env(JAXDISTILL_MALLOC_TUNING="0"))
    assert out[0] == "start" and len(out) == 2  # no restart
    tunables, _, settings = json.loads(out[1])
    assert tunables == "" and settings["malloc_off"] and settings["xla_flags_added"] == [FLAG]


@pytest.mark.slow
def test_jaxdistill_verbose_prints_the_settings_the_command_applied(tmp_path):
    command = [sys.executable, "-m", "jaxdistill", "--verbose", "datasets", "--cache-dir", str(tmp_path)]
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stderr.splitlines() if l.startswith("cpu tuning:"))
    assert f"XLA_FLAGS += {FLAG}" in line
    if glibc_linux():
        assert f"GLIBC_TUNABLES={':'.join(cpu_tuning.MALLOC_TUNABLES)}" in line
    off = subprocess.run(command, env=clean_env(JAXDISTILL_CPU_TUNING="0"), capture_output=True, text=True,
                         timeout=120)
    assert "cpu tuning: off (JAXDISTILL_CPU_TUNING=0)" in off.stderr.splitlines()
