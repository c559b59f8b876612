"""Rendered projects install from their own pyproject and pass their own suites.

Each representative combination gets a fresh virtual environment (uv), the
project installed with its `dev` extra, its pytest suite against real servers
(uvicorn, and Redis/PostgreSQL where chosen) and mypy on its sources.

The default answers and everything on Redis with several workers run their
suites in test_update_history.py instead, on projects updated from the newest
releases with a user's edits: the same template files plus the user's, so a
second run on a fresh render here would prove nothing more and cost minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from avanzada.checks import render, run_suite
from avanzada.combinations import supported
from helpers import REPO_ROOT

#: Representative combinations run here: the bare minimum.
REPRESENTATIVE = ("none",)


@pytest.mark.suite
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_rendered_project_installs_types_and_passes_its_suite(name: str, tmp_path: Path) -> None:
    project = render(supported()[name], tmp_path / name, template=REPO_ROOT)
    result = run_suite(project, mypy=True)
    assert result.ok, f"{name}: {result.step} failed after {result.seconds:.1f} s\n{result.output}"
    assert " passed" in result.output
