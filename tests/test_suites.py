"""Rendered projects install from their own pyproject and pass their own suites.

Each representative combination gets a fresh virtual environment (uv), the
project installed with its `dev` extra, mypy on its sources and its pytest
suite against real servers (uvicorn, and Redis/PostgreSQL where chosen).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from avanzada.checks import render, run_suite
from avanzada.combinations import supported
from helpers import REPO_ROOT

#: Representative combinations: the embedded default, the bare minimum, and
#: everything on Redis with several workers.
REPRESENTATIVE = ("default", "none", "all-redis")


@pytest.mark.suite
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_rendered_project_installs_types_and_passes_its_suite(name: str, tmp_path: Path) -> None:
    project = render(supported()[name], tmp_path / name, template=REPO_ROOT)
    result = run_suite(project)
    assert result.ok, f"{name}: {result.step} failed after {result.seconds:.1f} s\n{result.output}"
    assert " passed" in result.output

    mypy = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-m", "mypy"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert mypy.returncode == 0, f"{name}: mypy\n{mypy.stdout}{mypy.stderr}"
