"""Server-Sent Events: server CPU per delivered event, a reconnect storm, the library choice.

Renders an SSE service from this template (in memory, and with Redis
scale-out unless ``--no-redis``), installs it in its own venv (uv) and runs it
under real uvicorn, next to apps served by the same uvicorn from that venv:

- ``bench/sse_baseline.py``, the naive baseline shaped like the seed's SSE
  manager (an ``asyncio.Queue(maxsize=100)`` per client, the whole buffer
  queued again for every new client, heartbeat as a data event, no ids);
- ``bench/sse_libraries.py``, one generator streamed by FastAPI's own
  ``fastapi.sse`` and by sse-starlette.

The clients are asyncio protocols on raw sockets in this process; while
measuring CPU they only count ``data:`` lines, so their cost stays out of the
servers'. Events are published over HTTP (``POST``) with at most 4 in flight.
Measured in one run:

1. server CPU (user + system, psutil, the server process) per delivered event
   with 1,000 clients, and the service's ratio to the baseline (target: at most
   1.0 while doing ids and replay);
2. a reconnect storm: every client disconnects, events are published meanwhile,
   every client reconnects at once with its ``Last-Event-ID``; each client's
   events over both connections are checked against the published ids: lost,
   duplicated, out of order (target: zero);
3. the same CPU measure for ``fastapi.sse`` against sse-starlette.

Run:

    .venv/bin/python bench/sse.py [--clients 1000] [--events 200] [--no-redis] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from avanzada.checks import render
from loadkit import Tally, free_port, wait_listening

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
WINDOW = 4
"""Events published ahead of complete delivery (the seed's queue holds 100)."""
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


# Clients


@dataclass
class Received:
    """One event as a tracking client saw it."""

    id: str | None
    type: str | None
    data: str


class SseClient(asyncio.Protocol):
    """A ``GET`` of an event stream on a raw socket.

    Counting mode adds the ``data:`` lines it sees to ``tally`` without decoding
    anything. Tracking mode decodes the chunked body and keeps every event.
    """

    def __init__(self, path: str, tally: Tally, *, track: bool, last_event_id: str | None) -> None:
        self.path = path
        self.tally = tally
        self.track = track
        self.last_event_id = last_event_id
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events: list[Received] = []
        self._head = b""
        self._tail = b""
        self._raw = b""
        self._chunk_left = 0
        self._text = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        extra = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if self.head.done() and self.head.exception() is not None:
            return
        if not self.head.done():
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, data = self._head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                self.head.set_exception(RuntimeError(f"{status}: {data[:300]!r}"))
                return
            self.head.set_result(None)
        if self.track:
            self._parse(self._dechunk(data))
        else:
            # Chunk-size lines cannot contain "data:"; keep 4 bytes for a split one.
            buf = self._tail + data
            self.tally.add(buf.count(b"data:"))
            self._tail = buf[-4:]

    def _dechunk(self, data: bytes) -> str:
        self._raw += data
        out = []
        while self._raw:
            if self._chunk_left == 0:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                line, self._raw = self._raw[:end], self._raw[end + 2 :]
                if line:
                    self._chunk_left = int(line.split(b";")[0], 16)
                continue
            piece = self._raw[: self._chunk_left]
            out.append(piece)
            self._raw = self._raw[len(piece) :]
            self._chunk_left -= len(piece)
        return b"".join(out).decode()

    def _parse(self, text: str) -> None:
        self._text += text.replace("\r\n", "\n")
        *blocks, self._text = self._text.split("\n\n")
        count = 0
        for block in blocks:
            event_id = event_type = None
            data = []
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "id":
                    event_id = value
                elif name == "event":
                    event_type = value
            if data:
                self.events.append(Received(event_id, event_type, "\n".join(data)))
                count += 1
        if count:
            self.tally.add(count)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ConnectionError("closed before the response"))
        if not self.closed.done():
            self.closed.set_result(None)

    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id]
        return ids[-1] if ids else None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_client(
    port: int, path: str, tally: Tally, *, track: bool = False, last_event_id: str | None = None
) -> SseClient:
    loop = asyncio.get_running_loop()
    client = SseClient(path, tally, track=track, last_event_id=last_event_id)
    await loop.create_connection(lambda: client, "127.0.0.1", port)
    await asyncio.wait_for(client.head, 60)
    return client


