"""Render and lint every combination of answers, cheaply enough for CI.

One copier render takes about 1.5 s here, mostly compiling the same Jinja
templates again and running a ``git config`` per file; thousands of renders
done that way take an hour. This module renders with copier itself (its
question answering, validators, path rendering and Jinja environment) through
a :class:`copier.Worker` subclass that changes only three things:

- one Jinja environment per process, so each template compiles once
  (``from_string`` results are memoised too: copier compiles every path part
  and question default again for each render);
- a file's content is rendered once per distinct value of the variables its
  template reads (``jinja2.meta``), since other answers cannot change it;
- nothing is written: contents are collected by hash (copier's pretend mode).

:func:`lint_renders` then checks each distinct file content once: ruff check
and ruff format on one tree of unique files per ruff configuration (one ruff
call each), leftover Jinja and blank-line runs, and compilation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# Copier's own Worker (the class run_copy drives) and its Jinja environment
# type; copier 9 marks them internal, so the pin (copier<10) keeps these
# imports stable and test_sweep.py compares the result with run_copy.
from copier._jinja_ext import SandboxedEnvironment
from copier._main import Worker
from jinja2 import Template, meta

from avanzada.checks import LintFailure, find_ruff, scan_text
from avanzada.questions import FEATURES_QUESTION, Questions
from avanzada.template_source import TEMPLATE_ENTRIES

#: Values swept for integer answers: one and more than one is what templates test.
VARIED_INTS: Mapping[str, tuple[int, ...]] = {"workers": (1, 2), "nginx_upstreams": (1, 2)}
#: Questions left at their defaults: names and text, which no feature depends on.
FIXED = frozenset(
    {"project_name", "project_slug", "package_name", "description", "author_name", "author_email"}
)


def sweep_answers(questions: Questions) -> list[dict[str, Any]]:
    """Every combination of the answers that select code, follow-ups only when asked.

    Features (every subset), then every other askable question that is neither
    fixed text nor computed: its choices, ``True``/``False`` for a yes/no, the
    values in :data:`VARIED_INTS` for a number. A follow-up varies only when
    its feature is on (copier does not ask it otherwise).
    """
    features = questions.feature_values
    varied: list[tuple[str, str | None, tuple[Any, ...]]] = []
    for question in questions.questions:
        if question.name in FIXED or question.computed or question.name == FEATURES_QUESTION:
            continue
        if question.choices:
            values: tuple[Any, ...] = tuple(question.choices.values())
        elif question.type == "bool":
            values = (False, True)
        elif question.name in VARIED_INTS:
            values = VARIED_INTS[question.name]
        else:
            raise ValueError(f"no sweep values for question {question.name!r}; add them")
        varied.append((question.name, question.feature, values))
    combos: list[dict[str, Any]] = []
    for size in range(len(features) + 1):
        for chosen in itertools.combinations(features, size):
            asked = [(n, v) for n, feature, v in varied if feature is None or feature in chosen]
            for values in itertools.product(*(v for _, v in asked)):
                answers = {FEATURES_QUESTION: list(chosen)}
                answers.update(
                    (name, value) for (name, _), value in zip(asked, values, strict=True)
                )
                combos.append(answers)
    return combos


def combination_name(answers: Mapping[str, Any]) -> str:
    """A short, unique name of a combination (for reports)."""
    parts = ["+".join(answers.get(FEATURES_QUESTION, [])) or "none"]
    parts += [f"{k}={v}" for k, v in answers.items() if k != FEATURES_QUESTION]
    return " ".join(parts)


# -- rendering ---------------------------------------------------------------

# Per process: the template, the shared Jinja environment, the variables each
# template (content or path) reads, rendered contents and paths by (template,
# values read), and where the running render collects its files. Renders in
# one process run one after another.
_ENV: dict[str, SandboxedEnvironment] = {}
_TEMPLATES: dict[str, Any] = {}
_VARIABLES: dict[str, frozenset[str]] = {}
_PATH_VARIABLES: dict[str, frozenset[str]] = {}
_PATHS: dict[tuple[str, str], list[tuple[Path, Any]]] = {}
_CONTENTS: dict[tuple[str, str], bytes] = {}
_SINK: dict[str, bytes] = {}


def _memoised_env(env: SandboxedEnvironment) -> SandboxedEnvironment:
    """Make ``env.from_string`` reuse compiled templates (Jinja caches only files)."""
    compiled: dict[str, Template] = {}
    original = env.from_string

    def from_string(source: Any, globals: Any = None, template_class: Any = None) -> Template:
        if globals is not None or template_class is not None or not isinstance(source, str):
            return original(source, globals, template_class)
        template = compiled.get(source)
        if template is None:
            template = compiled[source] = original(source)
        return template

    env.from_string = from_string  # type: ignore[method-assign]
    return env


def _freeze(value: Any) -> str:
    """A stable text of a context value, for cache keys."""
    return json.dumps(value, sort_keys=True, default=repr)


class _SweepWorker(Worker):
    """A copier Worker that shares compiled templates and collects instead of writing."""

    @cached_property
    def template(self) -> Any:
        # Loading a template parses copier.yml and asks git (three processes)
        # whether the folder is a repository; the folder does not change.
        key = str(self.src_path)
        if key not in _TEMPLATES:
            _TEMPLATES[key] = super().template
        return _TEMPLATES[key]

    def _render_template(self) -> None:
        # The answers are final once rendering starts, and copier builds the
        # same context again for every path part it renders (hundreds per render).
        # answers_relpath is resolved first: it writes into the context it gets.
        self.__dict__["_sweep_answers_relpath"] = super().answers_relpath
        self.__dict__["_sweep_context"] = super()._render_context()
        try:
            super()._render_template()
        finally:
            del self.__dict__["_sweep_context"], self.__dict__["_sweep_answers_relpath"]

    def _render_context(self) -> Any:
        cached = self.__dict__.get("_sweep_context")
        return cached if cached is not None else super()._render_context()

    @property
    def answers_relpath(self) -> Path:
        cached = self.__dict__.get("_sweep_answers_relpath")
        return cached if cached is not None else super().answers_relpath

    @cached_property
    def jinja_env(self) -> SandboxedEnvironment:
        key = str(self.template.local_abspath)
        if key not in _ENV:
            _ENV[key] = _memoised_env(super().jinja_env)
        return _ENV[key]

    def _render_path(self, relpath: Path) -> Iterable[tuple[Path, Any]]:
        # A path renders the same for every combination that agrees on the
        # variables its parts read (most read one feature test, or nothing).
        name = relpath.as_posix()
        if name not in _PATH_VARIABLES:
            env = self.jinja_env
            found: set[str] = set()
            for part in relpath.parts:
                found |= meta.find_undeclared_variables(env.parse(part))
            _PATH_VARIABLES[name] = frozenset(found)
        context = self._render_context()
        key = (name, _freeze({v: context.get(v) for v in sorted(_PATH_VARIABLES[name])}))
        if key not in _PATHS:
            _PATHS[key] = list(super()._render_path(relpath))
        return _PATHS[key]

    def _render_file(
        self, src_relpath: Path, dst_relpath: Path, extra_context: dict[str, Any] | None = None
    ) -> None:
        name = src_relpath.as_posix()
        if not name.endswith(self.template.templates_suffix):
            content = _CONTENTS.get((name, ""))
            if content is None:
                content = (self.template.local_abspath / src_relpath).read_bytes()
                _CONTENTS[(name, "")] = content
            _SINK[dst_relpath.as_posix()] = content
            return
        env = self.jinja_env
        if name not in _VARIABLES:
            source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            _VARIABLES[name] = frozenset(meta.find_undeclared_variables(env.parse(source)))
        context = {**self._render_context(), **(extra_context or {})}
        key = (name, _freeze({v: context.get(v) for v in sorted(_VARIABLES[name])}))
        content = _CONTENTS.get(key)
        if content is None:
            content = env.get_template(name).render(**context).encode()
            _CONTENTS[key] = content
        _SINK[dst_relpath.as_posix()] = content


def render_files(template: Path, answers: Mapping[str, Any]) -> dict[str, bytes]:
    """The files copier would render for ``answers`` (path -> content); nothing written.

    ``template`` must be a plain folder (not a git checkout: copier would clone
    it for every render). Copier's ValueError for refused answers propagates.
    """
    _SINK.clear()
    with _SweepWorker(
        src_path=str(template),
        dst_path=Path(tempfile.gettempdir()) / "avanzada-sweep-never-written",
        data=dict(answers),
        defaults=True,
        unsafe=True,
        quiet=True,
        pretend=True,
    ) as worker:
        worker.run_copy()
    return dict(_SINK)


@dataclass
class Render:
    """One combination: its answers, and its files (hashes) or copier's refusal."""

    answers: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None

    @property
    def name(self) -> str:
        """The combination's name."""
        return combination_name(self.answers)


