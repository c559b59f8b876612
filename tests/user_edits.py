"""The edits a user makes to a generated project, and the checks that they survived.

Shared by the update tests: every update, from any release and with any
feature switched, must keep all of them.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from avanzada.checks import SuiteResult, run_suite

PACKAGE = "my_service"

ROUTE_MODULE = '''"""Our billing rate, served next to the template's routes."""

from fastapi import APIRouter

RATE = 3

router = APIRouter()


@router.get("/billing/rate")
async def billing_rate() -> dict[str, int]:
    """The current rate."""
    return {"rate": RATE}
'''

ROUTE_TEST = f'''"""Our own tests, beside the template's."""

import httpx

from {PACKAGE}.settings import Settings


def test_billing_rate_is_served(client: httpx.Client) -> None:
    assert client.get("/billing/rate").json() == {{"rate": 3}}


def test_our_readiness_timeout_default() -> None:
    assert Settings().readiness_timeout == 2.0
'''

RUNBOOK = "\n## Our runbook\n\nPage the on-call before restarting Redis.\n"
TIMEOUT_DEFAULT = 'default=1.0, gt=0, le=60, description="Seconds each /readyz check may take."'
EXTRA_DEPENDENCY = '"anyio>=4",'


def apply_user_edits(project: Path) -> None:
    """The edits a user makes, then their formatter, as they would run it."""
    package = project / "src" / PACKAGE
    (package / "billing.py").write_text(ROUTE_MODULE)
    (project / "tests" / "test_billing.py").write_text(ROUTE_TEST)
    app = package / "app.py"
    text = app.read_text()
    assert text.count("\n    return app\n") == 1, "create_app ends with `return app`"
    # The import sits beside its use, not in the module's import block: there
    # it would be the neighbour of lines a feature switch adds or removes
    # (`from .cache import ...`), and a line-based 3-way merge marks adjacent
    # changes as a conflict (docs/updating.md says so).
    text = text.replace(
        "\n    return app\n",
        "\n    from .billing import router as billing_router\n\n"
        "    app.include_router(billing_router)\n    return app\n",
    )
    app.write_text(text)
    settings = package / "settings.py"
    assert TIMEOUT_DEFAULT in settings.read_text()
    settings.write_text(
        settings.read_text().replace(TIMEOUT_DEFAULT, TIMEOUT_DEFAULT.replace("1.0", "2.0"))
    )
    pyproject = project / "pyproject.toml"
    assert "dependencies = [\n" in pyproject.read_text()
    pyproject.write_text(
        pyproject.read_text().replace(
            "dependencies = [\n", f"dependencies = [\n    {EXTRA_DEPENDENCY}\n", 1
        )
    )
    with (project / "README.md").open("a") as readme:
        readme.write(RUNBOOK)
    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run(
            [str(ruff), *args, "--no-cache", str(app), str(package / "billing.py")],
            cwd=project,
            check=True,
        )


def assert_user_edits_kept(project: Path) -> None:
    package = project / "src" / PACKAGE
    assert (package / "billing.py").read_text() == ROUTE_MODULE
    assert (project / "tests" / "test_billing.py").read_text() == ROUTE_TEST
    app = (package / "app.py").read_text()
    assert "    from .billing import router as billing_router\n" in app
    assert "app.include_router(billing_router)" in app
    assert TIMEOUT_DEFAULT.replace("1.0", "2.0") in (package / "settings.py").read_text()
    assert EXTRA_DEPENDENCY in (project / "pyproject.toml").read_text()
    # Appended at the end; a newer template that also added to its end may
    # follow it, so the section is checked whole, wherever the merge put it.
    assert RUNBOOK in (project / "README.md").read_text()


def assert_no_conflicts(project: Path) -> None:
    markers = ("<<<<<<< before updating", ">>>>>>> after updating")
    for path in project.rglob("*"):
        if ".git" in path.relative_to(project).parts or not path.is_file():
            continue
        assert path.suffix != ".rej", f"rejected hunk: {path}"
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert not any(marker in text for marker in markers), f"conflict markers in {path}"


def digest(project: Path, *, ignore_source: bool = False) -> str:
    """A hash of the project's files (names and bytes), .git and uv.lock excluded.

    With ``ignore_source``, the answers file's ``_src_path`` and ``_commit``
    lines do not count: two template stores holding the same template give
    projects that differ only there, and nothing else reads them.
    """
    sha = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        # uv.lock is resolved from the package index at generation, not rendered.
        if ".git" in rel.parts or not path.is_file() or str(rel) == "uv.lock":
            continue
        data = path.read_bytes()
        if ignore_source and str(rel) == ".copier-answers.yml":
            data = re.sub(rb"(?m)^_(src_path|commit): .*\n", b"", data)
        sha.update(str(rel).encode() + b"\0" + data + b"\0")
    return sha.hexdigest()


# Suite results by project content: updates and feature switches that end in
# the same files (a fresh render plus the same edits) run the suite once.
_SUITES: dict[str, SuiteResult] = {}


def suite_once(project: Path) -> SuiteResult:
    """The project's own suite and mypy, run once per distinct project content."""
    key = digest(project, ignore_source=True)
    if key not in _SUITES:
        # An update never rewrites uv.lock (the user runs `uv lock`, as the docs say).
        _SUITES[key] = run_suite(project, mypy=True, relock=True)
    return _SUITES[key]
