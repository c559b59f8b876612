"""The ``avanzada`` command: create, update and check generated services.

Every question, feature and default comes from ``copier.yml`` (through
:mod:`avanzada.questions`); this module only turns command-line options into
copier answers and copier's failures into one clear line on stderr.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import copier
import typer
import yaml
from copier.errors import CopierError, UserMessageError
from packaging.version import Version
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from avanzada import __version__, updating
from avanzada.checks import LintFailure, SuiteResult, lint, render, run_suite
from avanzada.combinations import Unsupported, supported, unsupported
from avanzada.questions import (
    FEATURES_QUESTION,
    Questions,
    QuestionsError,
    UnknownFeatureError,
    load_questions,
)
from avanzada.releases import (
    UNRELEASED,
    Release,
    ReleaseError,
    describe_version,
    history_root,
    load_changelog,
    load_releases,
    tag_repository,
    version_of_ref,
)
from avanzada.store import (
    GitMissingError,
    StoreError,
    TemplateStore,
    default_store,
    git_executable,
)
from avanzada.template_source import TemplateNotFoundError

#: Exit code of bad input: unknown option values, wrong folder, refused answers.
EXIT_USAGE = 2
#: Exit code of a failure of the environment or of a check.
EXIT_FAILURE = 1
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="avanzada",
    help=(
        "Generate production FastAPI services with WebSocket rooms, SSE, a priority "
        "queue, caching and Postgres, and keep them up to date with the template."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Conflict(StrEnum):
    """How ``update`` records a change it could not merge."""

    inline = "inline"
    rej = "rej"


# -- errors -----------------------------------------------------------------


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    # Copier's messages (validators especially) may span lines; one line reads
    # better and is what scripts grep for.
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _explain_copier_message(message: str, project: Path | None) -> tuple[str, int]:
    """Turn copier's user messages into advice for avanzada users."""
    where = f"'{project}'" if project is not None else "the project"
    if "Destination repository is dirty" in message:
        return (
            f"{where} has uncommitted changes; commit them first "
            "(git add -A && git commit -m 'my changes') so the update can be reviewed "
            "and undone with git",
            EXIT_FAILURE,
        )
    if "only supported in git-tracked subprojects" in message:
        return (
            f"{where} is not a git repository; run git init && git add -A && "
            "git commit -m 'Generate with avanzada' in it first (updates are 3-way merges)",
            EXIT_FAILURE,
        )
    return message, EXIT_FAILURE


