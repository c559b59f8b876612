"""Connections at scale: memory per idle member, 10,000 members, fan-out CPU, faults under load.

Renders a rooms + SSE service (in memory) from this template, installs it in
its own venv (uv) with ``websockets`` and ``uvloop``, and starts it as a user
does (``python -m bench_scale``: uvloop, no compression, pings off so that
idle members are idle), next to two baselines served from the same venv:

- reference: a plain server on the ``websockets`` library (its own
  ``broadcast()``), the same rooms, the same loop;
- floor: an asyncio ``Protocol`` that does the handshake itself and writes one
  pre-framed byte string to every member's transport (no per-member state but
  the transport: the cheapest fan-out Python can do).

Authorization is on for the service, as a user runs it: every member joins
with its own JWT (``?access_token=``, subject ``m<n>``, join, publish and
subscribe grants), so the per-connection cost of auth is counted. The clients
run in ``--clients`` worker processes (light asyncio protocols that count
frames without decoding them and stamp their arrival), so the load generator
is not the bottleneck; server and client CPU are reported separately.
Measured in one run, all figures ratios or shares:

1. memory: RSS growth per idle WebSocket member at 1,000 and 10,000 members
   (rooms of 500), against the reference; per idle SSE stream;
2. fan-out CPU: server CPU per delivered message at 1,000 members, service
   against the floor and the reference (rounds alternate, medians);
3. scale: 10,000 members and 10,000 SSE streams in one service process; a
   broadcast to a 10,000-member room: share delivered, publish-to-receive
   latency percentiles, CPU per delivery against that at 1,000 members;
4. faults: 10,000 members of which 100 stop reading (the others' share, and
   RSS after the stuck ones are evicted and gone against before); a loop that
   opens and closes 2,000 connections for ``--churn-seconds`` (RSS, asyncio
   tasks and file descriptors of the server before and after).

``--breakdown`` instead runs the service under ``tracemalloc`` and prints the
Python memory each idle member adds, by source file and by object type.

Run:

    .venv/bin/python bench/scale.py [--quick] [--only memory,cpu,scale,faults] [--breakdown]
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
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import psutil
import uvloop
from avanzada.checks import render
from loadkit import LOAD_SETTINGS, Tally, free_port, install, launch, server_env
from rooms import REFERENCE_SERVER
from rooms import Member as CountingMember
from rooms import Server as RoomsServer

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bench_scale"
JWT_SECRET = "bench-scale-secret-" + "x" * 32
API_KEY = "bench-scale-key-" + "k" * 32
ROOM_SIZE = 500
HOT_ROOM = 500
"""Members of the room that holds the stuck members in the fault test."""
FDS = 65_536
"""Open-file limit of every process here (10,000 members and streams need over 20,000)."""

FLOOR_SERVER = textwrap.dedent(
    '''
    """The floor: handshake by hand, one pre-framed bytes object written to every transport."""
    import asyncio
    import base64
    import hashlib
    import json
    import sys
    from collections import defaultdict

    import uvloop

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    rooms = defaultdict(set)


    def text_frame(payload):
        size = len(payload)
        if size < 126:
            head = bytes((0x81, size))
        elif size < 65536:
            head = bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x81, 127)) + size.to_bytes(8, "big")
        return head + payload


    class Floor(asyncio.Protocol):
        room = None
        buffer = b""

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            buffer = self.buffer + data
            if self.room is None:
                head, sep, buffer = buffer.partition(b"\\r\\n\\r\\n")
                if not sep:
                    self.buffer = head
                    return
                lines = head.split(b"\\r\\n")
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in lines[1:]
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                    b"Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + b"\\r\\n\\r\\n"
                )
                self.room = lines[0].split(b" ")[1].split(b"?")[0].rsplit(b"/", 1)[-1].decode()
                rooms[self.room].add(self)
            while len(buffer) >= 6:
                opcode, length, pos = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
                if length == 126:
                    length, pos = int.from_bytes(buffer[2:4], "big"), 4
                elif length == 127:
                    length, pos = int.from_bytes(buffer[2:10], "big"), 10
                end = pos + 4 + length
                if len(buffer) < end:
                    break
                mask = buffer[pos : pos + 4] * (length // 4 + 1)
                payload = (
                    int.from_bytes(buffer[pos + 4 : end], "big")
                    ^ int.from_bytes(mask[:length], "big")
                ).to_bytes(length, "big")
                buffer = buffer[end:]
                if opcode == 0x1:
                    data = json.loads(payload)["data"]
                    frame = json.dumps({"type": "message", "room": self.room, "data": data})
                    message = text_frame(frame.encode())
                    for member in rooms[self.room]:
                        member.transport.write(message)
                elif opcode == 0x8:
                    self.transport.close()
            self.buffer = buffer

        def connection_lost(self, exc):
            if self.room is not None:
                rooms[self.room].discard(self)


    async def main(port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        async with server:
            await asyncio.Future()


    uvloop.run(main(int(sys.argv[1])))
    '''
)

BARE_APP = textwrap.dedent(
    '''
    """The least an ASGI app can do with a WebSocket: accept, then read until it goes."""


    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
    '''
)

PROBE = textwrap.dedent(
    '''
    """Run ``python -m <package>`` with a thread that reports on SIGUSR1.

    The report (JSON in $SCALE_PROBE): live asyncio tasks, GC-tracked objects
    by type, and a tracemalloc snapshot when tracing.
    """
    import asyncio
    import gc
    import json
    import os
    import runpy
    import signal
    import sys
    import threading
    import tracemalloc
    from collections import Counter


    def report():
        path = os.environ["SCALE_PROBE"]
        while True:
            signal.sigwait([signal.SIGUSR1])
            gc.collect()
            # From asyncio's own registry: the service freezes its startup objects
            # (gc.freeze), which gc.get_objects() then leaves out.
            tasks = sum(1 for task in list(asyncio.tasks._all_tasks) if not task.done())
            objects = Counter(type(o).__qualname__ for o in gc.get_objects())
            if tracemalloc.is_tracing():
                tracemalloc.take_snapshot().dump(path + ".snapshot")
            with open(path + ".tmp", "w") as out:
                json.dump({"tasks": tasks, "objects": objects}, out)
            os.replace(path + ".tmp", path)


    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    threading.Thread(target=report, daemon=True).start()
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    '''
)


def raise_fd_limit() -> None:
    """Allow ``FDS`` open files here and in every process started from here (root may)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, max(FDS, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def token(subject: str) -> str:
    grants = {"join": ["*"], "publish": ["*"], "subscribe": ["*"]}
    claims = {"sub": subject, "exp": int(time.time()) + 24 * 3600, "grants": grants}

    # HS256 by hand: the bench's own venv has no JWT library, and this is all it takes.
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signed = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    signature = hmac.new(JWT_SECRET.encode(), signed.encode(), hashlib.sha256).digest()
    return signed + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


# Clients (in worker processes)


class RoomClient(CountingMember):
    """A counting member that also stamps the arrival of every data frame."""

    def __init__(self, path: str, stuck: bool = False) -> None:
        super().__init__(path, Tally(), stuck=stuck)
        self.arrivals: list[float] = []

    def _count(self, data: bytes) -> None:
        before = self.frames
        super()._count(data)
        if self.frames > before:
            now = time.monotonic()
            self.arrivals.extend([now] * (self.frames - before))


class StreamClient(asyncio.Protocol):
    """A ``GET /sse/stream`` that counts ``data:`` lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.events = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            if data.startswith(b"HTTP/1.1 200"):
                self.opened.set_result(None)
            else:
                self.opened.set_exception(RuntimeError(data[:200].decode(errors="replace")))
        self.events += data.count(b"\ndata:")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the response"))


_SOURCES = {"worker": 0, "next": 0}


async def _connect(port: int, factory: Callable[[], asyncio.Protocol], small: bool) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    # Source addresses spread over 127.0.<worker>.2-251: one address has only
    # 28,000 ephemeral ports, and the runs before this one leave thousands in
    # TIME_WAIT.
    _SOURCES["next"] += 1
    sock.bind((f"127.0.{_SOURCES['worker'] + 1}.{2 + _SOURCES['next'] % 250}", 0))
    if small:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.create_connection(factory, sock=sock)


async def _open_all(
    clients: list[Any], port: int, paths: list[str], make: Callable[[str], Any], small: bool
) -> int:
    """Open a client per path, 100 at a time, each ready (handshake or response) within 60 s."""

    async def one(path: str) -> None:
        client = make(path)
        await _connect(port, lambda: client, small)
        ready = client.handshake if isinstance(client, RoomClient) else client.opened
        await asyncio.wait_for(ready, 60)
        clients.append(client)

    for start in range(0, len(paths), 100):
        await asyncio.gather(*(one(path) for path in paths[start : start + 100]))
    return len(clients)


class Worker:
    """The connections of one client process, in named groups; driven over a pipe."""

    def __init__(self) -> None:
        self.rooms: dict[str, list[RoomClient]] = {}
        self.streams: dict[str, list[StreamClient]] = {}

    async def open_rooms(self, group: str, port: int, paths: list[str], stuck: bool = False) -> int:
        clients = self.rooms.setdefault(group, [])
        return await _open_all(clients, port, paths, lambda path: RoomClient(path, stuck), stuck)

    async def open_streams(self, group: str, port: int, paths: list[str]) -> int:
        clients = self.streams.setdefault(group, [])
        return await _open_all(clients, port, paths, StreamClient, False)

    async def frames(self, group: str) -> int:
        return sum(client.frames for client in self.rooms.get(group, ()))

    async def events(self, group: str) -> int:
        return sum(client.events for client in self.streams.get(group, ()))

    async def reset(self, group: str) -> None:
        for client in self.rooms.get(group, ()):
            client.arrivals.clear()

    async def arrivals(self, group: str) -> list[list[float]]:
        return [client.arrivals for client in self.rooms.get(group, ())]

    async def send(self, group: str, text: str) -> float:
        self.rooms[group][0].send_text(text)
        return time.monotonic()

    async def close_codes(self, group: str) -> dict[int, int]:
        codes = Counter(
            client.closed.result() if client.closed.done() else 0
            for client in self.rooms.get(group, ())
        )
        return dict(codes)

    async def close(self, group: str) -> int:
        clients = [*self.rooms.pop(group, ()), *self.streams.pop(group, ())]
        for client in clients:
            if client.transport is not None:
                client.transport.abort()
        await asyncio.sleep(0.1)
        return len(clients)

    async def churn(self, port: int, paths: list[str], seconds: float) -> int:
        """Each path opens, completes the handshake and goes away, again and again."""
        deadline = time.monotonic() + seconds
        cycles = 0

        async def loop(path: str, n: int) -> None:
            nonlocal cycles
            while time.monotonic() < deadline:
                client = RoomClient(path)
                await _connect(port, lambda client=client: client, False)
                await asyncio.wait_for(client.handshake, 60)
                assert client.transport is not None
                if n % 2:
                    client.transport.abort()
                else:
                    # A clean close: close frame, then wait for the server's.
                    client.transport.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
                    await asyncio.wait_for(client.closed, 10)
                    client.transport.close()
                cycles += 1

        await asyncio.gather(*(loop(path, n) for n, path in enumerate(paths)))
        return cycles


def _worker_main(conn: Connection, index: int) -> None:
    raise_fd_limit()
    _SOURCES["worker"] = index

    async def serve() -> None:
        worker = Worker()
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, conn.recv)
            if command == "exit":
                return
            try:
                conn.send(("ok", await getattr(worker, command)(*args)))
            except Exception as error:
                conn.send(("error", f"{type(error).__name__}: {error}"))

    uvloop.run(serve())


class Clients:
    """``count`` client processes; a call runs on all of them at once."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.processes = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, index), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    def call(self, command: str, per_worker: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``command`` with its arguments to the first ``len(per_worker)`` workers."""
        pipes = self.pipes[: len(per_worker)]
        for pipe, args in zip(pipes, per_worker, strict=True):
            pipe.send((command, args))
        results = []
        for pipe in pipes:
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"client {command}: {value}")
            results.append(value)
        return results

    def all(self, command: str, *args: Any) -> list[Any]:
        return self.call(command, [args] * len(self))

    def one(self, command: str, *args: Any) -> Any:
        return self.call(command, [args])[0]

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            times = psutil.Process(process.pid).cpu_times()
            total += times.user + times.system
        return total

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("exit", ()))
        for process in self.processes:
            process.join(10)


