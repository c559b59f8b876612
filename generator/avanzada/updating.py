"""What ``avanzada update`` does around ``copier.run_update``.

Copier merges the template's changes into a project; this module covers what
it leaves to us: finding the template versions a merge needs (restoring a
release from git history into the store), checking the recorded template
source before copier fails on it with a bare git exit code, keeping the files
a user edited that copier would delete, and a pretend run on a clone.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import copier
from packaging.version import Version

from avanzada import __version__
from avanzada.releases import Release, crossed, restore, version_of_ref
from avanzada.store import TemplateStore, git_executable

# A template source copier reaches over the network (URL, scp-like, shortcut).
_REMOTE = re.compile(r"^([\w+.-]+://|[\w.-]+@[\w.-]+:|(gh|gl):)")

#: Seconds allowed to reach a remote template source before giving up.
REACH_TIMEOUT = 60.0


class UpdateError(RuntimeError):
    """The update cannot run; the message says what to do."""


def is_remote(src: str) -> bool:
    """Whether ``src`` names a template copier fetches over the network."""
    return bool(_REMOTE.match(src))


def _git(cwd: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(
        [git_executable(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_source(project: Path, src: Any, answers_file: str) -> None:
    """Fail with advice when copier could not update from the recorded ``_src_path``.

    Copier reports these cases as "Updating is only supported in git-tracked
    templates" or "Unexpected exit code: 128", naming neither the path nor the
    cause.
    """
    where = f"{answers_file} in '{project}'"
    fix = "set _src_path there to the template's absolute path or URL, commit, and run again"
    if not src:
        raise UpdateError(f"{where} records no template source (_src_path); {fix}")
    text = str(src)
    if is_remote(text):
        try:
            reached = _git(project, "ls-remote", "--tags", "--", text, timeout=REACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UpdateError(
                f"cannot reach the template source {text!r} recorded in {where}: no answer "
                f"in {REACH_TIMEOUT:.0f} s; check your network, or {fix}"
            ) from None
        if reached.returncode != 0:
            lines = [line for line in reached.stderr.splitlines() if line.strip()]
            cause = lines[-1].strip() if lines else f"git exit code {reached.returncode}"
            raise UpdateError(
                f"cannot reach the template source {text!r} recorded in {where} ({cause}); "
                f"check the address and your network, or {fix}"
            )
        return
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise UpdateError(
            f"{where} records the template source as the relative path {text!r} "
            "(copier copy was given a relative path), which copier cannot update from; " + fix
        )
    if not path.exists():
        raise UpdateError(
            f"the template source {text!r} recorded in {where} does not exist "
            f"(moved or deleted?); {fix}"
        )
    if _git(path, "rev-parse", "--git-dir").returncode != 0:
        raise UpdateError(
            f"the template source {text!r} recorded in {where} is not a git repository, "
            f"and copier updates only from git; {fix}"
        )


def is_dirty(project: Path) -> bool:
    """Whether the project has uncommitted changes (untracked files count)."""
    done = _git(project, "status", "--porcelain")
    return done.returncode == 0 and bool(done.stdout.strip())


def ensure_base(
    store: TemplateStore,
    old_ref: Any,
    releases: Sequence[Release],
    history: Path | None,
) -> bool:
    """Make sure the store holds the tag a project was made from; False if it cannot.

    ``v{__version__}`` is safe without a tag (the sync recreates it from the
    bundled template). A release's tag is restored from git history when this
    avanzada runs from a checkout that has it.
    """
    ref = str(old_ref) if old_ref else ""
    if not ref or ref in store.tags() or ref == f"v{__version__}":
        return True
    release = next((r for r in releases if r.tag == ref), None)
    if release is None or history is None:
        return False
    restore(store, release, history)
    return True


def target_tag(
    store: TemplateStore,
    to: str | None,
    releases: Sequence[Release],
    history: Path | None,
) -> str:
    """The store tag to update to: this avanzada's template, or release ``to``."""
    if to is None or Version(to) == Version(__version__):
        return store.sync()
    release = next((r for r in releases if r.version == Version(to)), None)
    if release is None:
        raise UpdateError(f"{to} is not a release of avanzada (see `avanzada releases`)")
    if release.tag in store.tags():
        return release.tag
    if history is None:
        raise UpdateError(
            f"release {to} is not in the template store and this avanzada was installed "
            f"without its history; install avanzada=={to}, run its `avanzada update`, "
            "then update further with this one"
        )
    return restore(store, release, history)