@contextmanager
def _friendly_errors(
    project: Path | None = None, interrupted: str = "nothing was changed"
) -> Iterator[None]:
    """Report the failures a user can cause or fix as one line, never a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        # copier raises CopierAnswersInterrupt (a KeyboardInterrupt) at a prompt.
        fail(f"interrupted; {interrupted}", EXIT_INTERRUPTED)
    except GitMissingError as error:
        fail(str(error), EXIT_FAILURE)
    except (
        StoreError,
        QuestionsError,
        TemplateNotFoundError,
        ReleaseError,
        updating.UpdateError,
    ) as error:
        fail(str(error), EXIT_FAILURE)
    except UnknownFeatureError as error:
        fail(str(error), EXIT_USAGE)
    except UserMessageError as error:
        message, code = _explain_copier_message(str(error), project)
        fail(message, code)
    except ValueError as error:
        # copier's validators and choice checks: the answers were refused.
        fail(str(error), EXIT_USAGE)
    except CopierError as error:
        fail(str(error) or type(error).__name__, EXIT_FAILURE)
    except OSError as error:
        # Includes failed git runs inside copier (plumbum's ProcessExecutionError).
        lines = str(error).strip().splitlines()
        fail(lines[0] if lines else type(error).__name__, EXIT_FAILURE)


# -- option parsing ----------------------------------------------------------


def _questions() -> Questions:
    """Load copier.yml, reporting a broken installation as one line."""
    with _friendly_errors():
        return load_questions()


def parse_data(items: Sequence[str], questions: Questions) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` pairs into copier data.

    Values of typed questions (int, bool, multiselect...) are parsed as YAML so
    ``workers=2`` is an int and ``features=[sse]`` a list; plain string
    questions keep the text as typed, so ``python_version=3.10`` stays "3.10".
    """
    data: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"--data expects KEY=VALUE, got {item!r}")
        if key not in questions.askable_names:
            choices = ", ".join(questions.askable_names)
            fail(f"unknown question {key!r} in --data; choose from {choices}")
        question = questions.get(key)
        if question.type == "str" and not question.multiselect:
            data[key] = raw
            continue
        try:
            data[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError as error:
            fail(f"invalid value for {key!r}: {' '.join(str(error).split())}")
    features = data.get(FEATURES_QUESTION)
    if isinstance(features, list):
        # Same message as --feature, rather than copier's "Invalid choice".
        _check_features([str(f) for f in features], questions)
    return data


def _check_features(features: Sequence[str], questions: Questions) -> None:
    """Fail with the list of choices on the first unknown feature."""
    try:
        questions.check_features(features)
    except UnknownFeatureError as error:
        fail(str(error))


def _read_answers(project: Path, questions: Questions) -> dict[str, Any]:
    """The project's recorded answers, or a usage error if it has none."""
    answers_file = project / questions.answers_file
    if not answers_file.is_file():
        fail(
            f"'{project}' is not a project generated by avanzada: it has no "
            f"{questions.answers_file} (run update in the project folder or pass its path)"
        )
    try:
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        fail(f"cannot read {answers_file}: {error}", EXIT_FAILURE)
    if not isinstance(answers, dict):
        fail(f"{answers_file} is not a mapping of answers", EXIT_FAILURE)
    return answers


def _stdin_is_terminal() -> bool:
    """Whether copier can prompt (it needs a terminal on stdin)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


# -- commands ----------------------------------------------------------------


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"avanzada {describe_version()}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Generate production FastAPI services and keep them up to date."""


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(metavar="DEST", help="Folder to create (new or empty).")],
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            "-f",
            metavar="FEATURE",
            help="Feature to include (repeatable; skips the features question). "
            "See `avanzada features`.",
        ),
    ] = None,
    all_features: Annotated[bool, typer.Option("--all", help="Include every feature.")] = False,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Do not prompt: take the default of every answer.")
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="KEY=VALUE",
            help="Answer a question (repeatable), e.g. -d workers=2 -d scale_out=redis.",
        ),
    ] = None,
) -> None:
    """Create a new service. Prompts on a terminal; never when stdin is not a TTY."""
    questions = _questions()
    answers = parse_data(data or [], questions)
    features = list(feature or [])
    if all_features and features:
        fail("use either --all or --feature, not both")
    if (all_features or features) and FEATURES_QUESTION in answers:
        fail(f"use either --feature/--all or --data {FEATURES_QUESTION}=..., not both")
    if all_features:
        answers[FEATURES_QUESTION] = questions.feature_values
    elif features:
        _check_features(features, questions)
        answers[FEATURES_QUESTION] = questions.order_features(features)
    if dest.exists() and not dest.is_dir():
        fail(f"destination '{dest}' exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        fail(f"destination '{dest}' is not empty; choose a new folder")
    interactive = not defaults and _stdin_is_terminal()
    with _friendly_errors(dest, interrupted="nothing was created"):
        store = default_store()
        tag = store.sync()
        copier.run_copy(
            str(store.path),
            dest,
            data=answers,
            vcs_ref=tag,
            defaults=not interactive,
            unsafe=True,
            quiet=True,
        )
    _print_next_steps(dest, _read_answers(dest, questions), tag)


def _print_next_steps(dest: Path, answers: Mapping[str, Any], tag: str) -> None:
    """Tell the user what they got and what to run next."""
    features = answers.get(FEATURES_QUESTION) or []
    package = answers.get("package_name", "app")
    name = answers.get("project_name", dest.name)
    console.print(
        f"Created {escape(str(name))!r} in {escape(str(dest))} "
        f"(template {escape(tag)}; features: {escape(', '.join(features) or 'none')})."
    )
    console.print("\nNext steps:")
    for line in (
        f"cd {dest}",
        "git init && git add -A && git commit -m 'Generate with avanzada'"
        "   # needed by avanzada update",
        "uv run just setup     # .venv from uv.lock with the dev tools, and the git hooks",
        f"uv run just serve     # python -m {package} on http://127.0.0.1:8000",
        "uv run just test      # its own test suite",
        "uv run just --list    # every task (dev, lint, fmt, bench, ...)",
    ):
        console.print(f"  {escape(line)}")
    console.print(
        "\nLater: `avanzada update` pulls template improvements; "
        "`avanzada update --add-feature NAME` switches a feature on."
    )


@app.command()
def update(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="The generated project (default: here).")
    ] = Path("."),
    add_feature: Annotated[
        list[str] | None,
        typer.Option("--add-feature", metavar="FEATURE", help="Switch a feature on (repeatable)."),
    ] = None,
    remove_feature: Annotated[
        list[str] | None,
        typer.Option(
            "--remove-feature", metavar="FEATURE", help="Switch a feature off (repeatable)."
        ),
    ] = None,
    prompt: Annotated[
        bool,
        typer.Option("--prompt", help="Ask the questions again, previous answers as defaults."),
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", metavar="KEY=VALUE", help="Change an answer (repeatable)."),
    ] = None,
    conflict: Annotated[
        Conflict,
        typer.Option(
            "--conflict",
            help="inline: conflict markers in the file; rej: a .rej file beside it.",
        ),
    ] = Conflict.inline,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="VERSION", help="Update to this release (see `avanzada releases`)."
        ),
    ] = None,
    pretend: Annotated[
        bool,
        typer.Option(
            "--pretend",
            help="Show which files would change and which would conflict; change nothing.",
        ),
    ] = False,
) -> None:
    """Update a generated project to the current template, keeping your edits."""
    questions = _questions()
    if not path.is_dir():
        fail(f"'{path}' is not a folder")
    recorded = _read_answers(path, questions)
    _check_generated(path, recorded, questions)
    answers = parse_data(data or [], questions)
    added, removed = list(add_feature or []), list(remove_feature or [])
    if added or removed:
        if FEATURES_QUESTION in answers:
            fail(f"use either --add/--remove-feature or --data {FEATURES_QUESTION}=..., not both")
        answers[FEATURES_QUESTION] = _switch_features(
            path, questions, list(recorded.get(FEATURES_QUESTION) or []), added, removed
        )
    if prompt and not _stdin_is_terminal():
        fail("--prompt needs an interactive terminal")
    if to is not None and version_of_ref(to) is None:
        fail(f"--to expects a version such as 0.2.0, got {to!r}")
    store = default_store()
    old_ref = recorded.get("_commit")
    with _friendly_errors(path):
        git_executable()
        if updating.is_dirty(path):
            message, code = _explain_copier_message("Destination repository is dirty", path)
            fail(message, code)
        src = recorded.get("_src_path")
        if not store.contains(src):
            # The store is rebuilt by the sync below; any other source must be there.
            updating.check_source(path, src, questions.answers_file)
        releases = load_releases()
        offered = {r.version for r in releases} | {Version(__version__)}
        if to is not None and Version(to) not in offered:
            known = ", ".join(str(r.version) for r in releases)
            fail(f"{to} is not a release of avanzada; releases: {known}, and {__version__}")
        history = history_root()
        # A project made from the store updates to what this avanzada carries
        # (or a release of it); one made from elsewhere (a checkout, a URL) to
        # its source's latest tag, as copier would.
        vcs_ref: str | None = f"v{to}" if to else None
        if store.contains(src):
            if not updating.ensure_base(store, old_ref, releases, history):
                _fail_missing_base(store, path, old_ref)
            vcs_ref = updating.target_tag(store, to, releases, history)
        target_version = version_of_ref(vcs_ref) if vcs_ref else None
        if to is not None and target_version is not None:
            old_version = version_of_ref(old_ref)
            if old_version is not None and Version(old_version.public) > target_version:
                fail(f"'{path}' is at {old_ref}, newer than {to}; updates never go back")
        _print_releases(releases, old_ref, vcs_ref)
        with tempfile.TemporaryDirectory(prefix="avanzada-pretend-") as scratch:
            target = updating.pretend_copy(path, Path(scratch)) if pretend else path
            kept = _apply_update(target, recorded, answers, vcs_ref, prompt, conflict)
            if pretend:
                _print_pretend(path, target, kept)
                return
    _print_update_report(path, questions, old_ref, kept)