def _render_chunk(
    job: tuple[str, list[dict[str, Any]]],
) -> tuple[list[tuple[dict[str, str], str | None]], dict[str, bytes]]:
    template, chunk = job
    results: list[tuple[dict[str, str], str | None]] = []
    contents: dict[str, bytes] = {}
    for answers in chunk:
        try:
            files = render_files(Path(template), answers)
        except ValueError as error:
            results.append(({}, str(error)))
            continue
        hashes = {}
        for path, content in files.items():
            digest = hashlib.sha256(content).hexdigest()
            contents.setdefault(digest, content)
            hashes[path] = digest
        results.append((hashes, None))
    return results, contents


def plain_copy(root: Path, dest: Path) -> Path:
    """Copy a template (copier.yml and template/) to a plain folder, without git."""
    for entry in TEMPLATE_ENTRIES:
        source = root / entry
        if source.is_dir():
            shutil.copytree(source, dest / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / entry)
    return dest


def render_all(
    template: Path, combos: Sequence[Mapping[str, Any]], jobs: int | None = None
) -> tuple[list[Render], dict[str, bytes]]:
    """Render every combination in ``jobs`` processes; renders and contents by hash."""
    jobs = jobs or min(len(os.sched_getaffinity(0)), 8)
    # Interleaved chunks: each process sees every kind of answer, so the
    # per-process caches fill as fast as one process's would.
    chunks = [[dict(c) for c in combos[i::jobs]] for i in range(jobs)]
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs) as pool:
        outputs = pool.map(_render_chunk, [(str(template), chunk) for chunk in chunks])
    renders: list[Render | None] = [None] * len(combos)
    contents: dict[str, bytes] = {}
    for index, (results, found) in enumerate(outputs):
        contents.update(found)
        for offset, (files, refusal) in enumerate(results):
            position = index + offset * jobs
            renders[position] = Render(dict(combos[position]), files, refusal)
    return [render for render in renders if render is not None], contents


