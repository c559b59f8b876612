"""Render, lint and test generated projects: the library behind ``avanzada check``.

The same functions serve the CLI and the test suite, so "a combination works"
means one thing everywhere: it renders, it is lint-clean (ruff, no leftover
Jinja, no blank-line noise), and its own test suite passes in its own venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import yaml

from avanzada.store import TemplateStore, default_store

#: Folders never scanned or linted: tool output, not rendered content.
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".ruff_cache", ".mypy_cache", ".pytest_cache"}
)

# Jinja that survived rendering. Expressions are matched by their opening
# (`{{ name`) or a spaced closing (`name }}`) so nested dict literals such as
# `{"a": {"b": 1}}` do not count; statement and comment tags never occur in
# the languages we render.
_JINJA_LEFTOVERS = (
    ("{{", re.compile(r"\{\{-?\s*[A-Za-z_(]")),
    ("}}", re.compile(r"[ \t]-?\}\}")),
    ("{%", re.compile(r"\{%")),
    ("%}", re.compile(r"%\}")),
    ("{#", re.compile(r"\{#-?\s")),
)

#: A Markdown heading glued to the end of the previous line, as whitespace
#: control that eats one newline too many leaves it ("...code.## Tests").
_GLUED_HEADING = re.compile(r"[^\s#`|]#{1,6} [A-Z]")

#: More consecutive blank lines than this is noise left by Jinja blocks.
MAX_BLANK_LINES = 2

#: Lines of output kept from a failed or finished suite.
TAIL_LINES = 40


@dataclass(frozen=True)
class LintFailure:
    """One lint problem in a rendered project."""

    check: str
    path: str | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"[{self.check}] {where}{self.detail}"


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of a rendered project's own test suite."""

    ok: bool
    seconds: float
    #: The step that ran last: "install" (uv sync) or "pytest".
    step: str
    #: The last lines of that step's output.
    output: str


def render(
    answers: Mapping[str, Any],
    dest: Path,
    *,
    template: Path | None = None,
    vcs_ref: str | None = None,
    store: TemplateStore | None = None,
    tasks: bool = False,
) -> Path:
    """Render the template with ``answers`` (defaults for the rest) into ``dest``.

    Without ``template`` the store is synced and the render uses its tag, as
    ``avanzada new`` does; with one, its working tree (``HEAD`` plus uncommitted
    changes) unless ``vcs_ref`` says otherwise. ``tasks`` runs the template's
    tasks after the copy (``uv lock``, which needs the package index); without
    them the project's first ``uv sync`` writes the lock. Copier's ValueError
    (a refused answer) propagates.
    """
    if template is None:
        store = store if store is not None else default_store()
        vcs_ref = vcs_ref if vcs_ref is not None else store.sync()
        template = store.path
    elif vcs_ref is None:
        # Copier renders a git template's newest tag when no ref is given; a
        # checkout tagged from releases.toml would then render the release,
        # not the working tree being checked. HEAD includes uncommitted changes.
        vcs_ref = "HEAD"
    copier.run_copy(
        str(template.resolve()),
        dest,
        data=dict(answers),
        vcs_ref=vcs_ref,
        defaults=True,
        unsafe=True,
        skip_tasks=not tasks,
        quiet=True,
    )
    return dest


def find_ruff() -> str | None:
    """The ruff binary of this environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ruff")


def lint(project: Path) -> list[LintFailure]:
    """Lint a rendered project; an empty list means clean."""
    failures: list[LintFailure] = []
    ruff = find_ruff()
    if ruff is None:
        failures.append(LintFailure("ruff", None, "ruff is not installed"))
    else:
        for name, args in (
            ("ruff check", ["check", "--no-cache", "--quiet", "."]),
            ("ruff format", ["format", "--check", "--no-cache", "--quiet", "."]),
        ):
            result = subprocess.run(
                [ruff, *args], cwd=project, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                failures.append(LintFailure(name, None, _tail(result.stdout + result.stderr, 20)))
    for path in iter_text_files(project):
        failures.extend(_scan_text(project, path))
    return failures


def iter_text_files(project: Path) -> Iterator[Path]:
    """Yield the project's UTF-8 text files, skipping tool folders and binaries."""
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if b"\0" in data:
                continue
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield path


def _scan_text(project: Path, path: Path) -> list[LintFailure]:
    """Leftover Jinja and runs of blank lines in one text file."""
    return scan_text(str(path.relative_to(project)), path.read_text(encoding="utf-8"))


def scan_text(rel: str, text: str) -> list[LintFailure]:
    """Leftover Jinja and runs of blank lines in the text of the file at ``rel``."""
    failures: list[LintFailure] = []
    blank_run = 0
    lines = text.splitlines()
    markdown = rel.endswith(".md")
    for number, line in enumerate(lines, start=1):
        for marker, pattern in _JINJA_LEFTOVERS:
            if pattern.search(line):
                failures.append(
                    LintFailure("jinja", rel, f"line {number}: leftover {marker!r}: {line.strip()}")
                )
                break
        if markdown and _GLUED_HEADING.search(line):
            failures.append(
                LintFailure("markdown", rel, f"line {number}: heading glued on: {line.strip()}")
            )
        blank_run = blank_run + 1 if not line.strip() else 0
        if blank_run == MAX_BLANK_LINES + 1:
            failures.append(
                LintFailure(
                    "blank lines",
                    rel,
                    f"line {number}: more than {MAX_BLANK_LINES} consecutive blank lines",
                )
            )
    return failures