def _check_generated(path: Path, recorded: Mapping[str, Any], questions: Questions) -> None:
    """Refuse a project whose answers file belongs to another template."""
    if FEATURES_QUESTION in recorded or "package_name" in recorded:
        return
    source = recorded.get("_src_path") or "an unknown template"
    fail(
        f"'{path}' was not generated by avanzada: its {questions.answers_file} records "
        f"{source!s} and none of avanzada's answers (features, package_name); "
        "update it with that template's own tool, or generate a project with `avanzada new`"
    )


def _apply_update(
    path: Path,
    recorded: Mapping[str, Any],
    answers: Mapping[str, Any],
    vcs_ref: str | None,
    prompt: bool,
    conflict: Conflict,
) -> list[str]:
    """Run copier's update on ``path``; return the deleted files kept for the user."""
    try:
        copier.run_update(
            path,
            data=dict(answers),
            vcs_ref=vcs_ref,
            defaults=not prompt,
            overwrite=True,
            conflict=conflict.value,
            unsafe=True,
            quiet=True,
        )
    except ValueError as error:
        # With defaults, copier re-validates the recorded answers: one edited
        # by hand into an invalid value fails here.
        fail(
            f"{' '.join(str(error).split())} (an answer in .copier-answers.yml or -d; fix it "
            "there, commit, and run again)",
            EXIT_USAGE,
        )
    return updating.keep_edited(path, recorded)