def spread(items: list[str], workers: int) -> list[tuple[list[str]]]:
    return [(items[n::workers],) for n in range(workers)]


# Servers


@dataclass
class Server(RoomsServer):
    """A server process (``bench/rooms.py``'s), with the service's probe when it has one."""

    probe: Path | None = None

    def fds(self) -> int:
        return psutil.Process(self.process.pid).num_fds()

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on ``/metrics`` (the service only)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/metrics", headers={"X-API-Key": API_KEY}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in " {"
        )

    def report(self) -> dict[str, Any]:
        """The probe's report (service only): tasks, objects by type; snapshot beside it."""
        assert self.probe is not None
        self.probe.unlink(missing_ok=True)
        os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not self.probe.exists():
            if time.monotonic() > deadline:
                sys.exit(f"{self.name}: no probe report")
            time.sleep(0.05)
        return dict(json.loads(self.probe.read_text()))


def start(name: str, python: Path, work: Path, *, trace: bool = False, **settings: str) -> Server:
    port = free_port()
    env = server_env(PACKAGE.upper() + "_")
    probe = None
    if name == "service":
        probe = work / f"probe-{port}.json"
        env["SCALE_PROBE"] = str(probe)
        defaults = {
            **LOAD_SETTINGS,
            "PORT": str(port),
            "API_KEYS": API_KEY,
            "JWT_SECRET": JWT_SECRET,
        }
        env.update({f"{PACKAGE.upper()}_{k}": v for k, v in {**defaults, **settings}.items()})
        (work / "probe.py").write_text(PROBE)
        command = [str(python), *(["-X", "tracemalloc=1"] if trace else []), "probe.py", PACKAGE]
    elif name == "bare":
        (work / "bare_app.py").write_text(BARE_APP)
        command = [
            str(python), "-m", "uvicorn", "bare_app:app", "--port", str(port), "--loop", "uvloop",
            "--lifespan", "off", "--log-level", "warning", "--ws-ping-interval", "0",
            "--ws-per-message-deflate", "false",
        ]  # fmt: skip
    elif name == "reference":
        (work / "reference_server.py").write_text(REFERENCE_SERVER)
        command = [str(python), "reference_server.py", str(port)]
    else:
        (work / "floor_server.py").write_text(FLOOR_SERVER)
        command = [str(python), "floor_server.py", str(port)]
    return Server(name, port, launch(name, command, work, env, port), probe)


