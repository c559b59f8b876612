"""Helpers the benchmark scripts share: ports, waiting for a server, counting deliveries."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install(project: Path, venv: Path, *extra: str) -> Path:
    """Create a venv at ``venv``, install ``project`` and ``extra`` in it; return its python."""
    from uv import find_uv_bin

    uv = str(find_uv_bin())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(project), *extra],
        env=env,
        check=True,
    )
    return python


LOAD_SETTINGS = {
    "LOG_LEVEL": "warning",
    "WS_PING_INTERVAL": "0",
    "ROOMS_MAX_MEMBERS": "100000",
    # The bucket is still checked for every message, it just never runs dry.
    "ROOMS_RATE_LIMIT": "1000000",
    "ROOMS_RATE_BURST": "1000000",
}
"""Service settings (without the prefix) for a load test of rooms: no pings, no caps in the way."""


def launch(
    name: str, command: list[str], work: Path, env: dict[str, str], port: int
) -> subprocess.Popen[bytes]:
    """Start a server, its output in ``work/<name>.log``; return once it listens on ``port``.

    Aborted benchmark clients make servers log tracebacks: they stay out of the report.
    """
    with (work / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=log)
    wait_listening(port, process)
    return process


def server_env(prefix: str) -> dict[str, str]:
    """This process's environment for a server: none of its ``prefix`` settings, no venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    for key in ("PROMETHEUS_MULTIPROC_DIR", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(key, None)
    return env


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Return once something accepts on ``port``; exit the benchmark if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


@dataclass
class Tally:
    """Deliveries counted by a group of clients; wakes a waiter at a target."""

    total: int = 0
    target: int = 0
    waiter: asyncio.Future[None] | None = None

    def add(self, count: int) -> None:
        self.total += count
        if self.waiter is not None and self.total >= self.target and not self.waiter.done():
            self.waiter.set_result(None)

    async def reach(self, target: int, timeout: float) -> bool:
        """Wait until ``total >= target``; False on timeout."""
        if self.total >= target:
            return True
        self.target = target
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            return False
        return True