def _fail_missing_base(store: TemplateStore, path: Path, old_ref: Any) -> NoReturn:
    """Refuse to update when the store lost the tag the project was made from.

    The 3-way merge diffs the old template version against the new one; without
    the old tag copier would merge against whatever content now has that name.
    """
    fail(
        f"the template store {store.path} has no tag {str(old_ref)!r}, the template "
        f"version '{path}' was made from, so an update cannot tell your edits from "
        "template changes; run `avanzada update` once with the avanzada release that "
        "made it (it restores that tag), or regenerate with `copier recopy`",
        EXIT_FAILURE,
    )


def _print_releases(releases: Sequence[Release], old_ref: Any, new_ref: Any) -> None:
    """Before applying: the releases the update crosses, with their changelog entries."""
    between, unreleased = updating.releases_between(releases, old_ref, new_ref)
    if not between and not unreleased:
        return
    changelog = load_changelog()
    console.print(
        f"This update brings (template {escape(str(old_ref))} -> {escape(str(new_ref))}):"
    )
    sections = [(f"{r.version} ({r.date})", changelog.get(str(r.version), "")) for r in between]
    if unreleased:
        sections.append((f"{__version__} (unreleased)", changelog.get(UNRELEASED, "")))
    for title, body in sections:
        console.print(f"\n[bold]{escape(title)}[/]")
        for line in (body or "(no changelog entry)").splitlines():
            console.print(f"  {escape(line)}" if line else "")
    console.print()


def _print_pretend(path: Path, clone: Path, kept: Sequence[str]) -> None:
    """What an update would do, read from the updated clone."""
    changed = updating.changes(clone)
    conflicts = _conflicted_files(clone)
    console.print(f"Pretend: nothing in {escape(str(path))} was changed.")
    for title, names in (
        ("Would add", changed.added),
        ("Would change", [n for n in changed.modified if n not in conflicts]),
        ("Would delete", changed.deleted),
        ("Would conflict", conflicts),
        ("Would keep (you edited them; the template no longer has them)", list(kept)),
    ):
        if names:
            console.print(f"{title}:")
            for name in names:
                console.print(f"  {escape(name)}")
    if not changed.count:
        console.print("No file would change.")


