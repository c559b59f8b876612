"""Every combination of answers, every offered Python version: rendered and linted.

The sweep (``avanzada.sweep``) renders each combination with copier's own
Worker, sharing compiled templates and each file's content between the
combinations that cannot change it, and lints each distinct file content once.
A sample is checked byte for byte against plain ``copier copy``, and a known
defect put back into a copy of the template must be found, so a fast path that
drifted from copier or a lint that sees nothing would fail here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier
import pytest
from avanzada.questions import load_questions
from avanzada.sweep import Render, lint_renders, plain_copy, render_all, sweep_answers
from helpers import REPO_ROOT

QUESTIONS = load_questions(REPO_ROOT)
COMBOS = sweep_answers(QUESTIONS)
SHARED = ("rooms", "sse", "queue")
PREFIX = "MY_SERVICE_"


def expected_refusal(answers: Mapping[str, Any]) -> str | None:
    """The reason copier.yml's validators give for refusing ``answers``, if any."""
    shared = [f for f in answers["features"] if f in SHARED]
    memory = answers["scale_out"] == "memory"
    if answers["workers"] > 1 and memory and shared:
        return f"{answers['workers']} workers cannot share in-memory {', '.join(shared)}"
    if answers.get("nginx_upstreams", 1) > 1 and memory and shared:
        return f"{answers['nginx_upstreams']} nginx upstreams need Redis scale-out"
    if not memory and not shared:
        return "Redis scale-out shares rooms, SSE history and the queue, and none of them"
    return None


def uses_redis(answers: Mapping[str, Any]) -> bool:
    features = answers["features"]
    return (answers["scale_out"] == "redis" and any(f in SHARED for f in features)) or (
        "cache" in features and answers.get("cache_backend") == "redis"
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Render], dict[str, bytes], Path]:
    scratch = tmp_path_factory.mktemp("sweep")
    template = plain_copy(REPO_ROOT, scratch / "template")
    renders, contents = render_all(template, COMBOS, jobs=2)
    return renders, contents, scratch


def test_every_combination_renders_or_is_refused_with_its_reason(sweep: tuple) -> None:
    renders, _, _ = sweep
    assert len(renders) == len(COMBOS)
    versions = set(QUESTIONS.get("python_version").choices.values())
    rendered_versions = {r.answers["python_version"] for r in renders if r.refusal is None}
    assert rendered_versions == versions, "every offered Python version renders"
    for render in renders:
        reason = expected_refusal(render.answers)
        if reason is None:
            assert render.refusal is None, f"{render.name}: refused: {render.refusal}"
            assert "pyproject.toml" in render.files and "README.md" in render.files
        else:
            assert render.refusal is not None, f"{render.name}: rendered, expected {reason!r}"
            line = " ".join(render.refusal.split())
            assert reason in line, f"{render.name}: {line}"
            # One line for the user: the validator's text, no trace of Jinja.
            assert "{%" not in line and "{{" not in line


