"""Features switched on, off and on again after generation, on a project with user edits.

After each step the project must be exactly a fresh render of the new answers
plus the user's edits: the feature's files came or went and nothing else
changed (copier issues #2482 and #2526 remove unrelated files when one answer
changes). Files of a removed feature that the user edited are kept and named
by ``avanzada update``; plain ``copier update`` deletes them.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from avanzada.checks import run_suite
from avanzada.questions import load_questions
from avanzada.store import default_store
from avanzada.sweep import plain_copy, render_files
from helpers import REPO_ROOT, commit_all, copier_update, git, invoke
from user_edits import PACKAGE, apply_user_edits, assert_no_conflicts, digest, suite_once

QUESTIONS = load_questions(REPO_ROOT)
FEATURES = QUESTIONS.feature_values
DEFAULT = QUESTIONS.default_features


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private store for the module (each test would otherwise re-snapshot it)."""
    return tmp_path_factory.mktemp("toggle-home")


@pytest.fixture(autouse=True)
def _private_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVANZADA_HOME", str(home))


def expected_tree(template: Path, features: list[str], scratch: Path) -> str:
    """The digest of a fresh render of ``features`` with the user's edits applied.

    Rendered by the sweep's renderer (test_sweep.py proves it renders what
    copier does) from a plain copy of the template, which records no source.
    """
    for path, content in render_files(template, {"features": features}).items():
        (scratch / path).parent.mkdir(parents=True, exist_ok=True)
        (scratch / path).write_bytes(content)
    apply_user_edits(scratch)
    return digest(scratch, ignore_source=True)


def new_project(tmp_path: Path, features: list[str]) -> Path:
    project = tmp_path / "service"
    args = [f"--feature={feature}" for feature in features] or ["-d", "features=[]"]
    code, _, err = invoke("new", project, "--defaults", *args)
    assert code == 0, err
    commit_all(project, "generated")
    apply_user_edits(project)
    commit_all(project, "our edits")
    return project


def update(project: Path, *args: str) -> str:
    code, out, err = invoke("update", project, *args)
    assert code == 0, out + err
    return out


def switch_on_off_on(feature: str, template: Path, work: Path) -> Path:
    """Switch ``feature`` on, off and on again in an edited project; check each step."""
    start = [f for f in DEFAULT if f != feature]
    with_feature = QUESTIONS.order_features([*start, feature])
    project = new_project(work, start)
    expected_on = expected_tree(template, with_feature, work / "expected-on")
    expected_off = expected_tree(template, start, work / "expected-off")
    assert expected_on != expected_off, f"{feature} changes the rendered files"
    for step, (args, expected) in enumerate(
        [
            (("--add-feature", feature), expected_on),
            (("--remove-feature", feature), expected_off),
            (("--add-feature", feature), expected_on),
        ]
    ):
        out = update(project, *args)
        assert "Kept," not in out, f"{feature} step {step}: nothing of the user's is at risk"
        assert_no_conflicts(project)
        assert digest(project, ignore_source=True) == expected, (
            f"{feature} step {step} ({' '.join(args)}): the project is not a fresh render "
            f"plus the user's edits:\n{git(project, 'status', '--short')}"
        )
        commit_all(project, f"step {step}")
    return project


# Projects left by the switching test, by feature, for the suite test below.
_SWITCHED: dict[str, Path] = {}


def _switch_in_child(job: tuple[str, str, str]) -> str:
    feature, template, work = job
    return str(switch_on_off_on(feature, Path(template), Path(work)))


def test_every_feature_on_off_on_changes_only_its_files(tmp_path: Path) -> None:
    # Two processes (copier changes the working directory, so not threads):
    # seven independent cycles of three updates each.
    template = plain_copy(REPO_ROOT, tmp_path / "template")
    default_store().sync()  # snapshot once, before the children share the store
    jobs = []
    for feature in FEATURES:
        (tmp_path / feature).mkdir()
        jobs.append((feature, str(template), str(tmp_path / feature)))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        _SWITCHED.update(zip(FEATURES, map(Path, pool.map(_switch_in_child, jobs)), strict=True))


@pytest.mark.suite
def test_a_switched_project_passes_its_suite(tmp_path: Path) -> None:
    """The rooms project after on, off, on: the default answers plus the user's edits.

    Its files equal a fresh render plus the edits (the test above), so one suite
    run proves the switched code works; test_update_history.py updates to the
    same files, and the two share that run.
    """
    project = _SWITCHED.get("rooms") or switch_on_off_on(
        "rooms", plain_copy(REPO_ROOT, tmp_path / "template"), tmp_path
    )
    result = suite_once(project)
    assert result.ok, f"{result.step} failed after {result.seconds:.1f} s\n{result.output}"


@pytest.mark.suite
def test_tracing_added_by_update_traces_the_edited_project(tmp_path: Path) -> None:
    """``--add-feature tracing`` on an edited default project: its tracing tests and mypy pass.

    The project after on, off, on is a fresh render plus the user's edits (the
    switching test), so its tracing tests, which run the rooms, SSE and task
    traces in memory, the collector's faults and the bad-variable checks,
    prove the added feature works with the user's code, and mypy that it types.
    """
    project = _SWITCHED.get("tracing") or switch_on_off_on(
        "tracing", plain_copy(REPO_ROOT, tmp_path / "template"), tmp_path
    )
    assert (project / "src" / PACKAGE / "tracing" / "provider.py").is_file()
    result = run_suite(project, mypy=True, relock=True, tests=("tests/test_tracing.py",))
    assert result.ok, f"{result.step} failed after {result.seconds:.1f} s\n{result.output}"