def _switch_features(
    path: Path,
    questions: Questions,
    current: list[str],
    added: Sequence[str],
    removed: Sequence[str],
) -> list[str]:
    """The feature list after switching ``added`` on and ``removed`` off."""
    _check_features([*added, *removed], questions)
    both = sorted(set(added) & set(removed))
    if both:
        fail(f"feature {both[0]!r} is both added and removed")
    on = ", ".join(current) or "none"
    for feature in added:
        if feature in current:
            fail(f"feature {feature!r} is already on in '{path}' (its features: {on})")
    for feature in removed:
        if feature not in current:
            fail(f"feature {feature!r} is not on in '{path}' (its features: {on})")
    return questions.order_features([f for f in [*current, *added] if f not in removed])


def _print_update_report(
    path: Path, questions: Questions, old_ref: Any, kept: Sequence[str] = ()
) -> None:
    """Say what changed, what was kept and where the user must resolve conflicts."""
    answers = _read_answers(path, questions)
    features = ", ".join(answers.get(FEATURES_QUESTION) or []) or "none"
    new_ref = answers.get("_commit")
    if old_ref == new_ref:
        console.print(f"Updated {escape(str(path))} (template {escape(str(new_ref))}).")
    else:
        console.print(
            f"Updated {escape(str(path))} from template {escape(str(old_ref))} "
            f"to {escape(str(new_ref))}."
        )
    console.print(f"Features: {escape(features)}")
    conflicts = _conflicted_files(path)
    if conflicts:
        console.print("[bold yellow]Resolve the conflicts in:[/]")
        for name in conflicts:
            console.print(f"  {escape(name)}")
    if kept:
        console.print(
            "[bold yellow]Kept, because you edited them (the template no longer "
            "renders them; remove them when you no longer need them):[/]"
        )
        for name in kept:
            console.print(f"  {escape(name)}")
    console.print(f"Review with: git -C {escape(str(path))} diff, then commit.")


def _conflicted_files(path: Path) -> list[str]:
    """Changed files holding copier's conflict markers, and new ``.rej`` files."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "-z"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return []
    conflicts: list[str] = []
    for entry in result.stdout.split("\0"):
        name = entry[3:]
        if not name:
            continue
        if name.endswith(".rej"):
            conflicts.append(name)
            continue
        try:
            text = (path / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "<<<<<<< before updating" in text:
            conflicts.append(name)
    return conflicts


@app.command()
def features() -> None:
    """List the features (read from copier.yml) and their follow-up questions."""
    questions = _questions()
    defaults = set(questions.default_features)
    table = Table(title="Features (from copier.yml)")
    table.add_column("feature", style="bold")
    table.add_column("label")
    table.add_column("default")
    table.add_column("follow-up questions")
    for label, value in questions.features.items():
        followups = "\n".join(
            f"{q.name}: {q.help}" if q.help else q.name for q in questions.followups(value)
        )
        table.add_row(
            escape(value),
            escape(label),
            "on" if value in defaults else "-",
            escape(followups) or "-",
        )
    console.print(table)
    console.print("Pick them with: avanzada new DEST -f rooms -f sse   (or --all)")


@app.command()
def releases(
    tag: Annotated[
        bool,
        typer.Option(
            "--tag",
            help="Tag each release's commit (v<version>) in the checkout avanzada runs from.",
        ),
    ] = False,
) -> None:
    """List the releases of avanzada (from releases.toml) and what each brings."""
    try:
        known = load_releases()
    except ReleaseError as error:
        fail(str(error), EXIT_FAILURE)
    if tag:
        repo = history_root()
        if repo is None:
            fail("--tag needs avanzada run from a git checkout of its repository", EXIT_FAILURE)
        try:
            created = tag_repository(repo, known)
        except ReleaseError as error:
            fail(str(error), EXIT_FAILURE)
        console.print(
            f"Tagged {escape(', '.join(created))} in {escape(str(repo))}."
            if created
            else f"Every release is already tagged in {escape(str(repo))}."
        )
        return
    changelog = load_changelog()
    table = Table(title=f"Releases of avanzada (this is {escape(describe_version(known))})")
    for column in ("version", "date", "commit", "you must do"):
        table.add_column(column)
    for release in reversed(known):
        section = changelog.get(str(release.version), "")
        must = " ".join(section.partition("### You must do")[2].split()) or "-"
        table.add_row(str(release.version), release.date, release.commit[:12], escape(must))
    console.print(table)
    console.print("Each release's changes: CHANGELOG.md; update with: avanzada update --to VERSION")


# -- check -------------------------------------------------------------------


@dataclass
class _Outcome:
    """What ``check`` learned about one combination."""

    name: str
    expect_refusal: bool
    render_ok: bool = False
    render_detail: str = ""
    lint_failures: list[LintFailure] = field(default_factory=list)
    linted: bool = False
    suite: SuiteResult | None = None
    seconds: float = 0.0
    project: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every step that ran passed."""
        if not self.render_ok:
            return False
        if self.lint_failures:
            return False
        return self.suite is None or self.suite.ok