def rendered_python_version(project: Path) -> str | None:
    """The ``python_version`` answer recorded in the project, if any."""
    answers_file = project / ".copier-answers.yml"
    try:
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if isinstance(answers, dict) and answers.get("python_version"):
        return str(answers["python_version"])
    return None


def _uv() -> str:
    """The uv binary shipped by the ``uv`` package (a dependency of avanzada)."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def _interpreter(uv: str, env: Mapping[str, str], version: str | None) -> str:
    """An installed interpreter for ``version``, else the one running avanzada.

    Downloads stay off: a check must not depend on fetching a toolchain.
    """
    if version:
        found = subprocess.run(
            [uv, "python", "find", version],
            env={**env, "UV_PYTHON_DOWNLOADS": "never"},
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    return sys.executable


def run_suite(
    project: Path,
    *,
    timeout: float = 1800.0,
    mypy: bool = False,
    tests: tuple[str, ...] = (),
    relock: bool = False,
) -> SuiteResult:
    """Install the project with ``uv sync`` into its own .venv, then ``uv run pytest``.

    ``uv sync`` installs the locked versions (``--locked``: a lock that no longer
    matches pyproject.toml fails) or, without a uv.lock yet, resolves and writes
    it; ``relock`` runs ``uv lock`` first, as a user does after an update that
    changed ``pyproject.toml``. ``tests`` narrows pytest to those paths (all by
    default). With ``mypy``, the project's own mypy configuration runs after
    pytest.
    ``timeout`` bounds the whole run, in seconds.
    """
    started = time.monotonic()
    uv = _uv()
    env = dict(os.environ)
    # The caller's venv must not leak into the project's: uv and pytest would
    # otherwise pick it up instead of the project's own .venv.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"):
        env.pop(name, None)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    interpreter = _interpreter(uv, env, rendered_python_version(project))
    locked = ["--locked"] if (project / "uv.lock").is_file() else []
    steps = (
        *((("lock", [uv, "lock", "--quiet", "--python", interpreter]),) if relock else ()),
        ("install", [uv, "sync", "--quiet", *locked, "--python", interpreter]),
        # -rsfE: the summary lists every skip with its reason (see _skips) and
        # names every failure and error (see _tail).
        (
            "pytest",
            [uv, "run", "--locked", "pytest", "-q", "-rsfE", "-p", "no:cacheprovider", *tests],
        ),
        *((("mypy", [uv, "run", "--locked", "mypy"]),) if mypy else ()),
    )
    output, tested = "", ""
    for step, command in steps:
        remaining = timeout - (time.monotonic() - started)
        try:
            result = subprocess.run(
                command,
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=max(remaining, 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            partial = expired.output if isinstance(expired.output, str) else ""
            return SuiteResult(
                ok=False,
                seconds=time.monotonic() - started,
                step=step,
                output=_tail(partial + f"\ntimed out after {timeout:.0f} s"),
            )
        output = result.stdout
        if result.returncode != 0:
            return SuiteResult(
                ok=False, seconds=time.monotonic() - started, step=step, output=_tail(output)
            )
        if step == "pytest":
            tested = output
    skips = _skips(tested)
    if skips:
        # A rendered suite has no test that may skip: a skip is a test that did
        # not run (a missing binary or server), so the suite did not pass.
        return SuiteResult(
            ok=False,
            seconds=time.monotonic() - started,
            step="pytest",
            output=_tail(tested) + "\nskipped tests:\n" + "\n".join(skips),
        )
    # The summary callers read is pytest's ("N passed"), also when mypy ran last.
    return SuiteResult(
        ok=True, seconds=time.monotonic() - started, step=steps[-1][0], output=_tail(tested)
    )


_SKIP_LINE = re.compile(r"^SKIPPED \[\d+\] .*$", re.MULTILINE)
_SKIP_COUNT = re.compile(r"\b\d+ skipped\b")


def _skips(output: str) -> list[str]:
    """The skipped tests of a pytest run (its ``-rs`` lines), else its summary's count."""
    lines: list[str] = _SKIP_LINE.findall(output)
    if lines:
        return lines
    return [line.strip(" =") for line in output.splitlines() if _SKIP_COUNT.search(line)][-1:]


_FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) \S+.*$", re.MULTILINE)


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``, stripped, after pytest's failure summary.

    A failing test's captured logs can fill the tail; the ``FAILED``/``ERROR``
    lines say which tests failed wherever they are.
    """
    last = text.strip().splitlines()[-lines:]
    named = [line for line in _FAILED_LINE.findall(text) if line not in last]
    return "\n".join([*named, *last])
