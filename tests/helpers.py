"""Small helpers the tests share (git, the installed console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from avanzada.cli import app
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[1]


def git(cwd: Path, *args: str) -> str:
    """Run git in cwd and return its output; fail loudly with its stderr."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
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
    script = Path(sys.executable).parent / "avanzada"
    found = str(script) if script.exists() else shutil.which("avanzada")
    assert found, "the avanzada console script is not installed"
    return found


def invoke(*args: str | Path) -> tuple[int, str, str]:
    """Run the avanzada app in-process; return exit code, stdout, stderr."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def copier_update(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run plain ``copier update --trust --defaults`` in project, as a user without avanzada."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("copier")), "update", "--trust", "--defaults", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