# -- linting -------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A lint failure of one distinct file content, and combinations that render it."""

    failure: LintFailure
    combinations: tuple[str, ...]

    def __str__(self) -> str:
        shown = "; ".join(self.combinations[:3])
        more = len(self.combinations) - 3
        return f"{self.failure} (in {shown}{f' and {more} more' if more > 0 else ''})"


def _ruff_key(pyproject: bytes) -> str:
    """What ruff reads from a pyproject.toml: its settings and requires-python."""
    data = tomllib.loads(pyproject.decode())
    return _freeze(
        {
            "ruff": data.get("tool", {}).get("ruff"),
            "requires-python": data.get("project", {}).get("requires-python"),
        }
    )


def lint_renders(
    renders: Sequence[Render], contents: Mapping[str, bytes], scratch: Path
) -> tuple[list[Problem], dict[str, int]]:
    """Lint each distinct file content once; problems, and counts of what was checked."""
    users: dict[tuple[str, str], list[str]] = defaultdict(list)
    for render in renders:
        for path, digest in render.files.items():
            users[(path, digest)].append(render.name)
    failures: list[tuple[LintFailure, tuple[str, str]]] = []
    for (path, digest), _ in users.items():
        data = contents[digest]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            continue
        failures.extend((f, (path, digest)) for f in scan_text(path, text))
        if path.endswith(".py"):
            try:
                compile(text, path, "exec", dont_inherit=True)
            except SyntaxError as error:
                detail = f"line {error.lineno}: {error.msg}"
                failures.append((LintFailure("compile", path, detail), (path, digest)))
    problems = [Problem(f, tuple(users[where])) for f, where in failures]
    ruff_failures, config_of = _ruff_unique(renders, contents, scratch)
    for failure, (path, digest, config) in ruff_failures:
        # The same content lints differently under another configuration
        # (target-version): name only the combinations of the failing one.
        names = [n for n in users[(path, digest)] if config_of.get(n) == config]
        problems.append(Problem(failure, tuple(names)))
    counts = {
        "distinct files": len(users),
        "distinct python files": sum(1 for path, _ in users if path.endswith(".py")),
        "ruff configurations": len(set(config_of.values())),
    }
    return problems, counts