def member_paths(prefix: str, count: int, room_size: int, start: int = 0) -> list[str]:
    """Paths for ``count`` members in rooms of ``room_size``, each with its own token."""
    return [
        f"/ws/{prefix}{(start + n) // room_size}?access_token={token(f'{prefix}{start + n}')}"
        for n in range(count)
    ]


def stream_paths(count: int) -> list[str]:
    return [f"/sse/stream?access_token={token(f's{n}')}" for n in range(count)]


def settle(server: Server, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return server.rss()


# Measurements


def memory_per_member(server: Server, clients: Clients, stages: list[int]) -> dict[int, float]:
    """RSS growth per idle member (bytes) at each stage, from a warm baseline."""
    warm = spread(member_paths("warm", 100, ROOM_SIZE), len(clients))
    clients.call("open_rooms", [("warm", server.port, *args) for args in warm])
    baseline = settle(server)
    growth: dict[int, float] = {}
    opened = 0
    for stage in stages:
        paths = member_paths("idle", stage - opened, ROOM_SIZE, start=opened)
        idle = spread(paths, len(clients))
        clients.call("open_rooms", [("idle", server.port, *args) for args in idle])
        opened = stage
        growth[stage] = (settle(server) - baseline) / stage
    clients.all("close", "idle")
    clients.all("close", "warm")
    return growth


def memory_per_stream(server: Server, clients: Clients, count: int) -> float:
    warm = spread(stream_paths(50), len(clients))
    clients.call("open_streams", [("warm", server.port, *args) for args in warm])
    baseline = settle(server)
    idle = spread(stream_paths(count), len(clients))
    clients.call("open_streams", [("idle", server.port, *args) for args in idle])
    per_stream = (settle(server) - baseline) / count
    clients.all("close", "idle")
    clients.all("close", "warm")
    return per_stream


def publish_text(n: int, size: int) -> str:
    return json.dumps({"type": "message", "data": {"n": n, "text": "x" * size}})


@dataclass
class Broadcast:
    delivered: int
    expected: int
    server_cpu: float
    client_cpu: float
    latencies: list[float]

    @property
    def cpu_per_delivery(self) -> float:
        return self.server_cpu / self.delivered * 1e6


def broadcast(
    server: Server,
    clients: Clients,
    group: str,
    members: int,
    messages: int,
    *,
    window: int,
    size: int = 100,
    timeout: float = 60,
) -> Broadcast:
    """Publish ``messages`` from the group's first member, ``window`` ahead of delivery.

    ``window`` 0 publishes each message once the previous one reached every
    member: its publish-to-receive latency is then the broadcast's own.
    """
    clients.all("reset", group)
    start_frames = sum(clients.all("frames", group))
    sent_at: list[float] = []
    server_before, client_before = server.cpu_seconds(), clients.cpu_seconds()

    def delivered() -> int:
        return sum(clients.all("frames", group)) - start_frames

    def wait_for(target: int) -> bool:
        deadline = time.monotonic() + timeout
        while delivered() < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    for n in range(messages):
        if not wait_for((n - window) * members):
            break
        sent_at.append(clients.one("send", group, publish_text(n, size)))
    wait_for(messages * members)
    server_cpu = server.cpu_seconds() - server_before
    client_cpu = clients.cpu_seconds() - client_before
    latencies = [
        arrival - sent_at[k]
        for worker in clients.all("arrivals", group)
        for member in worker
        for k, arrival in enumerate(member[: len(sent_at)])
    ]
    return Broadcast(delivered(), messages * members, server_cpu, client_cpu, latencies)


def open_room(server: Server, clients: Clients, group: str, members: int, prefix: str) -> None:
    """``members`` in one room; the publisher (first member) in the first worker."""
    paths = member_paths(prefix, members, members)
    clients.call("open_rooms", [(group, server.port, paths[:1])])
    rest = spread(paths[1:], len(clients))
    clients.call("open_rooms", [(group, server.port, *args) for args in rest])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def prepare(work: Path, template: Path) -> Path:
    """Render the rooms + SSE service and install it (with the baselines' needs) in a venv."""
    project = render(
        {"project_name": "Bench Scale", "features": ["rooms", "sse"], "scale_out": "memory"},
        work / "service",
        template=template,
    )
    return install(project, work / "venv", "websockets", "uvloop")


def section_memory(args: argparse.Namespace, python: Path, work: Path, clients: Clients) -> None:
    stages = [args.members // 10, args.members]
    growth: dict[str, dict[int, float]] = {}
    for name in ("reference", "bare", "service"):
        server = start(name, python, work)
        try:
            growth[name] = memory_per_member(server, clients, stages)
        finally:
            server.stop()
    # A fresh process: the members' freed memory would otherwise hold the streams.
    server = start("service", python, work)
    try:
        per_stream = memory_per_stream(server, clients, args.streams)
    finally:
        server.stop()
    print(f"\nMemory: RSS growth per idle member (rooms of {ROOM_SIZE}), from a warm baseline:")
    for stage in stages:
        ref, bare, ours = (growth[name][stage] for name in ("reference", "bare", "service"))
        print(
            f"  {stage:6d} members: service {ours / 1024:5.1f} KB, reference (websockets) "
            f"{ref / 1024:5.1f} KB, ratio {ours / ref:.2f} (target at most 1.00); bare ASGI app "
            f"on uvicorn {bare / 1024:5.1f} KB (service / bare {ours / bare:.2f})"
        )
    print(
        f"  {args.streams:6d} SSE streams: {per_stream / 1024:5.1f} KB each (target at most 8 KB)"
    )


def section_cpu(args: argparse.Namespace, python: Path, work: Path, clients: Clients) -> None:
    names = ("floor", "reference", "service")
    servers = {name: start(name, python, work) for name in names}
    rounds: dict[str, list[float]] = {name: [] for name in names}
    client_cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name, server in servers.items():
            open_room(server, clients, f"cpu-{name}", args.cpu_members, "cpu")
        time.sleep(1)
        # Rounds alternate between the servers, so a burst of load from
        # elsewhere on the machine does not land on one of them only.
        for _ in range(args.rounds):
            for name, server in servers.items():
                result = broadcast(
                    server, clients, f"cpu-{name}", args.cpu_members, args.messages, window=4
                )
                if result.delivered != result.expected:
                    sys.exit(f"{name}: delivered {result.delivered} of {result.expected}")
                rounds[name].append(result.cpu_per_delivery)
                client_cpu[name].append(result.client_cpu / result.delivered * 1e6)
    finally:
        for server in servers.values():
            server.stop()
        for name in names:
            clients.all("close", f"cpu-{name}")
    cpu = {name: statistics.median(values) for name, values in rounds.items()}
    print(
        f"\nFan-out CPU per delivered message, {args.cpu_members} members in one room, "
        f"{args.messages} messages (median of {args.rounds} rounds):"
    )
    for name in names:
        each = ", ".join(f"{v:.2f}" for v in rounds[name])
        print(
            f"  {name:9s} server {cpu[name]:6.2f} us  ratio to floor {cpu[name] / cpu['floor']:.2f}"
            f"  to reference {cpu[name] / cpu['reference']:.2f}  "
            f"(clients {statistics.median(client_cpu[name]):.2f} us; rounds {each})"
        )
    print(f"  target: service at most 2.00x floor -> {cpu['service'] / cpu['floor']:.2f}")


def size_rounds(
    server: Server, clients: Clients, small: int, args: argparse.Namespace
) -> tuple[dict[int, list[float]], Broadcast]:
    """CPU per delivery in a room of ``small`` and one of ``args.members``, rounds alternating.

    Both rooms stay open (groups ``small`` and ``big``); messages go one at a
    time. Returns the rounds by room size and the last small-room result.
    """
    open_room(server, clients, "small", small, "small")
    open_room(server, clients, "big", args.members, "big")
    time.sleep(0.5)
    rounds: dict[int, list[float]] = {small: [], args.members: []}
    for _ in range(args.rounds):
        for group, size in (("small", small), ("big", args.members)):
            result = broadcast(server, clients, group, size, args.messages, window=0)
            rounds[size].append(result.cpu_per_delivery)
            if size == small:
                at_small = result
    return rounds, at_small


def section_scale(args: argparse.Namespace, python: Path, work: Path, clients: Clients) -> None:
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if args.members + args.streams + 100 > limit:
        # A hard limit this process may not raise (no CAP_SYS_RESOURCE) binds the server too.
        capped = limit - args.members - 100
        print(f"\n(the hard open-file limit is {limit}: {capped} SSE streams, not {args.streams})")
        args.streams = capped
    small = args.members // 10
    # The floor first: how the cheapest fan-out's cost grows with the room on this machine.
    floor = start("floor", python, work)
    try:
        floor_rounds, _ = size_rounds(floor, clients, small, args)
    finally:
        floor.stop()
        for group in ("small", "big"):
            clients.all("close", group)
    server = start("service", python, work)
    try:
        rounds, at_small = size_rounds(server, clients, small, args)
        clients.all("close", "small")
        # Then the streams join, and the big room gets its messages again.
        streams = spread(stream_paths(args.streams), len(clients))
        clients.call("open_streams", [("streams", server.port, *a) for a in streams])
        held_fds, held_rss = server.fds(), server.rss()
        time.sleep(0.5)
        at_big = broadcast(server, clients, "big", args.members, args.messages, window=0)
        # One SSE event to every stream, published over HTTP with the API key.
        before = sum(clients.all("events", "streams"))
        request = json.dumps({"type": "bench", "data": {"n": 1}})
        subprocess.run(
            ["curl", "-sf", "-o", "/dev/null", "-X", "POST", "-H", f"X-API-Key: {API_KEY}",
             "-H", "Content-Type: application/json", "-d", request,
             f"http://127.0.0.1:{server.port}/sse/events"],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while (events := sum(clients.all("events", "streams")) - before) < args.streams:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        server.stop()
        for group in ("small", "big", "streams"):
            clients.all("close", group)
    print(
        f"\nScale: one service process held {args.members} room members and {args.streams} "
        f"SSE streams ({held_fds} open files, RSS {held_rss / 2**20:.0f} MB); "
        f"one event reached {events} of {args.streams} streams"
    )
    for result, members, note in (
        (at_small, small, "members only"),
        (at_big, args.members, "with the streams open"),
    ):
        ms = [value * 1000 for value in result.latencies]
        print(
            f"  {members:6d}-member room ({note}), {args.messages} messages one at a time: "
            f"delivered {result.delivered / result.expected:.2%}, publish-to-receive ms p50 "
            f"{percentile(ms, 50):.1f} p99 {percentile(ms, 99):.1f} max {max(ms):.1f}; "
            f"server {result.cpu_per_delivery:.2f} us, clients "
            f"{result.client_cpu / result.delivered * 1e6:.2f} us per delivery"
        )
    cpu = {size: statistics.median(values) for size, values in rounds.items()}
    each = {size: ", ".join(f"{v:.1f}" for v in values) for size, values in rounds.items()}
    print(
        f"  server CPU per delivery, members only (median of {args.rounds} alternating rounds): "
        f"{small} members {cpu[small]:.2f} us ({each[small]}), {args.members} members "
        f"{cpu[args.members]:.2f} us ({each[args.members]}); ratio "
        f"{cpu[args.members] / cpu[small]:.2f} (target at most 1.30)"
    )
    floor_cpu = {size: statistics.median(values) for size, values in floor_rounds.items()}
    print(
        f"  the floor server on this machine: {floor_cpu[small]:.2f} us at {small}, "
        f"{floor_cpu[args.members]:.2f} us at {args.members}; ratio "
        f"{floor_cpu[args.members] / floor_cpu[small]:.2f}"
    )


def section_faults(args: argparse.Namespace, python: Path, work: Path, clients: Clients) -> None:
    # One room of HOT_ROOM members takes the stuck ones and the traffic; the other
    # members wait in rooms of ROOM_SIZE. A stuck member is evicted only once the
    # kernel's buffers (up to 4 MB on loopback), uvicorn's and its own queue (1 MiB)
    # are full, and sending that much to 10,000 members would take minutes.
    server = start("service", python, work)
    quiet = args.members - HOT_ROOM
    healthy = HOT_ROOM - args.stuck
    try:
        paths = spread(member_paths("quiet", quiet, ROOM_SIZE), len(clients))
        clients.call("open_rooms", [("quiet", server.port, *a) for a in paths])
        open_room(server, clients, "hot", healthy, "hot")
        stuck = spread(member_paths("hot", args.stuck, HOT_ROOM, start=healthy), len(clients))
        clients.call("open_rooms", [("stuck", server.port, *a, True) for a in stuck])
        before = settle(server)
        result = broadcast(
            server, clients, "hot", healthy, args.fault_messages, window=2,
            size=args.fault_size, timeout=30,
        )  # fmt: skip
        during = server.rss()
        # The stuck members are evicted (4008, or aborted when no close frame fits).
        time.sleep(args.fault_wait)
        evicted = server.metric("rooms_evictions_total")
        clients.all("close", "stuck")
        after = settle(server, 2.0)
        clients.all("close", "hot")
        clients.all("close", "quiet")
        # Churn: connections opened and closed in a loop.
        settle(server, 2.0)
        churn_before = (server.rss(), server.fds(), server.report()["tasks"])
        paths = member_paths("churn", args.churn, args.churn)
        cycles = sum(
            clients.call(
                "churn",
                [(server.port, *a, args.churn_seconds) for a in spread(paths, len(clients))],
            )
        )
        time.sleep(2.0)
        churn_after = (server.rss(), server.fds(), server.report()["tasks"])
    finally:
        server.stop()
    print(
        f"\nFaults: {args.members} members, {args.stuck} of which stop reading; their room of "
        f"{HOT_ROOM} gets {args.fault_messages} messages of {args.fault_size} characters:"
    )
    print(
        f"  healthy members got {result.delivered / result.expected:.2%}; stuck members "
        f"evicted: {evicted:.0f} of {args.stuck} (rooms_evictions_total)"
    )
    print(
        f"  RSS with the stuck members {before / 2**20:.0f} MB, right after the broadcasts "
        f"{during / 2**20:.0f} MB, once the stuck ones were evicted and gone "
        f"{after / 2**20:.0f} MB ({after / before - 1:+.1%}; target within 10%)"
    )
    print(
        f"  churn: {args.churn} connections opened and closed for {args.churn_seconds:.0f} s "
        f"({cycles} handshakes): RSS {churn_before[0] / 2**20:.1f} -> "
        f"{churn_after[0] / 2**20:.1f} MB, open files {churn_before[1]} -> {churn_after[1]}, "
        f"asyncio tasks {churn_before[2]} -> {churn_after[2]}"
    )


def section_breakdown(args: argparse.Namespace, python: Path, work: Path, clients: Clients) -> None:
    server = start("service", python, work, trace=True)
    count = args.breakdown_members
    streams = args.breakdown == "sse"
    opener = "open_streams" if streams else "open_rooms"
    paths = stream_paths if streams else (lambda n: member_paths("b", n, ROOM_SIZE))
    try:
        warm = spread(paths(100), len(clients))
        clients.call(opener, [("warm", server.port, *a) for a in warm])
        time.sleep(1)
        before_report = server.report()
        before = tracemalloc.Snapshot.load(str(server.probe) + ".snapshot")
        idle = spread(paths(count), len(clients))
        clients.call(opener, [("idle", server.port, *a) for a in idle])
        time.sleep(1)
        after_report = server.report()
        after = tracemalloc.Snapshot.load(str(server.probe) + ".snapshot")
    finally:
        server.stop()
        clients.all("close", "idle")
        clients.all("close", "warm")
    by_file: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        short = name.split("site-packages/")[-1].split("lib/python3.11/")[-1]
        by_file[short] += stat.size_diff
    total = sum(by_file.values())
    print(
        f"\nPython memory per idle member (tracemalloc, {count} members): {total / count:.0f} bytes"
    )
    for name, size in by_file.most_common(40):
        print(f"  {size / count:8.0f}  {name}")
    print("Largest allocation sites:")
    for stat in after.compare_to(before, "lineno")[:25]:
        frame = stat.traceback[0]
        short = frame.filename.split("site-packages/")[-1].split("lib/python3.11/")[-1]
        print(f"  {stat.size_diff / count:8.0f}  {short}:{frame.lineno}")
    print("GC-tracked objects per member, by type:")
    grown = Counter(after_report["objects"])
    grown.subtract(before_report["objects"])
    for name, number in grown.most_common(25):
        if number / count >= 0.5:
            print(f"  {number / count:6.2f}  {name}")
    print(
        f"asyncio tasks per member: {(after_report['tasks'] - before_report['tasks']) / count:.2f}"
    )


SECTIONS = {
    "memory": section_memory,
    "cpu": section_cpu,
    "scale": section_scale,
    "faults": section_faults,
    "breakdown": section_breakdown,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="memory,cpu,scale,faults", help="sections, comma-separated"
    )
    parser.add_argument(
        "--breakdown", choices=("rooms", "sse"), help="only the tracemalloc breakdown of one kind"
    )
    parser.add_argument("--template", type=Path, default=REPO, help="render from this checkout")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--cpu-members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stuck", type=int, default=100)
    parser.add_argument("--fault-messages", type=int, default=100)
    parser.add_argument("--fault-size", type=int, default=65_000)
    parser.add_argument("--fault-wait", type=float, default=8.0)
    parser.add_argument("--churn", type=int, default=2000)
    parser.add_argument("--churn-seconds", type=float, default=60.0)
    parser.add_argument("--breakdown-members", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.members, args.streams, args.cpu_members, args.stuck = 1000, 500, 300, 10
        args.messages, args.rounds, args.churn, args.churn_seconds = 10, 1, 200, 3.0
        args.breakdown_members = 500
    sections = ["breakdown"] if args.breakdown else args.only.split(",")
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        python = prepare(work, args.template)
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"{args.clients} client processes"
        )
        clients = Clients(args.clients)
        try:
            for name in sections:
                SECTIONS[name](args, python, work, clients)
        except BaseException:
            for log in sorted(work.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name}, last lines:", *tail, sep="\n", file=sys.stderr)
            raise
        finally:
            clients.stop()


if __name__ == "__main__":
    main()