def _render_and_lint(
    name: str,
    answers: Mapping[str, Any],
    expected: Unsupported | None,
    dest: Path,
    store_path: Path,
    tag: str,
) -> _Outcome:
    """Render one combination (or make sure copier refuses it), then lint it."""
    outcome = _Outcome(name, expect_refusal=expected is not None)
    started = time.monotonic()
    try:
        render(answers, dest, template=store_path, vcs_ref=tag)
    except ValueError as error:
        message = " ".join(str(error).split())
        if expected is not None and expected.message in message:
            outcome.render_ok, outcome.render_detail = True, "refused"
        else:
            outcome.render_detail = message
    else:
        if expected is not None:
            outcome.render_detail = f"accepted, but should be refused with {expected.message!r}"
        else:
            outcome.render_ok, outcome.project = True, dest
            outcome.lint_failures = lint(dest)
            outcome.linted = True
    outcome.seconds = time.monotonic() - started
    return outcome


@app.command()
def check(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="NAME", help="Check only this combination (repeatable)."),
    ] = None,
    lint_only: Annotated[
        bool, typer.Option("--lint-only", help="Render and lint; skip the projects' suites.")
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option("--keep", metavar="DIR", help="Keep the renders in DIR, one folder each."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, metavar="N", help="Suites run at the same time.")
    ] = 1,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the combinations and exit.")
    ] = False,
) -> None:
    """Render every supported combination, lint it and run its own test suite."""
    questions = _questions()
    try:
        good, bad = supported(questions), unsupported(questions)
    except ValueError as error:
        fail(str(error), EXIT_FAILURE)
    if list_only:
        _print_combinations(good, bad)
        return
    names = list(only or [*good, *bad])
    known = [*good, *bad]
    for name in names:
        if name not in known:
            fail(f"unknown combination {name!r}; choose from {', '.join(known)}")
    if keep is not None:
        taken = [name for name in names if (keep / name).exists()]
        if taken:
            fail(f"'{keep / taken[0]}' already exists; --keep needs a new or empty folder")
    with _friendly_errors():
        store = default_store()
        tag = store.sync()
    with tempfile.TemporaryDirectory(prefix="avanzada-check-") as scratch:
        root = keep if keep is not None else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        outcomes = _run_checks(names, good, bad, root, store.path, tag, lint_only, jobs)
    _print_summary(outcomes, lint_only, tag)
    if keep is not None:
        console.print(f"Renders kept in {escape(str(keep))}")
    if not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(EXIT_FAILURE)


