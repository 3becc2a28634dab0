"""Relative paths typed at the shell still resolve after Inspect chdirs into a task file's folder."""

from pathlib import Path

import pytest

from userlm_plugin._paths import resolve_user_path


def test_relative_path_falls_back_to_the_shell_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lic.json").write_text("[]")
    (tmp_path / "evals").mkdir()
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.chdir(tmp_path / "evals")  # what Inspect does while it builds a file task
    assert resolve_user_path("data/lic.json") == tmp_path / "data" / "lic.json"
    assert resolve_user_path("missing.json") == Path("missing.json")  # errors name what was typed


def test_existing_relative_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text("simulator: scripted")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", "/nonexistent")
    assert resolve_user_path("a.yaml") == Path("a.yaml")