def edit_rooms(project: Path) -> tuple[Path, Path, str]:
    """Edit a file of the rooms feature and add one of ours in its folder."""
    rooms = project / "src" / PACKAGE / "rooms"
    manager, extra = rooms / "manager.py", rooms / "presence.py"
    edited = manager.read_text() + '\n\nOUR_LIMIT = 42\n"""Our own cap, used by our fork."""\n'
    manager.write_text(edited)
    extra.write_text('"""Our presence tracking."""\n\nPRESENCE = True\n')
    commit_all(project, "our rooms changes")
    return manager, extra, edited


def test_remove_feature_keeps_edited_files_and_says_so(tmp_path: Path) -> None:
    project = new_project(tmp_path, DEFAULT)
    manager, extra, edited = edit_rooms(project)
    head = git(project, "rev-parse", "HEAD")

    out = update(project, "--remove-feature", "rooms", "--pretend")
    assert "Pretend: nothing" in out
    would_keep = out.split("Would keep", 1)[1]
    assert f"src/{PACKAGE}/rooms/manager.py" in would_keep
    assert "Would delete" in out and "rooms/routes.py" in out
    assert git(project, "status", "--porcelain") == "" and git(project, "rev-parse", "HEAD") == head

    out = update(project, "--remove-feature", "rooms")
    assert "Kept, because you edited them" in out
    kept = out.split("Kept,", 1)[1]
    assert f"src/{PACKAGE}/rooms/manager.py" in kept
    # Copier never deletes a file it did not render: ours stays, unnamed.
    assert "presence.py" not in kept
    assert manager.read_text() == edited and extra.is_file()
    rooms = project / "src" / PACKAGE / "rooms"
    assert sorted(p.name for p in rooms.iterdir()) == ["manager.py", "presence.py"]
    assert "rooms" not in (project / "src" / PACKAGE / "app.py").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["features"] == [
        f for f in DEFAULT if f != "rooms"
    ]
    commit_all(project, "rooms off")

    # Switching rooms on again merges the template's manager.py with the user's
    # kept one: their lines stay, the template's come back around them.
    out = update(project, "--add-feature", "rooms")
    text = manager.read_text()
    assert "OUR_LIMIT = 42" in text and "class " in text
    assert (rooms / "routes.py").is_file() and extra.read_text().startswith('"""Our presence')


def test_plain_copier_update_deletes_edited_files_of_a_removed_feature(tmp_path: Path) -> None:
    """What docs/updating.md warns about: copier deletes them, edited or not."""
    project = new_project(tmp_path, DEFAULT)
    manager, extra, _ = edit_rooms(project)
    features = [f for f in DEFAULT if f != "rooms"]
    done = copier_update(project, "--data", f"features={features}")
    assert done.returncode == 0, done.stderr
    assert not manager.exists(), "copier deletes the edited file of the removed feature"
    assert extra.is_file(), "a file copier never rendered stays"


def test_update_errors_are_one_line_naming_the_fix(tmp_path: Path) -> None:
    project = new_project(tmp_path, [])
    answers_file = project / ".copier-answers.yml"
    recorded = answers_file.read_text()

    def expect(answers: str | None, code: int, *needles: str) -> None:
        if answers is not None:
            answers_file.write_text(answers)
            commit_all(project, "hand-edited answers")
        exit_code, _, err = invoke("update", project)
        assert exit_code == code, err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for needle in needles:
            assert needle in err, err

    src = yaml.safe_load(recorded)["_src_path"]
    unreachable = recorded.replace(src, "https://avanzada.invalid/template.git")
    expect(unreachable, 1, "https://avanzada.invalid/template.git", "cannot reach", "_src_path")
    moved = recorded.replace(src, str(tmp_path / "moved-away"))
    expect(moved, 1, str(tmp_path / "moved-away"), "does not exist", "_src_path")
    expect(recorded.replace(src, "src"), 1, "relative path 'src'", "absolute path")
    not_git = tmp_path / "plain-folder"
    shutil.copytree(REPO_ROOT / "template", not_git / "template")
    expect(recorded.replace(src, str(not_git)), 1, "is not a git repository")
    expect(recorded.replace("workers: 1", "workers: 0"), 2, "Workers must be between 1 and 64")
    expect("_src_path: gh:someone/other-template\n_commit: v1.0.0\nname: x\n", 2, "not generated")
    answers_file.write_text(recorded)
    commit_all(project, "answers restored")
    (project / "README.md").write_text("uncommitted\n")
    expect(None, 1, "uncommitted changes", "git commit")


def test_copy_from_a_relative_path_warns_that_updates_will_fail(tmp_path: Path) -> None:
    plain_copy(REPO_ROOT, tmp_path / "avanzada")
    copier = str(Path(sys.executable).with_name("copier"))

    def copy(source: str, dest: str) -> str:
        done = subprocess.run(
            [copier, "copy", "--trust", "--defaults", source, dest],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    warned = copy("avanzada", "service")
    assert 'the template was given as the relative path "avanzada"' in warned
    assert "absolute path" in warned
    assert "relative path" not in copy(str(tmp_path / "avanzada"), "service2")
