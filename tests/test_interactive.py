"""The real prompt, driven through a pseudo-terminal as a person would."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest
import yaml
from helpers import avanzada_bin

DOWN = "\x1b[B"
CLEAR_LINE = "\x15"  # Ctrl-U: prompt_toolkit drops the pre-filled default
SHOW_CURSOR = "\x1b[?25h"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_new_prompts_and_picks_features(tmp_path: Path, avanzada_home: Path) -> None:
    dest = tmp_path / "chat-hub"
    env = {**os.environ, "TERM": "xterm", "AVANZADA_HOME": str(avanzada_home)}
    child = pexpect.spawn(
        avanzada_bin(),
        ["new", str(dest)],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 140),
    )
    transcript = tmp_path / "transcript.log"
    child.logfile_read = transcript.open("w")

    def drawn() -> None:
        # prompt_toolkit hides the cursor while it draws and shows it when done:
        # typing before then can be lost, so wait for that, not for a while.
        child.expect_exact(SHOW_CURSOR)

    def answer(prompt: str, keys: str) -> None:
        child.expect(prompt)
        drawn()
        child.send(keys)

    try:
        answer("Human name", CLEAR_LINE + "Chat Hub\r")
        answer("Distribution and folder name", "\r")
        answer("Python import name", "\r")
        answer("One-line description", "\r")
        answer("Author name", "\r")
        answer("Author email", CLEAR_LINE + "not-an-email\r")
        child.expect("is not an email address")  # refused at the prompt, asked again
        drawn()
        child.send(CLEAR_LINE + "ana@example.com\r")
        answer("Lowest Python version", "\r")
        # The cursor starts on "WebSocket rooms"; untick the cache, tick Postgres.
        answer("Features of the service", DOWN * 3 + " " + DOWN + " \r")
        answer("How rooms, SSE history and the queue are shared", "\r")  # in memory
        answer("Uvicorn worker processes", CLEAR_LINE + "3\r")
        child.expect("cannot share in-memory")  # the conflict is explained ...
        drawn()
        child.send(CLEAR_LINE + "1\r")  # ... and the question asked again
        answer("Batch room broadcasts", "y\r")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.logfile_read.close()
    child.close()
    assert child.exitstatus == 0, transcript.read_text()

    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "Chat Hub"
    assert answers["package_name"] == "chat_hub"
    assert answers["author_email"] == "ana@example.com"
    assert answers["features"] == ["rooms", "sse", "queue", "postgres"]
    assert answers["scale_out"] == "memory"
    assert answers["workers"] == 1
    assert answers["rooms_batching"] is True
    assert "cache_backend" not in answers  # its feature is off, so it was never asked
    assert (dest / "src" / "chat_hub" / "app.py").is_file()
    assert (dest / "src" / "chat_hub" / "db").is_dir()
