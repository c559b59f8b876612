"""Fixtures shared by the template and CLI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from avanzada.checks import render
from avanzada.combinations import supported
from helpers import REPO_ROOT


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


@pytest.fixture(scope="session", params=sorted(supported()), ids=str)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(name, project folder) of each supported combination, rendered once per session.

    Shared by the render and toolchain tests, which only read the projects.
    """
    name = request.param
    dest = tmp_path_factory.mktemp(name) / "project"
    render(supported()[name], dest, template=REPO_ROOT)
    return name, dest