async def open_clients(
    port: int, path: str, count: int, tally: Tally, *, track: bool = False
) -> list[SseClient]:
    clients: list[SseClient] = []
    for start in range(0, count, 100):
        batch = range(start, min(start + 100, count))
        clients += await asyncio.gather(
            *(open_client(port, path, tally, track=track) for _ in batch)
        )
    return clients


# Servers


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    stream_path: str
    publish_path: str
    clients: Callable[[httpx.Client], int]
    redis_prefix: str | None = None
    published_ids: list[str] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _metric_clients(http: httpx.Client) -> int:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("sse_clients "):
            return int(float(line.split()[1]))
    raise RuntimeError("sse_clients not in /metrics")


def _json_clients(http: httpx.Client) -> int:
    count: int = http.get("/clients").json()["clients"]
    return count


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def start_service(python: Path, work: Path, package: str) -> Server:
    port = free_port()
    prefix = package.upper() + "_"
    env = {k: v for k, v in clean_env().items() if not k.startswith(prefix)}
    # Authorization is not what this measures (bench/auth.py does): off, so the
    # clients need no tokens.
    env.update(
        {
            f"{prefix}PORT": str(port),
            f"{prefix}LOG_LEVEL": "warning",
            f"{prefix}AUTH_DISABLED": "true",
        }
    )
    redis_prefix = None
    if package.endswith("_redis"):
        redis_prefix = f"bench-sse-{uuid.uuid4().hex[:8]}"
        env.update({f"{prefix}REDIS_URL": REDIS_URL, f"{prefix}SSE_REDIS_PREFIX": redis_prefix})
    process = subprocess.Popen([str(python), "-m", package], cwd=work, env=env)
    wait_listening(port, process)
    name = "service (redis)" if redis_prefix else "service"
    return Server(name, port, process, "/sse/stream", "/sse/events", _metric_clients, redis_prefix)


def start_app(python: Path, work: Path, module: str, name: str, stream_path: str) -> Server:
    port = free_port()
    # A copy in the work directory: bench/ itself holds scripts named like stdlib modules.
    shutil.copy(BENCH / f"{module}.py", work / f"{module}.py")
    command = [
        str(python), "-m", "uvicorn", f"{module}:app", "--app-dir", str(work),
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=work, env=clean_env())
    wait_listening(port, process)
    publish_path = "/publish" if module == "sse_libraries" else "/sse/events"
    return Server(name, port, process, stream_path, publish_path, _json_clients)


def wait_clients(server: Server, http: httpx.Client, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := server.clients(http)) != count:
        if time.monotonic() > deadline:
            sys.exit(f"{server.name}: {seen} clients registered, expected {count}")
        time.sleep(0.2)


# Measurements


def payload(n: int, size: int) -> dict[str, object]:
    return {"type": "tick", "data": {"n": n, "text": "x" * size}}


async def publish_all(
    server: Server,
    http: httpx.AsyncClient,
    tally: Tally,
    first: int,
    count: int,
    clients: int,
    size: int,
    *,
    strict: bool = True,
) -> None:
    """Publish events ``first .. first+count-1``, at most WINDOW ahead of delivery to
    ``clients`` clients (no waiting when 0). A stall ends the run when ``strict``,
    else publishing goes on without waiting (the baseline drops clients)."""
    base = tally.total
    waiting = clients > 0
    for i in range(count):
        if waiting and not await tally.reach(base + (i - WINDOW) * clients, 60 if strict else 5):
            if strict:
                sys.exit(f"{server.name}: deliveries stalled at {tally.total - base}")
            waiting = False
        response = await http.post(server.publish_path, json=payload(first + i, size))
        response.raise_for_status()
        event_id = response.json().get("id")
        if event_id:
            server.published_ids.append(event_id)


