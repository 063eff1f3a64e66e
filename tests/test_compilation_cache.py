import jax
import pytest

from jaxdistill import compilation_cache as cc


def test_folder_from_the_environment_or_the_user_cache_or_off(tmp_path):
    assert cc.compilation_cache_dir({cc.ENV: "0"}) is None
    assert cc.compilation_cache_dir({cc.ENV: str(tmp_path / "x")}) == tmp_path / "x"


def test_default_folder_lies_in_the_jaxdistill_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXDISTILL_CACHE", str(tmp_path / "c"))
    assert cc.compilation_cache_dir({}) == tmp_path / "c" / "xla"


@pytest.fixture
def restore_jax_cache_config():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_enable_points_jax_at_the_folder(tmp_path, restore_jax_cache_config):
    assert cc.enable_compilation_cache(tmp_path / "xla") == tmp_path / "xla"
    assert (tmp_path / "xla").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")


def test_an_unusable_folder_leaves_the_cache_off_without_an_error(tmp_path, restore_jax_cache_config):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cc.enable_compilation_cache(blocker / "xla") is None
