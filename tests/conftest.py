"""Fixtures shared by the template and CLI tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _git_identity() -> Iterator[None]:
    """Let tests commit rendered projects on a machine with no git identity."""
    saved = {k: os.environ.get(k) for k in _GIT_ENV}
    os.environ.update(_GIT_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_GIT_ENV = {
    "GIT_AUTHOR_NAME": "avanzada tests",
    "GIT_AUTHOR_EMAIL": "tests@avanzada.invalid",
    "GIT_COMMITTER_NAME": "avanzada tests",
    "GIT_COMMITTER_EMAIL": "tests@avanzada.invalid",
}


@pytest.fixture
def avanzada_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private template store, so tests never touch the user's own."""
    home = tmp_path / "avanzada-home"
    monkeypatch.setenv("AVANZADA_HOME", str(home))
    return home


def git(cwd: Path, *args: str) -> str:
    """Run git in cwd and return its output; fail loudly with its stderr."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def commit_all(project: Path, message: str = "snapshot") -> None:
    """Commit everything in project, creating the repository when needed."""
    if not (project / ".git").exists():
        git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", message)


def avanzada_bin() -> str:
    """The installed console script of the venv running the tests."""
    from sys import executable

    script = Path(executable).parent / "avanzada"
    found = str(script) if script.exists() else shutil.which("avanzada")
    assert found, "the avanzada console script is not installed"
    return found
