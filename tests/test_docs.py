"""The documentation says what copier.yml and the scripts say."""

from __future__ import annotations

import re

from avanzada.questions import load_questions
from helpers import REPO_ROOT


def test_features_table_matches_copier_yml() -> None:
    questions = load_questions(REPO_ROOT)
    rows = {}
    for line in (REPO_ROOT / "docs" / "features.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    assert list(rows) == questions.feature_values
    for value, (_, label, default, followups, _status) in rows.items():
        assert label == questions.label(value)
        assert (default == "on") == (value in questions.default_features)
        documented = re.findall(r"`(\w+)`", followups)
        assert documented == [q.name for q in questions.followups(value)]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0] for line in block] == ["scripts/demo", "scripts/test"]
    assert "exec scripts/test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_docs_index_links_exist() -> None:
    index = (REPO_ROOT / "docs" / "index.md").read_text()
    for target in re.findall(r"\]\(([^)]+\.md)\)", index):
        assert (REPO_ROOT / "docs" / target).resolve().is_file(), target
