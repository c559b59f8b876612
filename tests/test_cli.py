"""The ``avanzada`` command, its template store and its check library.

Most tests drive the Typer app in-process with CliRunner; a few run the
installed console script (and a real terminal) the way a user does. Update
tests use small template roots (``$AVANZADA_TEMPLATE``) with the real
copier.yml, so they prove the update machinery whatever state the real
template is in; a few tests render the real template too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import copier
import pexpect
import pytest
import yaml
from avanzada import __version__, checks
from avanzada.combinations import CombinationError, supported, unsupported
from avanzada.questions import UnknownFeatureError, load_questions, parse_questions
from avanzada.store import GitMissingError, StoreError, TemplateStore, avanzada_home
from avanzada.template_source import TEMPLATE_ENV, TemplateNotFoundError, template_root
from helpers import REPO_ROOT, avanzada_bin, commit_all, git, invoke
from packaging.version import Version

ANSWERS = ".copier-answers.yml"
FEATURES = load_questions(REPO_ROOT).feature_values
CHOICES = ", ".join(FEATURES)


# -- fixtures and helpers ------------------------------------------------------


@pytest.fixture(autouse=True)
def home(avanzada_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own AVANZADA_HOME and the real template by default."""
    monkeypatch.delenv(TEMPLATE_ENV, raising=False)
    return avanzada_home


