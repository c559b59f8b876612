"""The shipped browser client parses as a JavaScript module in every combination that has it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from avanzada.checks import render
from avanzada.combinations import supported
from helpers import REPO_ROOT

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (node --check)")

#: Rooms alone, SSE alone, both: the demo page's script differs in each.
COMBINATIONS = ("rooms", "sse", "default")


def node_check(source: str, tmp_path: Path, name: str) -> None:
    module = tmp_path / f"{name}.mjs"
    module.write_text(source)
    assert NODE is not None
    result = subprocess.run([NODE, "--check", str(module)], capture_output=True, text=True)
    assert result.returncode == 0, f"{name}:\n{result.stderr}"


@pytest.mark.parametrize("name", COMBINATIONS)
def test_the_client_module_and_the_demo_script_parse(name: str, tmp_path: Path) -> None:
    project = render(supported()[name], tmp_path / name, template=REPO_ROOT)
    static = project / "src" / "my_service" / "static"
    client = (static / "realtime.js").read_text()
    node_check(client, tmp_path, f"{name}-realtime")
    # Every export the declaration file promises exists in the module.
    declared = set(
        re.findall(
            r"^export (?:class|function) (\w+)", (static / "realtime.d.ts").read_text(), re.M
        )
    )
    exported = set(re.findall(r"^export (?:class|function) (\w+)", client, re.M))
    assert declared == exported
    page = (static / "demo.html").read_text()
    script = re.search(r'<script type="module">(.*?)</script>', page, re.S)
    assert script is not None
    # The page imports from the path the service serves; check it against the real file.
    source = script.group(1).replace(
        '"/static/realtime.js"', f'"{(static / "realtime.js").as_uri()}"'
    )
    node_check(source, tmp_path, f"{name}-demo")
    assert "{{" not in page and "{%" not in page