def _run_checks(
    names: Sequence[str],
    good: Mapping[str, Mapping[str, Any]],
    bad: Mapping[str, Unsupported],
    root: Path,
    store_path: Path,
    tag: str,
    lint_only: bool,
    jobs: int,
) -> list[_Outcome]:
    """Render and lint every combination, then run the suites, with a progress bar."""
    outcomes: list[_Outcome] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        renders = progress.add_task("render + lint", total=len(names))
        # Copier changes the process's working directory while it renders, so
        # renders run one at a time; suites are subprocesses and may overlap.
        for name in names:
            progress.update(renders, description=f"render + lint {name}")
            expected = bad.get(name)
            answers = expected.answers if expected is not None else good[name]
            outcomes.append(_render_and_lint(name, answers, expected, root / name, store_path, tag))
            progress.advance(renders)
        progress.update(renders, description="render + lint")
        runnable = [o for o in outcomes if o.project is not None and not lint_only]
        if runnable:
            suites = progress.add_task("suites", total=len(runnable))

            def run(outcome: _Outcome) -> None:
                assert outcome.project is not None
                outcome.suite = run_suite(outcome.project)
                outcome.seconds += outcome.suite.seconds
                progress.advance(suites)

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(run, runnable))
    return outcomes


def _print_combinations(
    good: Mapping[str, Mapping[str, Any]], bad: Mapping[str, Unsupported]
) -> None:
    """Print the combination table for ``check --list``."""
    table = Table(title="Combinations")
    table.add_column("name", style="bold")
    table.add_column("answers (copier defaults for the rest)")
    table.add_column("expected")
    for name, answers in good.items():
        table.add_row(escape(name), escape(_answers_text(answers)), "renders, lint, suite")
    for name, case in bad.items():
        table.add_row(
            escape(name), escape(_answers_text(case.answers)), escape(f"refused: {case.message}")
        )
    console.print(table)


def _answers_text(answers: Mapping[str, Any]) -> str:
    """Answers as a compact ``key=value`` line."""
    return " ".join(f"{key}={value}" for key, value in answers.items()) or "(defaults)"


def _print_summary(outcomes: Sequence[_Outcome], lint_only: bool, tag: str) -> None:
    """The summary table, then the detail of every failure."""
    table = Table(title=f"avanzada check (template {tag})")
    for column in ("combination", "render", "lint", "suite"):
        table.add_column(column)
    table.add_column("seconds", justify="right")
    for outcome in outcomes:
        if outcome.expect_refusal:
            render_cell = "[green]refused[/]" if outcome.render_ok else "[red]accepted[/]"
        else:
            render_cell = "[green]ok[/]" if outcome.render_ok else "[red]FAIL[/]"
        if not outcome.linted:
            lint_cell = "-"
        elif outcome.lint_failures:
            lint_cell = f"[red]{len(outcome.lint_failures)} FAIL[/]"
        else:
            lint_cell = "[green]ok[/]"
        if outcome.suite is None:
            suite_cell = "skipped" if lint_only and outcome.linted else "-"
        elif outcome.suite.ok:
            suite_cell = "[green]ok[/]"
        else:
            suite_cell = f"[red]FAIL ({outcome.suite.step})[/]"
        table.add_row(
            escape(outcome.name), render_cell, lint_cell, suite_cell, f"{outcome.seconds:.1f}"
        )
    console.print(table)
    for outcome in outcomes:
        if outcome.ok:
            continue
        console.rule(f"[red]{escape(outcome.name)}")
        if outcome.render_detail and not outcome.render_ok:
            console.print(escape(outcome.render_detail))
        for failure in outcome.lint_failures:
            console.print(escape(str(failure)))
        if outcome.suite is not None and not outcome.suite.ok:
            console.print(escape(outcome.suite.output))
    failed = sum(not outcome.ok for outcome in outcomes)
    if failed:
        console.print(f"[red]{failed} of {len(outcomes)} combinations failed.[/]")
    else:
        console.print(f"[green]All {len(outcomes)} combinations passed.[/]")
