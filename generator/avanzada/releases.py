"""Releases of avanzada: the in-repository record, the changelog, and old templates.

``releases.toml`` maps each released version to the commit of this repository
it was cut from; it is the source of truth because tags do not travel with
every copy of the history. ``CHANGELOG.md`` says, per release, what a user of a
generated project gets and must do. Both ship inside the wheel beside the
template (``avanzada/_template/``), so an installed avanzada can show the
releases an update crosses.

A release's template is read back from git history (``git archive`` of the
recorded commit) and put into the template store under ``v<version>``; that is
how ``avanzada update`` restores the base of a 3-way merge, and how the tests
render projects exactly as each release did.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from avanzada import __version__
from avanzada.store import TemplateStore, git_executable
from avanzada.template_source import TEMPLATE_ENTRIES, is_template_root

#: The release record, at the repository root (and bundled beside the template).
RECORD = "releases.toml"
#: The changelog, in Keep a Changelog style.
CHANGELOG = "CHANGELOG.md"
#: Changelog section of changes not released yet.
UNRELEASED = "Unreleased"

_PACKAGE_DIR = Path(__file__).resolve().parent
_COMMIT = re.compile(r"[0-9a-f]{40}")
# `## [0.2.0] - 2026-11-26` or `## [Unreleased]`.
_SECTION = re.compile(r"^## \[([^\]]+)\]", re.MULTILINE)
# What `git describe --tags` appends to a tag: `-<commits since>-g<hash>`.
_DESCRIBE_SUFFIX = re.compile(r"-\d+-g[0-9a-f]+$")


class ReleaseError(RuntimeError):
    """The release record is broken, or a release cannot be read from history."""


@dataclass(frozen=True)
class Release:
    """One release: its version, the commit it was cut from and its date."""

    version: Version
    commit: str
    date: str

    @property
    def tag(self) -> str:
        """The git tag of this release (in the template store and in a checkout)."""
        return f"v{self.version}"


def metadata_root() -> Path:
    """The folder holding releases.toml and CHANGELOG.md.

    The wheel's bundled copy wins, as for the template; ``$AVANZADA_TEMPLATE``
    does not move them (a template in development has no releases of its own).
    """
    bundled = _PACKAGE_DIR / "_template"
    if (bundled / RECORD).is_file():
        return bundled
    return _PACKAGE_DIR.parents[1]


def parse_releases(text: str) -> list[Release]:
    """Parse the text of releases.toml; releases lowest version first."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ReleaseError(f"{RECORD} is not valid TOML: {error}") from error
    table = data.get("releases")
    if not isinstance(table, dict):
        raise ReleaseError(f"{RECORD} has no [releases] table")
    releases: list[Release] = []
    for raw_version, entry in table.items():
        try:
            version = Version(raw_version)
        except InvalidVersion:
            raise ReleaseError(f"{RECORD}: {raw_version!r} is not a PEP 440 version") from None
        if not isinstance(entry, dict):
            raise ReleaseError(f"{RECORD}: release {raw_version} must be a table")
        commit, date = str(entry.get("commit", "")), str(entry.get("date", ""))
        if not _COMMIT.fullmatch(commit):
            raise ReleaseError(
                f"{RECORD}: release {raw_version} needs the full 40-character commit id"
            )
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise ReleaseError(f"{RECORD}: release {raw_version} needs a date as YYYY-MM-DD")
        releases.append(Release(version, commit, date))
    releases.sort(key=lambda release: release.version)
    return releases


def load_releases(root: Path | None = None) -> list[Release]:
    """The recorded releases, lowest version first."""
    path = (root if root is not None else metadata_root()) / RECORD
    try:
        return parse_releases(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReleaseError(f"cannot read {path}: {error.strerror}") from error


def parse_changelog(text: str) -> dict[str, str]:
    """Changelog sections by version (or "Unreleased"), each without its heading."""
    matches = list(_SECTION.finditer(text))
    sections: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() : end]
        # Drop the rest of the heading line (" - 2026-11-26") and link references.
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = re.sub(r"^\[[^\]]+\]: \S+\s*$", "", body, flags=re.MULTILINE)
        sections[match.group(1)] = body.strip()
    return sections