def test_every_distinct_file_is_lint_clean(sweep: tuple) -> None:
    renders, contents, scratch = sweep
    valid = [r for r in renders if r.refusal is None]
    problems, counts = lint_renders(valid, contents, scratch / "lint")
    assert counts["distinct python files"] > 0 and counts["ruff configurations"] >= 3
    assert not problems, "\n".join(map(str, problems[:40]))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_sweep_renders_equal_copier_renders(sweep: tuple, index: int, tmp_path: Path) -> None:
    """A sample spread over the combinations, one per Python version at least."""
    renders, contents, scratch = sweep
    valid = [r for r in renders if r.refusal is None]
    versions = sorted({r.answers["python_version"] for r in valid})
    picks = [next(r for r in reversed(valid) if r.answers["python_version"] == v) for v in versions]
    picks.append(valid[len(valid) // 2])
    render = picks[index % len(picks)]
    dest = tmp_path / "project"
    copier.run_copy(
        str(scratch / "template"),
        dest,
        data=render.answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        # The lock task resolves from the package index; the sweep renders files only.
        skip_tasks=True,
    )
    real = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert sorted(real) == sorted(render.files), render.name
    for path, data in real.items():
        assert contents[render.files[path]] == data, f"{render.name}: {path}"


def test_the_lint_finds_a_defect_put_back(tmp_path: Path) -> None:
    """UP043 under py313, which every render with rooms on Python 3.13 once had."""
    template = plain_copy(REPO_ROOT, tmp_path / "template")
    manager = next((template / "template").rglob("manager.py"))
    text = manager.read_text()
    assert "-> Generator[Any]:" in text
    manager.write_text(text.replace("-> Generator[Any]:", "-> Generator[Any, None, None]:"))
    combos = [c for c in COMBOS if c["features"] == ["rooms"] and c["scale_out"] == "redis"]
    renders, contents = render_all(template, combos, jobs=2)
    problems, _ = lint_renders(renders, contents, tmp_path / "lint")
    found = {(p.failure.path, p.failure.detail.split()[2]) for p in problems}
    assert found == {("src/my_service/rooms/manager.py", "UP043")}, found
    (problem,) = problems
    assert all("python_version=3.13" in name for name in problem.combinations)


# -- the rendered README names only what was chosen ------------------------------

#: How a README sentence names a feature (or Redis).
MENTIONS = {
    "rooms": re.compile(rf"WebSocket|\brooms?\b|{PREFIX}(ROOMS|WS)_", re.IGNORECASE),
    "sse": re.compile(
        rf"Server-Sent|\bSSE\b|event stream|event history|EventSource|{PREFIX}SSE_", re.IGNORECASE
    ),
    "queue": re.compile(rf"task queue|\bthe queue\b|/tasks|streaq|{PREFIX}TASKS_", re.IGNORECASE),
    "cache": re.compile(rf"(?<![-\w])cache(?![-\w])|{PREFIX}CACHE_", re.IGNORECASE),
    "postgres": re.compile(rf"Postgre|asyncpg|{PREFIX}DB_", re.IGNORECASE),
    "nginx": re.compile(r"\bnginx\b", re.IGNORECASE),
    "docker": re.compile(r"\bDocker|\bcompose\b", re.IGNORECASE),
    "tracing": re.compile(
        rf"OpenTelemetry|\btrac(e|es|ed|ing)\b|traceparent|OTEL_|{PREFIX}TRACING_", re.IGNORECASE
    ),
    "redis": re.compile(rf"\bRedis\b|{PREFIX}REDIS_"),
}


def readme_sentences(text: str) -> list[str]:
    """Table rows and prose sentences of a README, code blocks left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    found: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        found += [line for line in lines if line.startswith("|")]
        prose = " ".join(line for line in lines if not line.startswith("|"))
        found += [s for s in re.split(r"(?<=[.!?:])\s+(?=[A-Z`(])", prose) if s.strip()]
    return found


def wrong_mentions(text: str, answers: Mapping[str, Any]) -> list[str]:
    """Sentences naming a feature (or Redis) the answers did not choose."""
    chosen = set(answers["features"]) | ({"redis"} if uses_redis(answers) else set())
    wrong = []
    for sentence in readme_sentences(text):
        if sentence.rstrip().endswith("| no |") or "--add-feature" in sentence:
            continue  # the feature table's "no", and how to switch a feature on
        for feature, pattern in MENTIONS.items():
            if feature not in chosen and pattern.search(sentence):
                wrong.append(f"{feature}: {sentence.strip()[:160]}")
    return wrong


def test_readme_names_only_the_chosen_features(sweep: tuple) -> None:
    renders, contents, _ = sweep
    seen: set[tuple[str, str]] = set()
    failures = []
    for render in renders:
        if render.refusal is not None:
            continue
        key = (render.files["README.md"], repr(sorted(render.answers.items())))
        if key in seen:
            continue
        seen.add(key)
        for wrong in wrong_mentions(contents[render.files["README.md"]].decode(), render.answers):
            failures.append(f"{render.name}: {wrong}")
    assert not failures, f"{len(failures)} sentences, e.g.:\n" + "\n".join(failures[:25])


def test_the_readme_check_sees_a_wrong_sentence() -> None:
    text = "| Cache | no |\n\nIt streams Server-Sent Events unbuffered. Logs go to stdout.\n"
    assert wrong_mentions(text, {"features": [], "scale_out": "memory"}) == [
        "sse: It streams Server-Sent Events unbuffered."
    ]


# -- mypy on one render per Python version ---------------------------------------


@pytest.mark.suite
def test_mypy_passes_on_every_python_version(tmp_path: Path) -> None:
    """Everything on, once per offered Python version, in one environment.

    mypy checks each render against its own ``python_version``; the
    environment only supplies the dependencies (3.11 renders also run mypy
    with their suites, in test_update_history.py and test_suites.py).
    """
    template = plain_copy(REPO_ROOT, tmp_path / "template")
    versions = list(QUESTIONS.get("python_version").choices.values())
    everything = {
        "features": QUESTIONS.feature_values,
        "scale_out": "redis",
        "workers": 2,
        "nginx_upstreams": 2,
        "cache_backend": "redis",
        "rooms_batching": True,
    }
    projects = []
    for version in versions:
        dest = tmp_path / f"py{version}"
        copier.run_copy(
            str(template),
            dest,
            data={**everything, "python_version": version},
            defaults=True,
            unsafe=True,
            quiet=True,
        )
        projects.append(dest)
    pyproject = tomllib.loads((projects[0] / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        *pyproject["dependency-groups"]["dev"],
    ]
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    for command in (
        [*uv, "venv", "-q", "--python", sys.executable, str(venv)],
        [*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *requirements],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    failures = []
    for project in projects:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            failures.append(f"{project.name}:\n{done.stdout}{done.stderr}")
    shutil.rmtree(venv, ignore_errors=True)
    assert not failures, "\n".join(failures)
