"""Tracing: server CPU per delivered room message and SSE event, tracing on against off.

Renders the same service twice from this template, with rooms and SSE in
memory: once without the ``tracing`` feature (``off``: no trace code at all),
once with it. The traced one runs twice, recording every trace (sampling 1.0)
and one in a hundred (0.01), exporting over OTLP/HTTP to a collector in this
process that takes every request (so export costs what it costs with a real
collector, minus the network). The three servers run at once, one process
each, and the rounds alternate between them, so load from elsewhere on the
machine falls on all three alike.

Measured, as the median of ``--rounds`` rounds:

1. rooms: server CPU (user + system, psutil) per delivered message, with
   ``--members`` members in one room and a member publishing (a member's
   publish starts a trace: a ``room publish`` and a ``room fan-out`` span);
2. SSE: server CPU per delivered event, ``--clients`` clients, events published
   with ``POST /sse/events`` (a server span, ``sse publish``, ``sse dispatch``).

Each is reported as a ratio to ``off``, of the medians and of the minimums
(on a shared machine a round can only be slowed down by others, so the
minimum is the steadier figure); the target is at most 1.10 with sampling
0.01. Fewer members or clients make the per-message cost weigh more:
the defaults (100) are a small room, not the flattering thousand.

Run:

    .venv/bin/python bench/tracing.py [--members 100] [--clients 100] [--rounds 11]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import rooms
import sse
from avanzada.checks import render
from loadkit import free_port, install, wait_listening

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"off": ("bench_plain", None), "on, 1.0": ("bench_traced", "1"),
            "on, 0.01": ("bench_traced", "0.01")}  # fmt: skip
"""Name: (package, sampling ratio)."""


class Sink:
    """An OTLP/HTTP collector that takes every export and counts requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(size)
                sink.requests += 1
                sink.bytes += size
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def prepare(work: Path) -> Path:
    """Render the service without and with tracing; install both in one venv."""
    projects = [
        render(
            {"project_name": "Bench Plain", "features": ["rooms", "sse"], "scale_out": "memory"},
            work / "plain",
            template=REPO,
        ),
        render(
            {
                "project_name": "Bench Traced",
                "features": ["rooms", "sse", "tracing"],
                "scale_out": "memory",
            },
            work / "traced",
            template=REPO,
        ),
    ]
    return install(projects[0], work / "venv", str(projects[1]))


def start(name: str, python: Path, work: Path, sink: Sink) -> rooms.Server:
    """One server of variant ``name``; it is ready when it returns."""
    package, ratio = VARIANTS[name]
    port = free_port()
    prefix = package.upper() + "_"
    env = {k: v for k, v in sse.clean_env().items() if not k.startswith(("BENCH_", "OTEL_"))}
    settings = {
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "AUTH_DISABLED": "true",
        "OPS_REQUIRE_KEY": "false",
        "WS_PING_INTERVAL": "0",
        "ROOMS_MAX_MEMBERS": "100000",
        "ROOMS_RATE_LIMIT": "0",
        "CLIENT_MAX_CONNECTIONS": "100000",
    }
    if ratio is not None:
        settings["TRACING_SAMPLE_RATIO"] = ratio
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    env.update({prefix + key: value for key, value in settings.items()})
    log = (work / f"{package}-{ratio}.log").open("ab")
    process = subprocess.Popen(
        [str(python), "-m", package], cwd=work, env=env, stdout=log, stderr=log
    )
    wait_listening(port, process)
    return rooms.Server(name, port, process)


@contextmanager
def servers(python: Path, work: Path, sink: Sink) -> Iterator[dict[str, rooms.Server]]:
    running: dict[str, rooms.Server] = {}
    try:
        for name in VARIANTS:
            running[name] = start(name, python, work, sink)
        yield running
    finally:
        for server in running.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100, help="room members")
    parser.add_argument("--clients", type=int, default=100, help="SSE clients")
    parser.add_argument("--messages", type=int, default=1000, help="messages and events per round")
    parser.add_argument("--size", type=int, default=100, help="payload characters")
    parser.add_argument("--rounds", type=int, default=11, help="rounds per server (median)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.members, args.clients, args.messages, args.rounds = 20, 20, 50, 1

    results: dict[str, dict[str, list[float]]] = {
        "rooms": {name: [] for name in VARIANTS},
        "sse": {name: [] for name in VARIANTS},
    }
    sink = Sink()
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        work = Path(tmp)
        python = prepare(work)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        with servers(python, work, sink) as running:
            order = list(running.items())
            for round_ in range(args.rounds):
                # Each round starts with another server: no one always runs first.
                shift = round_ % len(order)
                for name, server in order[shift:] + order[:shift]:
                    results["rooms"][name].append(
                        asyncio.run(
                            rooms.cpu_per_delivery(server, args.members, args.messages, args.size)
                        )
                    )
                    event_server = sse.Server(
                        name,
                        server.port,
                        server.process,
                        "/sse/stream",
                        "/sse/events",
                        sse._metric_clients,
                    )
                    results["sse"][name].append(
                        asyncio.run(
                            sse.cpu_per_delivery(
                                event_server, args.clients, args.messages, args.size
                            )
                        )
                    )
    print(
        f"\nServer CPU per delivered message/event (user+system, median of {args.rounds} "
        f"rounds), {args.messages} per round of {args.size} characters; "
        f"the collector took {sink.requests} exports ({sink.bytes / 1e6:.1f} MB):"
    )
    for kind, fan_out in (("rooms", args.members), ("sse", args.clients)):
        label = "members" if kind == "rooms" else "clients"
        print(f"\n  {kind}, {fan_out} {label}:")
        off, off_min = statistics.median(results[kind]["off"]), min(results[kind]["off"])
        for name, values in results[kind].items():
            value, least = statistics.median(values), min(values)
            each = ", ".join(f"{v:.1f}" for v in values)
            print(
                f"    {name:9s} median {value:6.2f} us (ratio to off {value / off:.2f}), "
                f"min {least:6.2f} us ({least / off_min:.2f})   rounds: {each}"
            )
        ratio = statistics.median(results[kind]["on, 0.01"]) / off
        print(f"    target: sampling 0.01 at most 1.10x off -> {ratio:.2f}")


if __name__ == "__main__":
    main()
