"""Rendered projects install from their own lock and pass their own suites and hooks.

Each representative combination gets a fresh environment from `uv sync` (which
writes uv.lock), then `uv run pytest` against real servers (uvicorn, and
Redis/PostgreSQL where chosen), then its git hooks (ruff, mypy, hygiene) with
no network at all: the hooks use only what `uv sync` installed.

The default answers and everything on Redis with several workers run their
suites in test_update_history.py instead, on projects updated from the newest
releases with a user's edits: the same template files plus the user's, so a
second run on a fresh render here would prove nothing more and cost minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from avanzada.checks import render, run_suite
from avanzada.combinations import supported
from helpers import REPO_ROOT, commit_all

#: Representative combinations run here: the bare minimum.
REPRESENTATIVE = ("none",)

BIN = Path(sys.executable).parent


def offline_env(tmp_path: Path) -> dict[str, str]:
    """The environment with no way to download: uv offline, proxies that refuse.

    pre-commit and prek get empty homes, so a hook that needed a clone or an
    install would have to fetch it, and fail.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    refused = "http://127.0.0.1:9"
    env.update(
        UV_OFFLINE="1",
        HTTP_PROXY=refused,
        HTTPS_PROXY=refused,
        ALL_PROXY=refused,
        http_proxy=refused,
        https_proxy=refused,
        NO_PROXY="",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        PREK_HOME=str(tmp_path / "prek-home"),
        # The hooks call `uv run`; uv must be on PATH as it is for a user.
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
    )
    return env


@pytest.mark.suite
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_rendered_project_installs_passes_its_suite_and_its_hooks(
    name: str, tmp_path: Path
) -> None:
    project = render(supported()[name], tmp_path / name, template=REPO_ROOT)
    result = run_suite(project)
    assert result.ok, f"{name}: {result.step} failed after {result.seconds:.1f} s\n{result.output}"
    assert " passed" in result.output

    env = offline_env(tmp_path)
    lock = subprocess.run(
        [str(BIN / "uv"), "lock", "--check"], cwd=project, env=env, capture_output=True, text=True
    )
    assert lock.returncode == 0, f"{name}: uv.lock does not match pyproject.toml\n{lock.stderr}"

    commit_all(project, "generated")  # the hooks look at the files git knows
    runners = {
        # pre-commit from the project's own environment, as `just hooks` runs it.
        "pre-commit": [str(BIN / "uv"), "run", "--no-sync", "pre-commit"],
        # prek reads the same file.
        "prek": [str(BIN / "prek")],
    }
    for manager, runner in runners.items():
        command = [*runner, "run", "--all-files", "--show-diff-on-failure"]
        done = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{name}: {manager}\n{done.stdout}{done.stderr}"
        for hook in ("ruff check", "ruff format", "mypy", "check yaml", "fix end of files"):
            assert any(
                line.startswith(hook) and line.endswith("Passed")
                for line in done.stdout.splitlines()
            ), f"{name}: {manager} did not pass {hook!r}\n{done.stdout}"
    assert not subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    ).stdout.strip(), "the hooks changed nothing"
