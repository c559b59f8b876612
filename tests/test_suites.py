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


def _tiny_project(root: Path, test_body: str) -> Path:
    """A project with one test, installable the way run_suite installs rendered ones."""
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "tiny"\nversion = "0"\n'
        '[dependency-groups]\ndev = ["pytest"]\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        "[tool.setuptools]\npy-modules = []\n"
    )
    (root / "test_tiny.py").write_text(test_body)
    return root


def test_a_suite_with_a_skipped_test_does_not_pass(tmp_path: Path) -> None:
    # A skip is a test that did not run (the rendered suites skip when a binary
    # such as redis-server is missing): "passed" alone must not hide it.
    project = _tiny_project(
        tmp_path / "tiny",
        "import pytest\n\n\ndef test_runs():\n    pass\n\n\n"
        "def test_skips():\n    pytest.skip('needs the redis-server binary')\n",
    )
    result = run_suite(project)
    assert not result.ok
    assert "needs the redis-server binary" in result.output


def test_a_suite_whose_tests_all_run_passes(tmp_path: Path) -> None:
    project = _tiny_project(tmp_path / "tiny", "def test_runs():\n    pass\n")
    result = run_suite(project)
    assert result.ok, result.output


@pytest.mark.suite
def test_every_feature_in_memory_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    """The schemathesis contract test on the all-features project in memory.

    On Redis it runs with that project's whole suite (test_update_history.py).
    """
    project = render(supported()["all-memory"], tmp_path / "all-memory", template=REPO_ROOT)
    result = run_suite(project, tests=("tests/test_contract.py",))
    assert result.ok, (
        f"all-memory: {result.step} failed after {result.seconds:.1f} s\n{result.output}"
    )
    assert "1 passed" in result.output