def load_changelog(root: Path | None = None) -> dict[str, str]:
    """The changelog's sections; empty when the file is missing."""
    path = (root if root is not None else metadata_root()) / CHANGELOG
    try:
        return parse_changelog(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def version_of_ref(ref: object) -> Version | None:
    """The version a recorded ``_commit`` names, if it names one.

    Accepts tags (``v0.2.0``, ``v0.3.0.dev0+2``) and ``git describe`` output
    (``v0.2.0-4-gabc1234``, which is that release plus commits: we return the
    release). A bare commit hash names no version.
    """
    if not ref:
        return None
    text = _DESCRIBE_SUFFIX.sub("", str(ref))
    try:
        return Version(text)
    except InvalidVersion:
        return None


def crossed(releases: list[Release], old: Version | None, new: Version | None) -> list[Release]:
    """The releases an update from ``old`` to ``new`` brings, oldest first.

    Local labels are ignored, so a store snapshot ``v0.2.0+1`` counts as 0.2.0.
    Without a known ``old`` every release up to ``new`` counts.
    """
    low = Version(old.public) if old is not None else None
    high = Version(new.public) if new is not None else None
    return [
        release
        for release in releases
        if (low is None or release.version > low) and (high is None or release.version <= high)
    ]


def describe_version(releases: list[Release] | None = None) -> str:
    """This avanzada's version, naming the release it is or the one it follows."""
    try:
        known = releases if releases is not None else load_releases()
    except ReleaseError:
        return __version__
    current = Version(__version__)
    for release in known:
        if release.version == current:
            return f"{__version__} (released {release.date}, commit {release.commit[:7]})"
    older = [release for release in known if release.version < current]
    if older:
        return f"{__version__} (unreleased; newest release {older[-1].version})"
    return f"{__version__} (unreleased)"


def history_root() -> Path | None:
    """The checkout this avanzada runs from, when it holds git history; else None."""
    checkout = _PACKAGE_DIR.parents[1]
    if is_template_root(checkout) and (checkout / ".git").exists():
        return checkout
    return None


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [git_executable(), "-C", str(repo), *args], capture_output=True, check=False
    )


def extract(repo: Path, release: Release, dest: Path) -> Path:
    """Write the template of ``release`` (copier.yml and template/) into ``dest``.

    Reads the recorded commit from ``repo``'s history. A missing commit is an
    error that says why (a shallow clone is the usual cause), never a skip.
    """
    if _git(repo, "cat-file", "-e", f"{release.commit}^{{commit}}").returncode != 0:
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        why = (
            "the clone is shallow; run `git fetch --unshallow` in it"
            if shallow
            else "fetch the full history of avanzada into it"
        )
        raise ReleaseError(
            f"release {release.version} was cut from commit {release.commit[:12]}, "
            f"which {repo} does not have: {why}"
        )
    archive = _git(repo, "archive", "--format=tar", release.commit, *TEMPLATE_ENTRIES)
    if archive.returncode != 0:
        detail = archive.stderr.decode(errors="replace").strip()
        raise ReleaseError(f"cannot read release {release.version} from {repo}: {detail}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def restore(store: TemplateStore, release: Release, repo: Path) -> str:
    """Put ``release``'s template into ``store`` under its tag; return the tag."""
    if release.tag in store.tags():
        return release.tag
    with tempfile.TemporaryDirectory(prefix="avanzada-release-") as scratch:
        source = extract(repo, release, Path(scratch))
        return store.add_release(source, str(release.version))


def tag_repository(repo: Path, releases: list[Release]) -> list[str]:
    """Tag each release's commit in ``repo`` as ``v<version>``; return the new tags.

    A tag that exists on another commit is an error: the record and the tags
    must agree, and moving a published tag is never done silently.
    """
    created: list[str] = []
    for release in releases:
        found = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{release.tag}^{{}}")
        if found.returncode == 0:
            if found.stdout.decode().strip() != release.commit:
                raise ReleaseError(
                    f"tag {release.tag} in {repo} points to "
                    f"{found.stdout.decode().strip()[:12]}, but {RECORD} says "
                    f"{release.commit[:12]}"
                )
            continue
        done = _git(repo, "tag", release.tag, release.commit)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise ReleaseError(f"cannot tag {release.tag} in {repo}: {detail}")
        created.append(release.tag)
    return created