async def cpu_per_delivery(server: Server, clients: int, events: int, size: int) -> float:
    """Server CPU microseconds per delivered event."""
    tally = Tally()
    readers = await open_clients(server.port, server.stream_path, clients, tally)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
        await asyncio.to_thread(wait_clients, server, http, clients)
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        before = server.cpu_seconds()
        await publish_all(server, http, tally, 0, events, clients, size)
        if not await tally.reach(events * clients, 60):
            sys.exit(f"{server.name}: deliveries stalled at {tally.total}")
        used = server.cpu_seconds() - before
    for reader in readers:
        reader.close()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
        await asyncio.to_thread(wait_clients, server, http, 0)
    return used / (events * clients) * 1e6


@dataclass
class Storm:
    """Outcome of a reconnect storm, over every client."""

    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    resyncs: int = 0
    replay_seconds: float = 0.0
    cpu_seconds: float = 0.0


def _keys(server: Server, events: list[Received]) -> list[str]:
    """What identifies an event: its id, or (the baseline has none) its ``n``."""
    if server.name.startswith("service"):
        return [e.id or "" for e in events if e.type != "resync"]
    return [str(json.loads(e.data)["data"]["n"]) for e in events if "data" in json.loads(e.data)]


async def reconnect_storm(
    server: Server, clients: int, before: int, away: int, after: int, size: int
) -> Storm:
    """Receive ``before`` events, all disconnect, ``away`` are published, all reconnect
    at once with their last ids, then ``after`` more live events."""
    base = f"http://127.0.0.1:{server.port}"
    tally = Tally()
    first = await open_clients(server.port, server.stream_path, clients, tally, track=True)
    with httpx.Client(base_url=base) as http:
        await asyncio.to_thread(wait_clients, server, http, clients)
    server.published_ids.clear()
    async with httpx.AsyncClient(base_url=base) as http:
        await publish_all(server, http, tally, 0, before, clients, size, strict=False)
        await tally.reach(before * clients, 10)
        for reader in first:
            reader.close()
        await asyncio.gather(*(reader.closed for reader in first))
        if server.name.startswith("service"):
            with httpx.Client(base_url=base) as sync_http:
                await asyncio.to_thread(wait_clients, server, sync_http, 0)
        else:
            await asyncio.sleep(1)
        await publish_all(server, http, tally, before, away, 0, size)

        cpu_before = server.cpu_seconds()
        started = time.monotonic()
        second_tally = Tally()
        second = await asyncio.gather(
            *(
                open_client(
                    server.port, server.stream_path, second_tally, track=True,
                    last_event_id=reader.last_id(),
                )
                for reader in first
            )
        )  # fmt: skip
        # Replay done when every client has the `away` events (or gave up after 10 s).
        await second_tally.reach(away * clients, 10)
        replay_seconds = time.monotonic() - started
        cpu = server.cpu_seconds() - cpu_before
        # Live events after the storm, on the second connections.
        target = second_tally.total + after * clients
        await publish_all(
            server, http, second_tally, before + away, after, clients, size, strict=False
        )
        await second_tally.reach(target, 10)
    await asyncio.sleep(0.3)
    storm = Storm(replay_seconds=replay_seconds, cpu_seconds=cpu)
    expected = (
        server.published_ids
        if server.name.startswith("service")
        else [str(n) for n in range(before + away + after)]
    )
    for one, two in zip(first, second, strict=True):
        two.close()
        keys = _keys(server, one.events) + _keys(server, two.events)
        storm.expected += len(expected)
        storm.received += len(keys)
        storm.lost += len(set(expected) - set(keys))
        storm.duplicates += len(keys) - len(set(keys))
        complete = len(keys) == len(expected) and set(keys) == set(expected)
        storm.out_of_order += int(complete and keys != expected)
        storm.resyncs += sum(1 for e in one.events + two.events if e.type == "resync")
    return storm


# Setup


def prepare(work: Path, redis: bool) -> tuple[Path, list[str]]:
    """Render the SSE services and install them (and the library apps' needs) in one venv."""
    projects = [
        render(
            {"project_name": "Bench SSE", "features": ["sse"], "scale_out": "memory"},
            work / "service",
            template=REPO,
        )
    ]
    packages = ["bench_sse"]
    if redis:
        projects.append(
            render(
                {"project_name": "Bench SSE Redis", "features": ["sse"], "scale_out": "redis"},
                work / "service-redis",
                template=REPO,
            )
        )
        packages.append("bench_sse_redis")
    from uv import find_uv_bin

    uv = str(find_uv_bin())
    env = clean_env()
    env["UV_PYTHON_DOWNLOADS"] = "never"
    venv = work / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        # sse-starlette for the library comparison (the service no longer uses it).
        [uv, "pip", "install", "-q", "--python", str(python), *map(str, projects), "sse-starlette"],
        env=env,
        check=True,
    )
    return python, packages