def make_template(
    root: Path, readme: str = "Hello {{ project_name }}\nsecond line\n", **extra: str
) -> Path:
    """A small template root: the real copier.yml and answers file, a few files.

    The db folder and events module are conditional the way the real template
    makes feature folders conditional.
    """
    files = {
        "{{_copier_conf.answers_file}}.jinja": (
            REPO_ROOT / "template" / "{{_copier_conf.answers_file}}.jinja"
        ).read_text(),
        "README.md.jinja": readme,
        "src/{{ package_name }}/__init__.py": '"""The package."""\n',
        "src/{{ package_name }}/{% if 'postgres' in features %}db{% endif %}/pool.py": (
            '"""The pool."""\n'
        ),
        "src/{{ package_name }}/{% if 'sse' in features %}events.py{% endif %}": (
            '"""Events."""\n'
        ),
        **extra,
    }
    root.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "copier.yml", root / "copier.yml")
    for name, text in files.items():
        path = root / "template" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Use a small template root for this test."""
    root = make_template(tmp_path / "mini-template")
    monkeypatch.setenv(TEMPLATE_ENV, str(root))
    return root


def answers_of(project: Path) -> dict[str, object]:
    """The answers a project recorded."""
    data = yaml.safe_load((project / ANSWERS).read_text())
    assert isinstance(data, dict)
    return data


def files_of(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file outside .git."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def assert_error(args: list[str | Path], code: int, message: str) -> str:
    """The command fails with ``code`` and exactly one ``error:`` line naming ``message``."""
    exit_code, _, err = invoke(*args)
    assert exit_code == code, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err
    return err


def new_project(tmp_path: Path, *args: str, name: str = "svc") -> Path:
    """``avanzada new`` a project and commit it, as the next steps say."""
    dest = tmp_path / name
    code, _, err = invoke("new", dest, *args)
    assert code == 0, err
    commit_all(dest, "Generate with avanzada")
    return dest


# -- help, version, features ------------------------------------------------------


def test_help_lists_every_command_with_its_help() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for command in ("new", "update", "features", "check"):
        assert command in out
    assert "Create a new service" in out


def test_version_option_prints_the_package_version() -> None:
    code, out = invoke("--version")[:2]
    assert code == 0 and out.startswith(f"avanzada {__version__} (")


def test_features_table_is_read_from_copier_yml() -> None:
    code, out, _ = invoke("features")
    assert code == 0
    questions = load_questions(REPO_ROOT)
    for label, value in questions.features.items():
        assert value in out
        assert label in out
    for value in questions.feature_values:
        for followup in questions.followups(value):
            assert followup.name in out


def test_features_table_follows_another_copier_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_template(tmp_path / "t")
    text = (root / "copier.yml").read_text()
    (root / "copier.yml").write_text(text.replace("    Redis cache: cache\n", ""))
    monkeypatch.setenv(TEMPLATE_ENV, str(root))
    code, out, _ = invoke("features")
    assert code == 0
    assert "Redis cache" not in out
    assert "cache_backend" not in out
    assert "WebSocket rooms" in out


# -- new ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::copier.errors.DirtyLocalWarning")
def test_new_defaults_equals_plain_copier_copy(tmp_path: Path, home: Path) -> None:
    made_by_cli = tmp_path / "cli"
    code, out, err = invoke("new", made_by_cli, "--defaults")
    assert code == 0, err
    assert "Next steps" in out and "git init" in out
    made_by_copier = tmp_path / "copier"
    copier.run_copy(str(REPO_ROOT), made_by_copier, defaults=True, unsafe=True, quiet=True)
    cli_files, copier_files = files_of(made_by_cli), files_of(made_by_copier)
    assert cli_files.keys() == copier_files.keys()
    for name in cli_files.keys() - {ANSWERS}:
        assert cli_files[name] == copier_files[name], name
    cli_answers, copier_answers = answers_of(made_by_cli), answers_of(made_by_copier)
    for key in ("_src_path", "_commit"):
        cli_answers.pop(key), copier_answers.pop(key, None)
    assert cli_answers == copier_answers
    # The project records the store (absolute) and its tag, so update works later.
    recorded = answers_of(made_by_cli)
    assert recorded["_src_path"] == str(home / "template")
    assert recorded["_commit"] == f"v{__version__}"


def test_new_features_and_data_become_answers(tmp_path: Path, mini: Path) -> None:
    dest = tmp_path / "svc"
    code, out, err = invoke(
        "new", dest, "-f", "sse", "-f", "rooms", "-d", "workers=2", "-d", "scale_out=redis"
    )
    assert code == 0, err
    answers = answers_of(dest)
    assert answers["features"] == ["rooms", "sse"]  # copier.yml order
    assert answers["workers"] == 2  # parsed as YAML: an int
    assert answers["scale_out"] == "redis"
    assert (dest / "src/my_service/events.py").is_file()
    assert not (dest / "src/my_service/db").exists()
    assert "features: rooms, sse" in out


def test_new_data_list_and_all(tmp_path: Path, mini: Path) -> None:
    invoke("new", tmp_path / "a", "-d", "features=[sse]", "-d", "python_version=3.12")
    assert answers_of(tmp_path / "a")["features"] == ["sse"]
    assert answers_of(tmp_path / "a")["python_version"] == "3.12"  # a str question stays text
    code, _, err = invoke("new", tmp_path / "b", "--all")
    assert code == 0, err
    assert answers_of(tmp_path / "b")["features"] == FEATURES


def test_new_into_an_empty_existing_folder(tmp_path: Path, mini: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert invoke("new", tmp_path / "empty", "--defaults")[0] == 0
    assert (tmp_path / "empty" / ANSWERS).is_file()


def test_new_unknown_feature_lists_the_choices(tmp_path: Path) -> None:
    err = assert_error(["new", tmp_path / "x", "-f", "bogus"], 2, "unknown feature 'bogus'")
    assert err == f"error: unknown feature 'bogus'; choose from {CHOICES}\n"
    assert not (tmp_path / "x").exists()


def test_new_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert_error(["new", tmp_path / "full"], 2, "destination")
    assert_error(["new", tmp_path / "full"], 2, "is not empty; choose a new folder")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert_error(["new", tmp_path / "full" / "keep.txt"], 2, "exists and is not a folder")


def test_new_passes_copier_validation_messages(tmp_path: Path, mini: Path) -> None:
    assert_error(
        ["new", tmp_path / "x", "-f", "rooms", "-d", "workers=3"],
        2,
        "Validation error for question 'workers': 3 workers cannot share in-memory rooms",
    )
    assert_error(
        ["new", tmp_path / "x", "-d", "package_name=My-Pkg"],
        2,
        "is not a valid Python package name",
    )
    assert not (tmp_path / "x").exists()


def test_new_rejects_bad_data(tmp_path: Path) -> None:
    assert_error(["new", tmp_path / "x", "-d", "workers"], 2, "--data expects KEY=VALUE")
    assert_error(["new", tmp_path / "x", "-d", "bogus=1"], 2, "unknown question 'bogus'")
    assert_error(["new", tmp_path / "x", "-d", "workers=[1"], 2, "invalid value for 'workers'")
    assert_error(
        ["new", tmp_path / "x", "-d", "features=[sse, bogus]"], 2, "unknown feature 'bogus'"
    )
    assert_error(["new", tmp_path / "x", "--all", "-f", "sse"], 2, "either --all or --feature")
    assert_error(
        ["new", tmp_path / "x", "-f", "sse", "-d", "features=[sse]"], 2, "either --feature"
    )


def test_new_without_git_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert_error(["new", tmp_path / "x", "--defaults"], 1, "git is not installed")


def test_new_interrupted_at_a_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(copier, "run_copy", interrupted)
    assert_error(["new", tmp_path / "x"], 130, "interrupted; nothing was created")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_ctrl_c_in_a_real_terminal_is_one_line(tmp_path: Path, mini: Path, home: Path) -> None:
    dest = tmp_path / "x"
    child = pexpect.spawn(
        avanzada_bin(),
        ["new", str(dest)],
        env={**os.environ, "TERM": "xterm", "AVANZADA_HOME": str(home), TEMPLATE_ENV: str(mini)},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect("Human name")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "error: interrupted; nothing was created" in (child.before or "")
    assert "Traceback" not in (child.before or "")
    assert not dest.exists()


# -- update --------------------------------------------------------------------------


def test_update_adds_a_feature_and_keeps_user_edits(tmp_path: Path, mini: Path) -> None:
    project = new_project(tmp_path, "--defaults")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "my own notes\n")
    commit_all(project, "my edit")
    code, out, err = invoke("update", project, "--add-feature", "postgres")
    assert code == 0, err
    assert "postgres" in answers_of(project)["features"]  # type: ignore[operator]
    assert (project / "src/my_service/db/pool.py").is_file()
    assert readme.read_text().endswith("second line\nmy own notes\n")
    assert "Features: rooms, sse, queue, cache, postgres" in out


def test_update_removes_a_feature_and_its_untouched_files(tmp_path: Path, mini: Path) -> None:
    project = new_project(tmp_path, "-f", "sse", "-f", "postgres")
    code, _, err = invoke("update", project, "--remove-feature", "sse")
    assert code == 0, err
    assert answers_of(project)["features"] == ["postgres"]
    assert not (project / "src/my_service/events.py").exists()
    assert (project / "src/my_service/db/pool.py").is_file()


def test_update_pulls_a_changed_template_as_a_new_tag(
    tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, "--defaults")
    (project / "src/my_service/__init__.py").write_text('"""My package."""\n')
    commit_all(project, "my edit")
    changed = make_template(
        tmp_path / "template-v2",
        readme="Hello {{ project_name }}\nsecond line\nthird line\n",
        **{"CHANGELOG.md": "new file\n"},
    )
    monkeypatch.setenv(TEMPLATE_ENV, str(changed))
    code, out, err = invoke("update", project)
    assert code == 0, err
    assert answers_of(project)["_commit"] == f"v{__version__}+1"
    assert f"from template v{__version__} to v{__version__}+1" in out
    assert (project / "README.md").read_text().endswith("third line\n")
    assert (project / "CHANGELOG.md").is_file()
    assert (project / "src/my_service/__init__.py").read_text() == '"""My package."""\n'


def test_update_refuses_when_the_store_lost_the_base_tag(
    tmp_path: Path, mini: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_project(tmp_path, "--defaults", name="first")  # the store tags v{version}
    monkeypatch.setenv(TEMPLATE_ENV, str(make_template(tmp_path / "v2", readme="v2\n")))
    project = new_project(tmp_path, "--defaults")
    assert answers_of(project)["_commit"] == f"v{__version__}+1"
    shutil.rmtree(home)  # e.g. the user cleaned ~/.local/share
    assert_error(["update", project], 1, f"has no tag 'v{__version__}+1', the template version")


@pytest.mark.parametrize(
    ("mode", "marker_file"), [("inline", "README.md"), ("rej", "README.md.rej")]
)
def test_update_reports_conflicts(
    tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch, mode: str, marker_file: str
) -> None:
    project = new_project(tmp_path, "--defaults")
    (project / "README.md").write_text("Hi from me\nsecond line\n")
    commit_all(project, "my edit")
    changed = make_template(tmp_path / "v2", readme="Greetings {{ project_name }}\nsecond line\n")
    monkeypatch.setenv(TEMPLATE_ENV, str(changed))
    code, out, err = invoke("update", project, "--conflict", mode)
    assert code == 0, err
    assert "Resolve the conflicts in" in out and marker_file in out
    if mode == "inline":
        assert "<<<<<<< before updating" in (project / "README.md").read_text()
    else:
        assert (project / "README.md.rej").is_file()


def test_update_from_a_recorded_source_that_is_not_the_store(tmp_path: Path, home: Path) -> None:
    source = make_template(tmp_path / "upstream")
    commit_all(source, "v1")
    git(source, "tag", "v1.0.0")
    project = tmp_path / "svc"
    copier.run_copy(str(source), project, defaults=True, unsafe=True, quiet=True)
    commit_all(project)
    readme = source / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "from upstream\n")
    commit_all(source, "v1.1")
    git(source, "tag", "v1.1.0")
    code, _, err = invoke("update", project)
    assert code == 0, err
    assert answers_of(project)["_commit"] == "v1.1.0"
    assert "from upstream" in (project / "README.md").read_text()
    assert not (home / "template").exists()  # the store was not involved


def test_update_with_the_real_template_matches_a_fresh_render(tmp_path: Path) -> None:
    project = new_project(tmp_path, "-f", "rooms", "-f", "sse")
    code, _, err = invoke("update", project, "--add-feature", "postgres")
    assert code == 0, err
    fresh = tmp_path / "fresh"
    assert invoke("new", fresh, "-f", "rooms", "-f", "sse", "-f", "postgres")[0] == 0
    updated, expected = files_of(project), files_of(fresh)
    assert updated.keys() == expected.keys()
    # Every file as a fresh render has it, byte for byte (the answers compared as data).
    # uv.lock is written at generation, never by an update (the user runs uv lock).
    differing = [
        name
        for name in expected
        if name not in (ANSWERS, "uv.lock") and updated[name] != expected[name]
    ]
    assert differing == []
    assert answers_of(project) == answers_of(fresh)


def test_update_of_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    assert_error(["update", tmp_path], 2, "is not a project generated by avanzada")
    assert_error(["update", tmp_path], 2, "no .copier-answers.yml")
    assert_error(["update", tmp_path / "missing"], 2, "is not a folder")


def test_update_of_a_dirty_project_asks_to_commit(tmp_path: Path, mini: Path) -> None:
    project = new_project(tmp_path, "--defaults")
    (project / "README.md").write_text("changed\n")
    assert_error(["update", project], 1, "has uncommitted changes; commit them first")


def test_update_of_a_project_not_in_git(tmp_path: Path, mini: Path) -> None:
    project = tmp_path / "svc"
    assert invoke("new", project, "--defaults")[0] == 0
    assert_error(["update", project], 1, "is not a git repository; run git init")


def test_update_feature_switch_errors(tmp_path: Path, mini: Path) -> None:
    project = new_project(tmp_path, "-f", "sse")
    assert_error(
        ["update", project, "--add-feature", "bogus"],
        2,
        f"unknown feature 'bogus'; choose from {CHOICES}",
    )
    assert_error(["update", project, "--remove-feature", "bogus"], 2, "unknown feature 'bogus'")
    assert_error(["update", project, "--add-feature", "sse"], 2, "feature 'sse' is already on")
    assert_error(["update", project, "--remove-feature", "rooms"], 2, "feature 'rooms' is not on")
    assert_error(
        ["update", project, "--add-feature", "rooms", "--remove-feature", "rooms"],
        2,
        "both added and removed",
    )
    assert answers_of(project)["features"] == ["sse"]


def test_update_refused_combination_passes_copier_message(tmp_path: Path, mini: Path) -> None:
    project = new_project(tmp_path, "-f", "rooms")
    assert_error(
        ["update", project, "-d", "workers=2"],
        2,
        "Validation error for question 'workers': 2 workers cannot share in-memory rooms",
    )
    assert_error(
        ["update", project, "--add-feature", "nginx", "-d", "nginx_upstreams=3"],
        2,
        "3 nginx upstreams need Redis scale-out",
    )
    assert git(project, "status", "--porcelain") == ""


def test_update_without_git_or_terminal(
    tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path, "--defaults")
    assert_error(["update", project, "--prompt"], 2, "--prompt needs an interactive terminal")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert_error(["update", project], 1, "git is not installed")


def test_update_interrupted(tmp_path: Path, mini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = new_project(tmp_path, "--defaults")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(copier, "run_update", interrupted)
    assert_error(["update", project], 130, "interrupted; nothing was changed")


# -- the console script, for real --------------------------------------------------


def test_console_script_is_non_interactive_without_a_tty(tmp_path: Path, mini: Path) -> None:
    dest = tmp_path / "svc"
    done = subprocess.run(
        [avanzada_bin(), "new", str(dest), "-f", "sse"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Next steps" in done.stdout
    assert answers_of(dest)["features"] == ["sse"]
    done = subprocess.run(
        [avanzada_bin(), "update", str(dest), "--add-feature", "nope"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: unknown feature 'nope'; choose from {CHOICES}\n"


def test_python_dash_m_runs_the_same_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "avanzada", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith(f"avanzada {__version__} (")


# -- check -----------------------------------------------------------------------------


def test_check_lint_only_renders_lints_and_checks_refusals(tmp_path: Path, mini: Path) -> None:
    code, out, err = invoke(
        "check",
        "--only",
        "none",
        "--only",
        "workers-3+rooms-memory",
        "--lint-only",
        "--keep",
        tmp_path / "renders",
    )
    assert code == 0, out + err
    assert "none" in out and "refused" in out and "skipped" in out
    assert "All 2 combinations passed" in out
    assert (tmp_path / "renders" / "none" / ANSWERS).is_file()


def test_check_fails_on_leftover_jinja(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = make_template(
        tmp_path / "broken", readme="Hello {{ project_name }}\n{% raw %}{{ oops }}{% endraw %}\n"
    )
    monkeypatch.setenv(TEMPLATE_ENV, str(broken))
    code, out, _ = invoke("check", "--only", "none", "--lint-only")
    assert code == 1
    assert "[jinja] README.md: line 2" in out
    assert "1 of 1 combinations failed" in out


def test_check_unknown_combination_and_list() -> None:
    err = assert_error(["check", "--only", "bogus"], 2, "unknown combination 'bogus'")
    assert "all-redis" in err
    code, out, _ = invoke("check", "--list")
    assert code == 0
    for name in supported():
        assert name in out


def test_check_the_real_template_none_combination_lint_only(tmp_path: Path) -> None:
    # The real template, the cheapest combination: proves `check` drives copier,
    # ruff and the text scan end to end (lint problems show in the summary).
    code, out, err = invoke("check", "--only", "none", "--lint-only")
    assert code == 0, out + err
    assert "combination" in out and "none" in out


# -- the template store ------------------------------------------------------------------


def test_store_tags_reuses_counts_and_keeps_history(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "store" / "template")
    first = make_template(tmp_path / "t1")
    second = make_template(tmp_path / "t2", readme="changed\n")
    third = make_template(tmp_path / "t3", readme="changed again\n")
    assert store.sync(first) == f"v{__version__}"
    assert store.sync(first) == f"v{__version__}"  # same content: same tag, no commit
    assert store.sync(second) == f"v{__version__}+1"
    assert store.sync(third) == f"v{__version__}+2"
    assert store.sync(first) == f"v{__version__}"  # old content: its old tag again
    assert store.sync(second, version="9.0.0") == f"v{__version__}+1"
    assert store.sync(make_template(tmp_path / "t4", readme="v9\n"), version="9.0.0") == "v9.0.0"
    tags = store.tags()
    assert tags == [f"v{__version__}", f"v{__version__}+1", f"v{__version__}+2", "v9.0.0"]
    assert [Version(t) for t in tags] == sorted(Version(t) for t in tags)  # newer sorts higher
    assert git(store.path, "rev-list", "--count", "HEAD").strip() == "4"  # history kept
    assert git(store.path, "status", "--porcelain") == ""  # work tree equals HEAD
    assert git(store.path, "show", f"v{__version__}+1:template/README.md.jinja") == "changed\n"


def test_store_copies_only_the_template(tmp_path: Path) -> None:
    root = make_template(tmp_path / "t")
    (root / "template" / "__pycache__").mkdir()
    (root / "template" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "README.md").write_text("not part of the template")
    store = TemplateStore(tmp_path / "store")
    store.sync(root)
    assert sorted(p.name for p in store.path.iterdir()) == [".git", "copier.yml", "template"]
    assert not (store.path / "template" / "__pycache__").exists()


def test_store_concurrent_syncs_agree(tmp_path: Path) -> None:
    root = make_template(tmp_path / "t")
    store = TemplateStore(tmp_path / "store")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.sync(root))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [f"v{__version__}"] * 4
    assert git(store.path, "rev-list", "--count", "HEAD").strip() == "1"


def test_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TemplateStore(tmp_path / "store")
    with pytest.raises(StoreError, match=r"copier\.yml is missing"):
        store.sync(tmp_path)
    root = make_template(tmp_path / "t")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(GitMissingError, match="git is not installed"):
        store.sync(root)


def test_store_location_and_membership(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVANZADA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert avanzada_home() == (tmp_path / "xdg" / "avanzada").resolve()
    monkeypatch.setenv("AVANZADA_HOME", str(tmp_path / "h"))
    assert avanzada_home() == (tmp_path / "h").resolve()
    store = TemplateStore(tmp_path / "h" / "template")
    assert store.contains(str(tmp_path / "h" / "template"))
    assert not store.contains(str(REPO_ROOT))
    assert not store.contains(None)


def test_template_root_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert template_root() == REPO_ROOT
    monkeypatch.setenv(TEMPLATE_ENV, str(tmp_path))
    with pytest.raises(TemplateNotFoundError, match=r"does not hold copier\.yml"):
        template_root()
    assert_error(["features"], 1, "does not hold copier.yml and template/")


# -- questions and combinations ------------------------------------------------------------


def test_questions_come_from_copier_yml() -> None:
    questions = load_questions(REPO_ROOT)
    raw = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    assert questions.names == [name for name in raw if not name.startswith("_")]
    assert questions.features == {str(k): str(v) for k, v in raw["features"]["choices"].items()}
    assert questions.default_features == raw["features"]["default"]
    for question in questions.questions:
        if question.feature is not None:
            assert f"'{question.feature}' in features" in str(question.when)
            assert question.feature in questions.feature_values
    assert all(not q.computed for q in questions.questions if q.name in questions.askable_names)
    with pytest.raises(UnknownFeatureError, match="choose from"):
        questions.followups("bogus")


def test_questions_parse_short_form_and_list_choices() -> None:
    questions = parse_questions(
        "_answers_file: .answers.yml\n"
        "name: Bob\n"
        "features: {type: str, multiselect: true, choices: {A: a, B: b}, default: [b]}\n"
        "size: {type: str, choices: [s, m], when: \"{{ 'a' in features }}\"}\n"
    )
    assert questions.answers_file == ".answers.yml"
    assert questions.get("name").default == "Bob"
    assert questions.get("size").choices == {"s": "s", "m": "m"}
    assert [q.name for q in questions.followups("a")] == ["size"]
    assert questions.order_features(["b", "a", "b"]) == ["a", "b"]


def test_combinations_cover_every_feature_and_cannot_drift(tmp_path: Path) -> None:
    combos = supported()
    for feature in FEATURES:
        assert combos[feature] == {"features": [feature]}
    assert combos["all-memory"]["features"] == FEATURES
    assert combos["all-redis"]["features"] == FEATURES
    assert combos["none"] == {"features": []}
    text = (
        (REPO_ROOT / "copier.yml").read_text().replace("    Docker image and compose: docker\n", "")
    )
    with pytest.raises(CombinationError, match=r"missing from copier\.yml"):
        supported(parse_questions(text))


def test_unsupported_combinations_are_refused_by_copier(tmp_path: Path, mini: Path) -> None:
    for name, case in unsupported().items():
        with pytest.raises(ValueError) as refused:
            checks.render(case.answers, tmp_path / name)
        assert case.message in " ".join(str(refused.value).split()), name
        assert not (tmp_path / name).exists()


# -- lint ----------------------------------------------------------------------------------


def test_lint_finds_jinja_blank_lines_and_ruff_problems(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "ok.py").write_text('DATA = {"a": {"b": 1}}\n')
    (project / "cfg.toml").write_text("name = '{{ project_name }}'\n")
    (project / "notes.md").write_text("a\n\n\n\nb\n")
    (project / "bad.py").write_text("import os\n")
    (project / "blob.bin").write_bytes(b"\0{{ x }}")
    failures = {(f.check, f.path) for f in checks.lint(project)}
    assert ("jinja", "cfg.toml") in failures
    assert ("blank lines", "notes.md") in failures
    assert ("ruff check", None) in failures
    assert not any(path in ("ok.py", "blob.bin") for _, path in failures)


def test_lint_passes_a_clean_project(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "main.py").write_text('"""Clean."""\n\nVALUE = {"a": {"b": 1}}\n')
    assert checks.lint(project) == []


def test_lint_flags_a_heading_glued_to_the_previous_line(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Title\n\nLast words.## Tests\n\n| a | b # C |\n")
    failures = [f for f in checks.lint(tmp_path) if f.check == "markdown"]
    assert [(f.path, f.detail) for f in failures] == [
        ("README.md", "line 3: heading glued on: Last words.## Tests")
    ]