def _ruff_unique(
    renders: Sequence[Render], contents: Mapping[str, bytes], scratch: Path
) -> tuple[list[tuple[LintFailure, tuple[str, str, str]]], dict[str, str]]:
    """ruff check and format on one tree per ruff configuration of unique Python files.

    Each distinct content of a path goes to its own variant folder, which
    mirrors the project (a copy of the pyproject.toml at its root, the file at
    its path), so per-path settings and first-party detection (``src``) see
    what they see in a project. Each variant folder gets an empty placeholder
    for every module it lacks: ruff sorts ``from pkg.mod import x`` as
    first-party only when ``mod`` exists under a ``src`` folder.
    """
    ruff = find_ruff()
    if ruff is None:
        return [(LintFailure("ruff", None, "ruff is not installed"), ("", "", ""))], {}
    groups: dict[str, tuple[bytes, set[tuple[str, str]]]] = {}
    keys: dict[str, str] = {}
    config_of: dict[str, str] = {}
    for render in renders:
        pyproject = render.files.get("pyproject.toml")
        if pyproject is None:
            continue
        if pyproject not in keys:
            keys[pyproject] = _ruff_key(contents[pyproject])
        config_of[render.name] = keys[pyproject]
        group = groups.setdefault(keys[pyproject], (contents[pyproject], set()))
        group[1].update((p, d) for p, d in render.files.items() if p.endswith(".py"))
    failures: list[tuple[LintFailure, tuple[str, str, str]]] = []
    for index, (key, (config, files)) in enumerate(groups.items()):
        root = scratch / f"ruff-{index}"
        where: dict[str, tuple[str, str]] = {}
        variants: dict[str, list[str]] = defaultdict(list)
        for path, digest in sorted(files):
            variants[path].append(digest)
        width = max(len(v) for v in variants.values())
        for slot in range(width):
            base = root / f"v{slot}"
            base.mkdir(parents=True)
            (base / "pyproject.toml").write_bytes(config)
        for path, digests in variants.items():
            for slot, digest in enumerate(digests):
                target = root / f"v{slot}" / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(contents[digest])
                where[f"v{slot}/{path}"] = (path, digest)
        for slot in range(width):
            for path in variants:
                target = root / f"v{slot}" / path
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"")
        failures.extend((f, (*origin, key)) for f, origin in _run_ruff(ruff, root, where))
    return failures, config_of


def _run_ruff(
    ruff: str, root: Path, where: Mapping[str, tuple[str, str]]
) -> Iterator[tuple[LintFailure, tuple[str, str]]]:
    """Run ruff check and ruff format --check once on ``root``; map findings back."""
    check = subprocess.run(
        [ruff, "check", "--no-cache", "--output-format=json", "--exit-zero", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        yield LintFailure("ruff check", None, check.stderr.strip()), ("", "")
    for finding in json.loads(check.stdout or "[]"):
        rel = Path(finding["filename"]).resolve().relative_to(root.resolve()).as_posix()
        origin = where.get(rel)
        if origin is None:
            continue  # a placeholder; empty files have nothing to report
        line = finding.get("location", {}).get("row")
        detail = f"line {line}: {finding.get('code')} {finding.get('message')}"
        yield LintFailure("ruff check", origin[0], detail), origin
    formatted = subprocess.run(
        [ruff, "format", "--check", "--no-cache", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in formatted.stdout.splitlines():
        if not line.startswith("Would reformat: "):
            continue
        rel = line.removeprefix("Would reformat: ").strip()
        origin = where.get(rel)
        if origin is not None:
            yield LintFailure("ruff format", origin[0], "would be reformatted"), origin
    if formatted.returncode not in (0, 1):
        yield LintFailure("ruff format", None, formatted.stderr.strip()), ("", "")