def redis_cleanup(server: Server) -> None:
    if server.redis_prefix is None:
        return
    import redis as redis_lib

    client = redis_lib.Redis.from_url(REDIS_URL)
    client.delete(f"{server.redis_prefix}:stream", f"{server.redis_prefix}:epoch")
    client.close()


def versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m;"
        "print(', '.join(f'{p} {m.version(p)}' for p in "
        "('fastapi', 'starlette', 'sse-starlette', 'uvicorn', 'uvloop', 'httptools')))"
    )
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--size", type=int, default=100, help="payload characters per event")
    parser.add_argument(
        "--storm", type=int, nargs=3, default=[20, 100, 20], metavar=("BEFORE", "AWAY", "AFTER")
    )
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis-backed service")
    parser.add_argument(
        "--no-libraries", action="store_true", help="skip fastapi.sse vs sse-starlette"
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.events, args.storm = 200, 40, [10, 30, 10]

    cpu: dict[str, float] = {}
    storms: dict[str, Storm] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        work = Path(tmp)
        python, packages = prepare(work, redis=not args.no_redis)
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {versions(python)}"
        )
        kinds = [(p, "service", "") for p in packages]
        kinds.append(("sse_baseline", "baseline", "/sse/stream"))
        if not args.no_libraries:
            kinds += [
                ("sse_libraries", "fastapi.sse", "/fastapi"),
                ("sse_libraries", "sse-starlette", "/starlette"),
                ("sse_libraries", "sse-starlette bytes", "/starlette-bytes"),
            ]

        def start(module: str, name: str, path: str) -> Server:
            if name == "service":
                return start_service(python, work, module)
            return start_app(python, work, module, name, path)

        for kind in kinds:
            # A fresh server per measurement: no history or buffer from the one before.
            server = start(*kind)
            try:
                cpu[server.name] = asyncio.run(
                    cpu_per_delivery(server, args.clients, args.events, args.size)
                )
                print(f"  {server.name}: {cpu[server.name]:.2f} us per delivered event", flush=True)
            finally:
                server.stop()
                redis_cleanup(server)
            if kind[1] not in ("service", "baseline"):
                continue
            server = start(*kind)
            try:
                storms[server.name] = asyncio.run(
                    reconnect_storm(server, args.clients, *args.storm, args.size)
                )
            finally:
                server.stop()
                redis_cleanup(server)

    print(
        f"\nServer CPU per delivered event, {args.clients} clients, {args.events} events "
        f"of {args.size} characters (user+system of the server process):"
    )
    for name, value in cpu.items():
        print(f"  {name:20s} {value:7.2f} us   ratio to baseline {value / cpu['baseline']:.2f}")
    print(f"  target: service at most 1.00x baseline -> {cpu['service'] / cpu['baseline']:.2f}")
    if "service (redis)" in cpu:
        print(f"          service (redis) -> {cpu['service (redis)'] / cpu['baseline']:.2f}")
    if "fastapi.sse" in cpu:
        print(
            f"  fastapi.sse / sse-starlette (same generator, ServerSentEvent objects): "
            f"{cpu['fastapi.sse'] / cpu['sse-starlette']:.2f}"
        )
    before, away, after = args.storm
    print(
        f"\nReconnect storm, {args.clients} clients: {before} events, all disconnect, {away} "
        f"published meanwhile, all reconnect at once with their last id, {after} more live:"
    )
    for name, storm in storms.items():
        print(
            f"  {name:16s} expected {storm.expected}, received {storm.received}, "
            f"lost {storm.lost}, "
            f"duplicates {storm.duplicates}, out of order {storm.out_of_order} clients, "
            f"resyncs {storm.resyncs}; reconnect + replay {storm.replay_seconds:.2f} s, "
            f"server CPU {storm.cpu_seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
