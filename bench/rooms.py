"""WebSocket rooms: server CPU per delivered message, delivery with a stuck member, memory.

Renders a rooms service from this template, installs it in its own venv (uv)
and runs it under real uvicorn, next to two baselines served from the same venv:

- naive: FastAPI + uvicorn, broadcast by ``asyncio.gather`` of ``send_text``
  over the room, as the seed does;
- reference: a server written directly on the ``websockets`` library, using its
  ``broadcast()`` (encode once, write without awaiting).

All three run one process, uvloop, no compression, no pings. The clients are
light asyncio protocols in this process (they count frames without decoding
them), so client cost stays out of the servers' CPU. Measured in one run:

1. server CPU (user + system, psutil) per delivered message, 1,000 members in
   one room, and its ratio to the reference (target: at most 1.3);
2. with 20 healthy members and one that completed the handshake and never
   reads, the share of messages delivered to the healthy ones (target: 100%);
3. server memory growth while 100 MB of broadcasts are aimed at a stuck
   member (target: under 50 MB).

Run:

    .venv/bin/python bench/rooms.py [--members 1000] [--messages 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import psutil
from avanzada.checks import render
from loadkit import Tally, free_port, install, launch
from websockets.frames import Frame, Opcode

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bench_rooms"

NAIVE_APP = textwrap.dedent(
    """
    import asyncio
    import json
    from collections import defaultdict

    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()
    rooms: dict[str, set[WebSocket]] = defaultdict(set)


    @app.websocket("/ws/{room}")
    async def room_socket(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        rooms[room].add(websocket)
        try:
            while True:
                data = json.loads(await websocket.receive_text())
                frame = json.dumps({"type": "message", "room": room, "data": data["data"]})
                # The seed's broadcast: wait for every member's send.
                await asyncio.gather(
                    *(member.send_text(frame) for member in rooms[room]), return_exceptions=True
                )
        except WebSocketDisconnect:
            pass
        finally:
            rooms[room].discard(websocket)
    """
)

REFERENCE_SERVER = textwrap.dedent(
    """
    import asyncio
    import json
    import sys
    from collections import defaultdict

    import uvloop
    from websockets.asyncio.server import broadcast, serve

    rooms = defaultdict(set)


    async def handler(ws):
        room = ws.request.path.split("?")[0].rsplit("/", 1)[-1]
        rooms[room].add(ws)
        try:
            async for text in ws:
                data = json.loads(text)
                frame = json.dumps({"type": "message", "room": room, "data": data["data"]})
                broadcast(rooms[room], frame)
        finally:
            rooms[room].discard(ws)


    async def main(port):
        async with serve(
            handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=2**20
        ):
            print("ready", flush=True)
            await asyncio.Future()


    uvloop.run(main(int(sys.argv[1])))
    """
)


# Clients


@dataclass
class Member(asyncio.Protocol):
    """A WebSocket client that counts data frames without decoding them."""

    path: str
    tally: Tally
    stuck: bool = False
    transport: asyncio.Transport | None = None
    handshake: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    closed: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _head: bytes = b""
    _buffer: bytes = b""
    _skip: int = 0
    frames: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        if not self.handshake.done():
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, rest = self._head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshake.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.handshake.set_result(None)
            if self.stuck:
                assert self.transport is not None
                self.transport.pause_reading()
                return
            data = rest
        self._count(data)

    def _count(self, data: bytes) -> None:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip :]
            self._skip = 0
        buf = self._buffer + data if self._buffer else data
        pos, end_of_data, count = 0, len(buf), 0
        while end_of_data - pos >= 2:
            length, header = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if end_of_data - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end_of_data - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            opcode = buf[pos] & 0x0F
            if opcode in (0x1, 0x2):
                count += 1
            elif opcode == 0x8 and not self.closed.done():
                code = (
                    int.from_bytes(buf[pos + header : pos + header + 2], "big")
                    if length >= 2
                    else 1005
                )
                self.closed.set_result(code)
            end = pos + header + length
            if end > end_of_data:
                self._skip = end - end_of_data
                pos = end_of_data
                break
            pos = end
        self._buffer = buf[pos:]
        if count:
            self.frames += count
            self.tally.add(count)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(1006)

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        frame = Frame(Opcode.TEXT, text.encode())
        self.transport.write(frame.serialize(mask=True, extensions=[]))


async def open_member(port: int, room: str, tally: Tally, *, stuck: bool = False) -> Member:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if stuck:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    member = Member(f"/ws/{room}", tally, stuck=stuck)
    await loop.create_connection(lambda: member, sock=sock)
    await asyncio.wait_for(member.handshake, 30)
    return member


async def open_members(port: int, room: str, count: int, tally: Tally) -> list[Member]:
    members: list[Member] = []
    for start in range(0, count, 100):
        batch = range(start, min(start + 100, count))
        members += await asyncio.gather(*(open_member(port, room, tally) for _ in batch))
    return members


# Servers


class CpuMeasured(Protocol):
    """A benchmarked server: its name and the CPU its process has used."""

    name: str

    def cpu_seconds(self) -> float: ...


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, python: Path, work: Path, project: Path, **settings: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(PACKAGE.upper())}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if name == "service":
        prefix = PACKAGE.upper() + "_"
        env.update(
            {
                f"{prefix}PORT": str(port),
                f"{prefix}LOG_LEVEL": "warning",
                f"{prefix}WS_PING_INTERVAL": "0",
                f"{prefix}WS_MAX_SIZE": str(2**20),
                f"{prefix}ROOMS_MAX_MEMBERS": "100000",
                # Authorization is not what this measures (bench/auth.py and
                # bench/scale.py run with it): off, so the clients need no tokens.
                f"{prefix}AUTH_DISABLED": "true",
                **{prefix + key.upper(): value for key, value in settings.items()},
            }
        )
        command = [str(python), "-m", PACKAGE]
    elif name == "naive":
        (work / "naive_app.py").write_text(NAIVE_APP)
        command = [
            str(python), "-m", "uvicorn", "naive_app:app", "--port", str(port),
            "--log-level", "warning", "--ws-ping-interval", "0", "--ws-max-size", str(2**20),
            "--ws-per-message-deflate", "false", "--loop", "uvloop",
        ]  # fmt: skip
    else:
        (work / "reference_server.py").write_text(REFERENCE_SERVER)
        command = [str(python), "reference_server.py", str(port)]
    return Server(name, port, launch(name, command, work, env, port))


# Measurements


def payload(size: int, n: int) -> str:
    return json.dumps({"type": "message", "data": {"n": n, "text": "x" * size}})


async def cpu_per_delivery(server: Server, members: int, messages: int, size: int) -> float:
    """Server CPU microseconds per delivered message, with a window of 4 messages in flight."""
    tally = Tally()
    clients = await open_members(server.port, "bench", members, tally)
    return await fan_out_cpu(server, clients, tally, messages, size)


async def fan_out_cpu(
    server: CpuMeasured, clients: list[Member], tally: Tally, messages: int, size: int
) -> float:
    """Server CPU microseconds per message the first of ``clients`` sends to all of them.

    At most 4 messages in flight; the clients are aborted afterwards.
    """
    members = len(clients)
    await asyncio.sleep(0.5)
    publisher = clients[0]
    before = server.cpu_seconds()
    for n in range(messages):
        if not await tally.reach((n - 4) * members, 60):
            sys.exit(f"{server.name}: deliveries stalled at {tally.total}")
        publisher.send_text(payload(size, n))
    if not await tally.reach(messages * members, 60):
        sys.exit(f"{server.name}: deliveries stalled at {tally.total}")
    used = server.cpu_seconds() - before
    for client in clients:
        assert client.transport is not None
        client.transport.abort()
    return used / (messages * members) * 1e6


async def delivery_with_stuck_member(
    server: Server, healthy: int, messages: int, size: int
) -> tuple[float, float]:
    """Share delivered to healthy members while one member never reads, and seconds taken."""
    tally = Tally()
    stuck = await open_member(server.port, "stuck", Tally(), stuck=True)
    clients = await open_members(server.port, "stuck", healthy, tally)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    for n in range(messages):
        # At most 50 messages in flight; give up when nothing moves for 5 s.
        if not await tally.reach((n - 50) * healthy, 5):
            break
        clients[0].send_text(payload(size, n))
    await tally.reach(messages * healthy, 5)
    seconds = time.monotonic() - started
    for client in [stuck, *clients]:
        assert client.transport is not None
        client.transport.abort()
    return tally.total / (messages * healthy), seconds


async def memory_with_stuck_member(server: Server, total_bytes: int) -> tuple[float, float, int]:
    """RSS growth (MB, peak and end) while ``total_bytes`` of broadcasts go to a stuck member."""
    tally = Tally()
    stuck = await open_member(server.port, "memory", Tally(), stuck=True)
    publisher = await open_member(server.port, "memory", tally)
    await asyncio.sleep(0.3)
    baseline = peak = server.rss()
    size = 60_000
    messages = total_bytes // size
    for n in range(messages):
        if not await tally.reach(n - 20, 30):
            break
        publisher.send_text(payload(size, n))
        if n % 20 == 0:
            peak = max(peak, server.rss())
    await tally.reach(messages, 30)
    await asyncio.sleep(0.5)
    end = server.rss()
    peak = max(peak, end)
    for client in (stuck, publisher):
        assert client.transport is not None
        client.transport.abort()
    mb = 1024 * 1024
    return (peak - baseline) / mb, (end - baseline) / mb, tally.total


def prepare(work: Path) -> tuple[Path, Path]:
    """Render the rooms service and install it (with uvloop) into its own venv."""
    project = render(
        {"project_name": "Bench Rooms", "features": ["rooms"], "scale_out": "memory"},
        work / "service",
        template=REPO,
    )
    python = install(project, work / "venv", "websockets", "uvloop")
    return project, python


def report_cpu(
    args: argparse.Namespace, cpu: dict[str, float], rounds: dict[str, list[float]]
) -> None:
    print(
        f"\nCPU per delivered message, {args.members} members, {args.messages} messages "
        f"of {args.size} characters (server user+system time, median of {args.rounds} rounds):"
    )
    for name, value in cpu.items():
        ratio = value / cpu["reference"]
        each = ", ".join(f"{v:.1f}" for v in rounds[name])
        print(f"  {name:9s} {value:7.2f} us   ratio to reference {ratio:.2f}   (rounds: {each})")
    print(f"  target: service at most 1.30x reference -> {cpu['service'] / cpu['reference']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=100, help="payload characters per message")
    parser.add_argument("--stuck-messages", type=int, default=3000)
    parser.add_argument("--stuck-size", type=int, default=2000)
    parser.add_argument("--memory-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="CPU rounds per server (median)")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU measurement")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.members, args.messages, args.stuck_messages, args.memory_mb = 200, 50, 500, 20

    with tempfile.TemporaryDirectory(prefix="bench-rooms-") as tmp:
        work = Path(tmp)
        project, python = prepare(work)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        names = ("reference", "service", "naive")
        rounds: dict[str, list[float]] = {name: [] for name in names}
        stuck: dict[str, tuple[float, float]] = {}
        servers = {name: start(name, python, work, project) for name in names}
        try:
            # Rounds alternate between the servers, so a burst of load from
            # elsewhere on the machine does not land on one of them only.
            for _ in range(args.rounds):
                for name in names:
                    measured = asyncio.run(
                        cpu_per_delivery(servers[name], args.members, args.messages, args.size)
                    )
                    rounds[name].append(measured)
            if not args.cpu_only:
                for name in names:
                    stuck[name] = asyncio.run(
                        delivery_with_stuck_member(
                            servers[name], 20, args.stuck_messages, args.stuck_size
                        )
                    )
        finally:
            for server in servers.values():
                server.stop()
        cpu = {name: statistics.median(values) for name, values in rounds.items()}
        if args.cpu_only:
            report_cpu(args, cpu, rounds)
            return
        server = start("service", python, work, project)
        try:
            peak, end, echoed = asyncio.run(
                memory_with_stuck_member(server, args.memory_mb * 2**20)
            )
        finally:
            server.stop()

    report_cpu(args, cpu, rounds)
    print(
        f"\nDelivered to 20 healthy members with one stuck member, {args.stuck_messages} "
        f"messages of {args.stuck_size} characters:"
    )
    for name in ("reference", "service", "naive"):
        share, seconds = stuck[name]
        print(f"  {name:9s} {share:7.1%} in {seconds:.1f} s")
    print(
        f"\nService memory while {args.memory_mb} MB of broadcasts are aimed at a stuck member: "
        f"peak growth {peak:.1f} MB, at the end {end:.1f} MB (target under 50 MB); "
        f"the publishing member received {echoed} frames"
    )


if __name__ == "__main__":
    main()
