"""Authorization: what checking API keys and tokens costs the rendered service.

Renders the default project (rooms, SSE, queue, cache; in memory), installs it
in its own venv (uv) and runs it twice side by side under uvicorn (uvloop):

- auth on: an API key and an HS256 JWT secret; every client presents a token
  of its own (a different subject each), the way a browser does: as a
  WebSocket subprotocol (``bearer``, ``bearer.<token>``) and as
  ``?access_token=`` on the event stream;
- auth off: ``<PKG>_AUTH_DISABLED=true``, the development switch (no check
  at all), with the same clients sending the same bytes.

Rounds alternate between the two servers (the order flips each round) and the
medians are reported. Server CPU is user + system time of the server process
(psutil). Measured in one run:

1. server CPU per delivered room message: members in one room, each with a
   token granting join and publish, one of them publishing (at most 4 messages
   in flight); ratio on/off, target at most 1.05;
2. server CPU per delivered SSE event: streams, each with a token whose
   ``subscribe`` grant is a selector list (so each event is checked against it
   for each stream), events published over HTTP with the API key; ratio
   on/off, target at most 1.05;
3. WebSocket handshakes per second, several client processes each running
   concurrent connect / handshake / drop loops: with a verified token (HS256,
   grant and per-subject connection count) against none; ratio on/off, target
   at least 0.8; and server CPU per handshake.

Clients are asyncio protocols on raw sockets that count frames without
decoding them (``bench/rooms.py``, ``bench/sse.py``). After each server's last
round the script checks ``auth_denied_total`` is zero: every token was accepted.

Run:

    .venv/bin/python bench/auth.py [--members 200] [--messages 1000] [--streams 200]
        [--events 1000] [--handshake-seconds 3] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path

import httpx
import psutil
from avanzada.checks import render
from loadkit import LOAD_SETTINGS, Tally, free_port, launch, server_env
from rooms import Member, fan_out_cpu
from sse import open_client

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bench_auth"
PREFIX = PACKAGE.upper() + "_"
API_KEY = "bench-api-key-" + "k" * 32
JWT_SECRET = "bench-jwt-secret-" + "s" * 40
ROOM = "bench.lobby"
SSE_GRANT = ["bench.tick", "bench.other", "audit.*"]
"""A selector list (not ``*``): every event is checked against it for every stream."""


# Tokens: HS256 JWTs made with the standard library, exactly what PyJWT verifies.


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(grants: dict[str, list[str]], ttl: int = 3600) -> str:
    """A token for a new subject with ``grants``, signed with the bench secret."""
    now = int(time.time())
    claims = {
        "sub": f"user-{uuid.uuid4().hex[:12]}",
        "iat": now,
        "exp": now + ttl,
        "grants": grants,
    }
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(JWT_SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{_b64(signature.digest())}"


def protocols(token: str) -> str:
    """The ``Sec-WebSocket-Protocol`` value a browser sends for ``token``."""
    return f"bearer, bearer.{token}"


# Clients


@dataclass
class TokenMember(Member):
    """bench/rooms.py's counting member, offering its token as a subprotocol."""

    token: str = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocols(self.token)}"
                "\r\n\r\n"
            ).encode()
        )


async def open_members(port: int, count: int, tally: Tally) -> list[TokenMember]:
    loop = asyncio.get_running_loop()
    members: list[TokenMember] = []
    for start in range(0, count, 100):

        async def one() -> TokenMember:
            token = mint({"join": [ROOM], "publish": [ROOM]})
            member = TokenMember(f"/ws/{ROOM}", tally, token=token)
            await loop.create_connection(lambda: member, "127.0.0.1", port)
            await asyncio.wait_for(member.handshake, 30)
            return member

        members += await asyncio.gather(*(one() for _ in range(start, min(start + 100, count))))
    return members


