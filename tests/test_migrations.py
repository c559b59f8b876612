"""What a release that renames a file or moves an answer does to an edited project.

No release so far needed either, so the next one is made here from the working
tree's template: ``log_config.py`` becomes ``logging_setup.py``, and the
``nginx_upstreams`` answer becomes ``nginx_servers`` with a copier
``_migrations`` step that moves the recorded answer (the recipe in
docs/updating.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from avanzada import __version__
from avanzada.store import default_store
from avanzada.sweep import plain_copy
from avanzada.template_source import TEMPLATE_ENV
from helpers import REPO_ROOT, commit_all, copier_update, git, invoke

MIGRATION = """_migrations:
  - version: v{version}
    when: "{{{{ _stage == 'before' }}}}"
    command: >-
      {{{{ _copier_python }}}} -c "import pathlib;
      p = pathlib.Path('.copier-answers.yml');
      p.write_text(p.read_text().replace('nginx_upstreams:', 'nginx_servers:'))"
"""


def next_release(dest: Path, version: str) -> Path:
    """The working tree's template with a renamed file, a renamed answer and its migration."""
    root = plain_copy(REPO_ROOT, dest)
    package = next((root / "template" / "src").iterdir())
    (package / "log_config.py.jinja").rename(package / "logging_setup.py.jinja")
    for path in [root / "copier.yml", *(root / "template").rglob("*")]:
        if not path.is_file():
            continue
        text = path.read_text()
        new = text.replace("nginx_upstreams", "nginx_servers").replace(
            ".log_config import", ".logging_setup import"
        )
        if new != text:
            path.write_text(new)
    # Conditional file names read answers too.
    for path in sorted((root / "template").rglob("*nginx_upstreams*"), key=lambda p: -len(p.parts)):
        path.rename(path.with_name(path.name.replace("nginx_upstreams", "nginx_servers")))
    copier_yml = root / "copier.yml"
    text = copier_yml.read_text()
    migration = MIGRATION.format(version=version)
    copier_yml.write_text(text.replace("_exclude:", migration + "_exclude:"))
    return root


def test_a_release_that_renames_a_file_and_moves_an_answer(
    tmp_path: Path, avanzada_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "service"
    code, _, err = invoke(
        "new", project, "--defaults", "-f", "rooms", "-f", "nginx",
        "-d", "scale_out=redis", "-d", "workers=2", "-d", "nginx_upstreams=2",
    )  # fmt: skip
    assert code == 0, err
    log_config = project / "src" / "my_service" / "log_config.py"
    edited = log_config.read_text() + "\n\nOUR_FORMAT = 'short'\n"
    log_config.write_text(edited)
    commit_all(project, "generated, then our log format")

    twin = tmp_path / "twin"
    git(tmp_path, "clone", "-q", str(project), str(twin))
    next_root = next_release(tmp_path / "next", "9.0.0")

    # avanzada carrying the next template: the store snapshots it as
    # v{version}+1, the renamed file arrives and the edited old one is kept.
    monkeypatch.setenv(TEMPLATE_ENV, str(next_root))
    code, out, err = invoke("update", project)
    assert code == 0, out + err
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == (
        f"v{__version__}+1"
    )
    assert (project / "src" / "my_service" / "logging_setup.py").is_file()
    assert log_config.read_text() == edited, "the edited file under its old name is kept"
    assert "src/my_service/log_config.py" in out.split("Kept,", 1)[1]

    # The migration runs when an update crosses its release's version. Copier
    # reads `v0.3.0+1` as 0.3.0 (it drops the local label), so a migration
    # belongs to a release version, as the next one is here.
    default_store().add_release(next_root, "9.0.0")
    done = copier_update(twin, "--vcs-ref", "v9.0.0")
    assert done.returncode == 0, done.stderr
    answers = yaml.safe_load((twin / ".copier-answers.yml").read_text())
    assert answers["nginx_servers"] == 2 and "nginx_upstreams" not in answers
    upstreams = (twin / "deploy" / "nginx" / "upstreams.conf").read_text()
    assert len(re.findall(r"(?m)^server ", upstreams)) == 2, "the moved answer kept its value"
