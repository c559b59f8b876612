"""The release record, the changelog, and reading a release back from git history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from avanzada import __version__
from avanzada.releases import (
    Release,
    ReleaseError,
    crossed,
    describe_version,
    extract,
    load_changelog,
    load_releases,
    parse_changelog,
    parse_releases,
    tag_repository,
    version_of_ref,
)
from helpers import REPO_ROOT, git, invoke
from packaging.version import Version

RELEASES = load_releases(REPO_ROOT)
COMMIT = "17f2d1c6afa515ef3c24f6e435c6472f1e6d83fa"


def test_every_release_is_a_commit_of_this_history_with_a_changelog_section() -> None:
    assert [str(r.version) for r in RELEASES][:2] == ["0.1.0", "0.2.0"]
    changelog = load_changelog(REPO_ROOT)
    for release in RELEASES:
        # Fails on a shallow clone, by design: CI needs the history it tests.
        found = subprocess.run(
            ["git", "cat-file", "-t", release.commit],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.stdout.strip() == "commit", (
            f"release {release.version} was cut from {release.commit[:12]}, which this clone "
            "lacks: clone with the full history (or run `git fetch --unshallow`)"
        )
        assert "### You must do" in changelog[str(release.version)], release.version
    assert Version(__version__) >= RELEASES[-1].version, "__version__ never goes back"
    if Version(__version__) > RELEASES[-1].version:
        assert "### You must do" in changelog["Unreleased"]


def test_the_release_record_refuses_what_it_cannot_trust() -> None:
    good = f'[releases]\n"0.1.0" = {{ commit = "{COMMIT}", date = "2026-11-26" }}\n'
    assert parse_releases(good) == [Release(Version("0.1.0"), COMMIT, "2026-11-26")]
    for broken, message in (
        ("releases = 1", "no [releases] table"),
        (good.replace("0.1.0", "one"), "not a PEP 440 version"),
        (good.replace(COMMIT, "17f2d1c"), "full 40-character commit"),
        (good.replace("2026-11-26", "today"), "date as YYYY-MM-DD"),
        ("[releases\n", "not valid TOML"),
    ):
        with pytest.raises(ReleaseError, match=message.replace("[", r"\[")):
            parse_releases(broken)


def test_changelog_sections_by_version() -> None:
    text = (
        "# Changelog\n\n## [Unreleased]\n\nnew\n\n## [0.2.0] - 2026-11-26\n\n### You get\n- a\n\n"
        "## [0.1.0] - 2026-11-25\n\nfirst\n\n[0.1.0]: releases.toml\n"
    )
    assert parse_changelog(text) == {
        "Unreleased": "new",
        "0.2.0": "### You get\n- a",
        "0.1.0": "first",
    }


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("v0.2.0", "0.2.0"),
        ("v0.2.0+3", "0.2.0+3"),
        ("v0.1.0-12-g17f2d1c", "0.1.0"),
        ("17f2d1c6afa5", None),
        (None, None),
    ],
)
def test_version_of_a_recorded_commit(ref: str | None, version: str | None) -> None:
    found = version_of_ref(ref)
    assert (str(found) if found else None) == version


def test_releases_an_update_crosses() -> None:
    releases = [Release(Version(v), COMMIT, "2026-11-26") for v in ("0.1.0", "0.2.0", "0.3.0")]

    def between(old: str | None, new: str) -> list[str]:
        low = Version(old) if old else None
        return [str(r.version) for r in crossed(releases, low, Version(new))]

    assert between("0.1.0", "0.3.0") == ["0.2.0", "0.3.0"]
    assert between("0.1.0+2", "0.2.0+1") == ["0.2.0"], "store snapshots count as their release"
    assert between("0.2.0", "0.2.0") == []
    assert between(None, "0.2.0") == ["0.1.0", "0.2.0"]


def test_version_names_the_release_or_the_one_it_follows() -> None:
    current = Version(__version__)
    record = [Release(Version("0.1.0"), COMMIT, "2026-11-26")]
    assert describe_version(record) == f"{__version__} (unreleased; newest release 0.1.0)"
    same = [Release(current, COMMIT, "2026-12-01")]
    assert describe_version(same) == f"{__version__} (released 2026-12-01, commit 17f2d1c)"
    code, out, _ = invoke("--version")
    assert code == 0 and out == f"avanzada {describe_version()}\n"


def test_extract_reads_a_release_from_history(tmp_path: Path) -> None:
    oldest = RELEASES[0]
    dest = extract(REPO_ROOT, oldest, tmp_path / "old")
    assert sorted(p.name for p in dest.iterdir()) == ["copier.yml", "template"]
    expected = git(REPO_ROOT, "show", f"{oldest.commit}:copier.yml")
    assert (dest / "copier.yml").read_text() == expected


def test_a_shallow_clone_fails_with_what_to_do(tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{REPO_ROOT}", str(shallow))
    with pytest.raises(ReleaseError, match="shallow; run `git fetch --unshallow`"):
        extract(shallow, RELEASES[0], tmp_path / "out")


def test_tags_follow_the_record_and_never_move(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(REPO_ROOT), str(clone))
    for tag in git(clone, "tag", "--list").split():
        git(clone, "tag", "-d", tag)
    assert tag_repository(clone, RELEASES) == [r.tag for r in RELEASES]
    assert tag_repository(clone, RELEASES) == []
    for release in RELEASES:
        assert git(clone, "rev-parse", f"{release.tag}^{{commit}}").strip() == release.commit
    moved = [Release(RELEASES[0].version, RELEASES[-1].commit, "2026-11-26")]
    if RELEASES[0].commit != RELEASES[-1].commit:
        with pytest.raises(ReleaseError, match="points to"):
            tag_repository(clone, moved)


def test_releases_command_lists_each_release() -> None:
    code, out, err = invoke("releases")
    assert code == 0, err
    for release in RELEASES:
        assert str(release.version) in out and release.commit[:12] in out