# Servers


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    rounds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def metric(self, name: str) -> float:
        """The sum of every sample of ``name`` in /metrics."""
        text = httpx.get(
            f"{self.base_url}/metrics", headers={"X-API-Key": API_KEY}, timeout=10
        ).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + " ", name + "{"))
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, python: Path, work: Path, *, auth: bool) -> Server:
    port = free_port()
    env = server_env(PREFIX)
    settings = {**LOAD_SETTINGS, "PORT": str(port), "API_KEYS": API_KEY, "JWT_SECRET": JWT_SECRET}
    if not auth:
        settings["AUTH_DISABLED"] = "true"
    env.update({PREFIX + key: value for key, value in settings.items()})
    return Server(name, port, launch(name, [str(python), "-m", PACKAGE], work, env, port))


def wait_metric(server: Server, name: str, value: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := server.metric(name)) != value:
        if time.monotonic() > deadline:
            sys.exit(f"{server.name}: {name} is {seen}, expected {value}")
        time.sleep(0.1)


# Measurements


async def room_cpu(server: Server, members: int, messages: int, size: int) -> float:
    """Server CPU microseconds per delivered room message."""
    tally = Tally()
    clients = await open_members(server.port, members, tally)
    return await fan_out_cpu(server, list(clients), tally, messages, size)


async def sse_cpu(server: Server, streams: int, events: int, size: int) -> float:
    """Server CPU microseconds per delivered event."""
    tally = Tally()
    readers = []
    for start_at in range(0, streams, 100):
        batch = range(start_at, min(start_at + 100, streams))
        paths = [f"/sse/stream?access_token={mint({'subscribe': SSE_GRANT})}" for _ in batch]
        readers += await asyncio.gather(*(open_client(server.port, p, tally) for p in paths))
    await asyncio.to_thread(wait_metric, server, "sse_clients", streams)
    await asyncio.sleep(0.5)
    headers = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
        before = server.cpu_seconds()
        for n in range(events):
            if not await tally.reach((n - 4) * streams, 60):
                sys.exit(f"{server.name}: SSE deliveries stalled at {tally.total}")
            body = {"type": "bench.tick", "data": {"n": n, "text": "x" * size}}
            (await http.post("/sse/events", json=body)).raise_for_status()
        if not await tally.reach(events * streams, 60):
            sys.exit(f"{server.name}: SSE deliveries stalled at {tally.total}")
        used = server.cpu_seconds() - before
    for reader in readers:
        reader.close()
    await asyncio.to_thread(wait_metric, server, "sse_clients", 0)
    return used / (events * streams) * 1e6


async def _handshake(port: int, token: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/{ROOM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocols(token)}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()
    if not head.startswith(b"HTTP/1.1 101") or b"bearer\r\n" not in head.lower():
        raise RuntimeError(head.decode(errors="replace"))


async def _handshake_loops(
    port: int, tokens: list[str], start_at: float, seconds: float
) -> tuple[int, int]:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    in_window = total = 0

    async def loop(token: str) -> None:
        nonlocal in_window, total
        while time.monotonic() < deadline:
            await _handshake(port, token)
            total += 1
            if time.monotonic() <= deadline:
                in_window += 1

    await asyncio.gather(*(loop(token) for token in tokens))
    return in_window, total


def handshake_process(
    port: int, tokens: list[str], start_at: float, seconds: float, results: Queue[tuple[int, int]]
) -> None:
    """One client process: ``len(tokens)`` connections at a time, each with its own token."""
    try:
        import uvloop

        results.put(uvloop.run(_handshake_loops(port, tokens, start_at, seconds)))
    except ImportError:
        results.put(asyncio.run(_handshake_loops(port, tokens, start_at, seconds)))


def handshakes(
    server: Server, processes: int, concurrency: int, seconds: float
) -> tuple[float, float]:
    """Handshakes per second, and server CPU microseconds per handshake."""
    # fork: the children start at once (no re-import of this script); nothing runs
    # in this process between the measurements that a fork could copy half-done.
    context = multiprocessing.get_context("fork")
    results: Queue[tuple[int, int]] = context.Queue()
    start_at = time.time() + 0.5
    workers = [
        context.Process(
            target=handshake_process,
            args=(
                server.port,
                [mint({"join": [ROOM]}) for _ in range(concurrency)],
                start_at,
                seconds,
                results,
            ),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, start_at - time.time()))
    before = server.cpu_seconds()
    counts = [results.get(timeout=seconds + 60) for _ in workers]
    used = server.cpu_seconds() - before
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"{server.name}: a handshake client failed (exit {worker.exitcode})")
    in_window = sum(count[0] for count in counts)
    total = sum(count[1] for count in counts)
    return in_window / seconds, used / total * 1e6


