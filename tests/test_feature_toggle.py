"""Features switched on, off and on again after generation, on a project with user edits.

After each step the project must be exactly a fresh render of the new answers
plus the user's edits: the feature's files came or went and nothing else
changed (copier issues #2482 and #2526 remove unrelated files when one answer
changes). Files of a removed feature that the user edited are kept and named
by ``avanzada update``; plain ``copier update`` deletes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from avanzada.checks import render
from avanzada.questions import load_questions
from avanzada.store import default_store
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


def expected_tree(features: list[str], scratch: Path) -> str:
    """The digest of a fresh render of ``features`` with the user's edits applied."""
    store = default_store()
    dest = render({"features": features}, scratch, store=store)
    apply_user_edits(dest)
    return digest(dest)


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


@pytest.mark.parametrize(
    "feature",
    [pytest.param(f, marks=pytest.mark.suite) if f == "rooms" else f for f in FEATURES],
)
def test_feature_on_off_on_changes_only_its_files(feature: str, tmp_path: Path) -> None:
    start = [f for f in DEFAULT if f != feature]
    with_feature = QUESTIONS.order_features([*start, feature])
    project = new_project(tmp_path, start)
    expected_on = expected_tree(with_feature, tmp_path / "expected-on")
    expected_off = expected_tree(start, tmp_path / "expected-off")
    assert expected_on != expected_off, f"{feature} changes the rendered files"

    for step, (args, expected) in enumerate(
        [
            (("--add-feature", feature), expected_on),
            (("--remove-feature", feature), expected_off),
            (("--add-feature", feature), expected_on),
        ]
    ):
        out = update(project, *args)
        assert "Kept," not in out, f"step {step}: nothing of the user's is at risk here"
        assert_no_conflicts(project)
        assert digest(project) == expected, (
            f"step {step} ({' '.join(args)}): the project is not a fresh render plus the "
            f"user's edits:\n{git(project, 'status', '--short')}"
        )
        commit_all(project, f"step {step}")
    # The tree equals a fresh render plus the edits, so one suite run proves the
    # feature's code works after the switches; run it where the switch reaches
    # the most code. It ends as the default answers plus the edits, the same
    # files test_update_history.py updates to, so the two share one run.
    if feature == "rooms":
        result = suite_once(project)
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
