"""The open-file limit is raised at startup: a process started with 1024 holds 2,000 connections."""

import json
import resource
import socket
from pathlib import Path

import httpx
import pytest

from harness import API_HEADERS, metric_value, run_server

CONNECTIONS = 2000
"""Well past the 1,020 or so sockets a soft limit of 1024 leaves for connections."""


def _hold(base_url: str, count: int) -> list[socket.socket]:
    """``count`` connections, each having had one keep-alive request answered with 200."""
    host, port = base_url.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        held.append(sock)
        sock.sendall(request)
    for sock in held:
        status_line = sock.makefile("rb").readline()
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
    return held


def test_a_service_started_with_1024_open_files_raises_its_limit_and_holds_2000_connections(
    tmp_path: Path, dependency_env: dict[str, str]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CONNECTIONS + 200:
        pytest.skip(f"the hard open-file limit here is {hard}, below {CONNECTIONS + 200}")
    # This process opens as many sockets as the server accepts.
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with run_server(dependency_env, tmp_path, open_files=(1024, hard)) as server:
            raised = [
                record
                for record in map(json.loads, server.log_lines())
                if record.get("message") == "raised the open-file limit"
            ]
            assert len(raised) == 1, server.output()
            assert raised[0]["soft_was"] == 1024
            limit = metric_value(server.base_url, "service_process_max_fds")
            assert limit == raised[0]["soft"] >= CONNECTIONS + 200
            held = _hold(server.base_url, CONNECTIONS)
            try:
                response = httpx.get(f"{server.base_url}/metrics", headers=API_HEADERS)
                assert response.status_code == 200
                assert metric_value(server.base_url, "service_process_open_fds") > CONNECTIONS
            finally:
                for sock in held:
                    sock.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