# Setup and report


def prepare(work: Path) -> Path:
    """Render the default project and install it (uvicorn[standard]: uvloop) into a venv."""
    project = render({"project_name": "Bench Auth"}, work / "service", template=REPO)
    from uv import find_uv_bin

    uv = str(find_uv_bin())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    venv = work / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(project)], env=env, check=True
    )
    return python


def line(label: str, on: list[float], off: list[float], unit: str, target: str) -> str:
    """Medians and their ratio, then each round's values and ratio (the machine is shared)."""
    ratio = statistics.median(on) / statistics.median(off)
    rounds_on = ", ".join(f"{v:.1f}" for v in on)
    rounds_off = ", ".join(f"{v:.1f}" for v in off)
    per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(on, off, strict=True))
    return (
        f"  {label}: auth on {statistics.median(on):.2f} {unit}, auth off "
        f"{statistics.median(off):.2f} {unit} -> ratio {ratio:.3f} ({target})\n"
        f"      rounds on: {rounds_on}; off: {rounds_off}; ratios: {per_round}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100, help="payload characters")
    parser.add_argument("--handshake-seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=2, help="handshake client processes")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per process")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.members, args.messages, args.streams, args.events = 50, 40, 50, 40
        args.handshake_seconds, args.rounds = 1.0, 1

    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        work = Path(tmp)
        python = prepare(work)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        servers = {
            "on": start("auth-on", python, work, auth=True),
            "off": start("auth-off", python, work, auth=False),
        }
        kinds = ("room", "sse", "handshakes", "handshake_cpu")
        for server in servers.values():
            server.rounds = {kind: [] for kind in kinds}
        try:
            for round_number in range(args.rounds):
                order = ("on", "off") if round_number % 2 == 0 else ("off", "on")
                for name in order:
                    server = servers[name]
                    server.rounds["room"].append(
                        asyncio.run(room_cpu(server, args.members, args.messages, args.size))
                    )
                    server.rounds["sse"].append(
                        asyncio.run(sse_cpu(server, args.streams, args.events, args.size))
                    )
                    rate, cpu = handshakes(
                        server, args.processes, args.concurrency, args.handshake_seconds
                    )
                    server.rounds["handshakes"].append(rate)
                    server.rounds["handshake_cpu"].append(cpu)
                    print(
                        f"  round {round_number + 1} auth {name}: room "
                        f"{server.rounds['room'][-1]:.2f} us, sse {server.rounds['sse'][-1]:.2f} "
                        f"us, {rate:.0f} handshakes/s ({cpu:.0f} us each)",
                        flush=True,
                    )
            denied = servers["on"].metric("auth_denied_total")
            if denied:
                sys.exit(f"auth on: {denied:.0f} refusals; every client should have been accepted")
        finally:
            for server in servers.values():
                server.stop()

    on, off = servers["on"].rounds, servers["off"].rounds
    print(
        f"\nAuthorization cost (medians of {args.rounds} rounds; auth on: API key + HS256 "
        "tokens, one subject per client; auth off: AUTH_DISABLED=true):"
    )
    print(
        line(
            f"server CPU per delivered room message ({args.members} members, "
            f"{args.messages} messages)",
            on["room"], off["room"], "us", "target <= 1.05",
        )
    )  # fmt: skip
    print(
        line(
            f"server CPU per delivered SSE event ({args.streams} streams, {args.events} events)",
            on["sse"], off["sse"], "us", "target <= 1.05",
        )
    )  # fmt: skip
    print(
        line(
            f"WebSocket handshakes per second ({args.processes} client processes x "
            f"{args.concurrency} connections)",
            on["handshakes"], off["handshakes"], "/s", "target >= 0.8",
        )
    )  # fmt: skip
    print(
        line(
            "server CPU per handshake",
            on["handshake_cpu"], off["handshake_cpu"], "us", "lower is better",
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
