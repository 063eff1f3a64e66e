import os
import subprocess
import sys
import textwrap

import pytest

from jaxdistill import cpu_tuning


def test_xla_scheduler_flag_is_added_once_and_a_user_setting_is_kept():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    cpu_tuning.configure_xla(env)
    assert env["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=2 "
                                "--xla_cpu_enable_concurrency_optimized_scheduler=false")
    cpu_tuning.configure_xla(env)
    assert env["XLA_FLAGS"].count("concurrency_optimized_scheduler") == 1
    user = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    cpu_tuning.configure_xla(user)
    assert user["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


def test_importing_jaxdistill_set_the_flag_for_this_process():
    assert "--xla_cpu_enable_concurrency_optimized_scheduler" in os.environ.get("XLA_FLAGS", "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_malloc_tunables_merge_with_existing_ones_and_respect_opt_out():
    env = cpu_tuning.malloc_tuning_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "PATH": "/bin"})
    if env is None:
        pytest.skip("not glibc")
    assert env["GLIBC_TUNABLES"].split(":") == ["glibc.malloc.arena_max=2", *cpu_tuning.MALLOC_TUNABLES]
    assert env["PATH"] == "/bin" and env["JAXDISTILL_MALLOC_TUNING"] == "0"
    assert cpu_tuning.malloc_tuning_env({"GLIBC_TUNABLES": env["GLIBC_TUNABLES"]}) is None  # already tuned
    assert cpu_tuning.malloc_tuning_env({"JAXDISTILL_MALLOC_TUNING": "0"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_reexec_restarts_the_command_once_with_the_same_arguments(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        print("start", flush=True)
        from jaxdistill.cpu_tuning import reexec_with_malloc_tuning
        reexec_with_malloc_tuning()
        print(os.environ.get("GLIBC_TUNABLES", ""), sys.argv[1:])
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXDISTILL_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, str(script), "a", "--b"], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    if cpu_tuning.malloc_tuning_env(env) is None:
        pytest.skip("not glibc")
    assert out[0] == out[1] == "start"  # ran twice: before and after the restart
    assert out[2] == f"{':'.join(cpu_tuning.MALLOC_TUNABLES)} ['a', '--b']"
