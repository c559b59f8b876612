"""avanzada as a user installs it: from a built wheel, in a fresh environment."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT

UV = [sys.executable, "-m", "uv"]


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def assert_same_project(made_by_cli: Path, made_by_copier: Path) -> None:
    assert tree(made_by_cli) == tree(made_by_copier)
    answers = ".copier-answers.yml"
    _, differ, errors = filecmp.cmpfiles(
        made_by_cli, made_by_copier, sorted(tree(made_by_cli) - {answers}), shallow=False
    )
    assert not differ and not errors, f"files differ: {differ + errors}"
    recorded = [yaml.safe_load((p / answers).read_text()) for p in (made_by_cli, made_by_copier)]
    for answers_of in recorded:
        answers_of.pop("_src_path")
        answers_of.pop("_commit")
    assert recorded[0] == recorded[1]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding only the built avanzada wheel."""
    work = tmp_path_factory.mktemp("wheel")
    run(*UV, "build", "--wheel", "--out-dir", work / "dist", REPO_ROOT)
    wheels = list((work / "dist").glob("avanzada-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    run(*UV, "venv", "-q", "--python", sys.executable, venv)
    run(*UV, "pip", "install", "-q", "--python", venv / "bin" / "python", wheels[0])
    return venv


def test_wheel_bundles_the_template(installed_wheel: Path) -> None:
    out = run(
        installed_wheel / "bin" / "python",
        "-c",
        "import avanzada, pathlib; print(pathlib.Path(avanzada.__file__).parent)",
    )
    package_dir = Path(out.split()[-1])
    assert "site-packages" in package_dir.parts
    assert (package_dir / "_template" / "copier.yml").is_file()
    assert (package_dir / "_template" / "template").is_dir()


def test_installed_avanzada_renders_what_plain_copier_renders(
    installed_wheel: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "AVANZADA_HOME": str(tmp_path / "home")}
    run(installed_wheel / "bin" / "avanzada", "new", tmp_path / "by-cli", "--defaults", env=env)
    run(
        Path(sys.executable).parent / "copier",
        "copy",
        "--trust",
        "--defaults",
        "--quiet",
        REPO_ROOT,
        tmp_path / "by-copier",
    )
    assert_same_project(tmp_path / "by-cli", tmp_path / "by-copier")
    recorded = yaml.safe_load((tmp_path / "by-cli" / ".copier-answers.yml").read_text())
    # The source is the git-tracked template store, never site-packages, so
    # `copier update` can reach it later.
    assert Path(recorded["_src_path"]) == tmp_path / "home" / "template"
    assert recorded["_commit"].startswith("v")
