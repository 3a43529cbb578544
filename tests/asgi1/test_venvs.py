"""bench/venvs.py: recipes are cached by content, and a failed build fails loudly and leaves nothing."""

import importlib.util
import sys

import pytest

from .conftest import VENVS


@pytest.fixture
def venvs(monkeypatch):
    """A fresh copy of bench/venvs.py, so what a test changes in it stays in that test."""
    spec = importlib.util.spec_from_file_location("switchroom_bench_venvs", VENVS)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_an_unknown_venv_is_refused(venvs, tmp_path):
    with pytest.raises(ValueError, match="unknown venv"):
        venvs.ensure_venv("nonesuch", tmp_path)


def test_switchroom_is_the_running_interpreter(venvs, tmp_path):
    assert str(venvs.ensure_venv("switchroom", tmp_path)) == sys.executable


def test_the_cache_key_follows_the_recipe(venvs, monkeypatch):
    before = venvs._recipe_hash("interop")
    monkeypatch.setitem(venvs.RECIPES, "interop", {**venvs.RECIPES["interop"], "requirements": ["six"]})
    assert venvs._recipe_hash("interop") != before


def test_a_failed_build_raises_and_leaves_no_venv(venvs, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-project"
    monkeypatch.setitem(venvs.RECIPES, "broken", {"requirements": [str(missing)]})
    with pytest.raises(RuntimeError, match="build step failed"):
        venvs.ensure_venv("broken", tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_the_command_line_reports_errors_with_a_nonzero_status(venvs, tmp_path, capsys):
    assert venvs.main(["nonesuch", "--cache-dir", str(tmp_path)]) == 1
    assert "unknown venv" in capsys.readouterr().err