def releases_between(
    releases: Sequence[Release], old_ref: Any, new_ref: Any
) -> tuple[list[Release], bool]:
    """The releases an update crosses, and whether it brings unreleased changes too."""
    old, new = version_of_ref(old_ref), version_of_ref(new_ref)
    between = crossed(list(releases), old, new)
    newest = releases[-1].version if releases else None
    unreleased = (
        new is not None
        and (newest is None or Version(new.public) > newest)
        and (old is None or old < new)
    )
    return between, unreleased


@dataclass
class Changes:
    """What an update did to a project's files (relative paths)."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Files touched."""
        return len(self.added) + len(self.modified) + len(self.deleted)


def changes(project: Path) -> Changes:
    """The project's files changed since HEAD (untracked files count as added)."""
    result = Changes()
    done = _git(project, "status", "--porcelain", "--untracked-files=all", "-z")
    for entry in done.stdout.split("\0"):
        code, name = entry[:2], entry[3:]
        if not name:
            continue
        if "D" in code:
            result.deleted.append(name)
        elif code in ("??", "A ") or "A" in code:
            result.added.append(name)
        else:
            result.modified.append(name)
    return result


def _deleted_since_head(project: Path) -> list[str]:
    done = _git(project, "diff", "--name-only", "--diff-filter=D", "-z", "HEAD")
    return [name for name in done.stdout.split("\0") if name]


def keep_edited(project: Path, recorded: Mapping[str, Any]) -> list[str]:
    """Bring back deleted files that the user edited; return their paths.

    Copier deletes every file the old template rendered and the new one does
    not, edited or not (so switching a feature off lost the user's work in
    them); files it never rendered stay. A deletion is kept only
    for a file whose committed content is exactly what the template rendered
    at the project's recorded version; every other deleted file is restored
    from HEAD, for the user to remove once they no longer need it.
    """
    deleted = _deleted_since_head(project)
    if not deleted:
        return []
    answers = {k: v for k, v in recorded.items() if not str(k).startswith("_")}
    with tempfile.TemporaryDirectory(prefix="avanzada-base-") as scratch:
        base = Path(scratch) / "base"
        copier.run_copy(
            str(recorded["_src_path"]),
            base,
            data=answers,
            vcs_ref=str(recorded["_commit"]),
            defaults=True,
            unsafe=True,
            quiet=True,
        )
        keep = []
        for name in deleted:
            rendered = base / name
            committed = subprocess.run(
                [git_executable(), "show", f"HEAD:{name}"],
                cwd=project,
                capture_output=True,
                check=False,
            ).stdout
            if not rendered.is_file() or rendered.read_bytes() != committed:
                keep.append(name)
    if keep:
        done = _git(project, "checkout", "HEAD", "--", *keep)
        if done.returncode != 0:
            raise UpdateError(f"cannot restore {', '.join(keep)}: {done.stderr.strip()}")
    return keep


def pretend_copy(project: Path, scratch: Path) -> Path:
    """A clone of the committed project in ``scratch``, to update instead of it."""
    clone = scratch / project.resolve().name
    done = _git(scratch, "clone", "--quiet", "--no-hardlinks", str(project.resolve()), str(clone))
    if done.returncode != 0:
        raise UpdateError(f"cannot clone '{project}' for --pretend: {done.stderr.strip()}")
    return clone
