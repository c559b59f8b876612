"""Pictures of the Grafana dashboard, drawn from a real short load run, for docs/.

Renders a service with rooms, SSE, the queue, the cache and PostgreSQL (in
memory), installs it in its own venv (uv) and runs it under uvicorn. A real
Prometheus (``/usr/bin/prometheus``, Debian package ``prometheus``) scrapes it
every second with the rendered ``deploy/prometheus/prometheus.yml`` (its API key
file included) and evaluates the rendered alert rules. Load runs in three
phases (steady, a burst with slow readers and failing tasks, steady again).
Then every query of every panel, read from the rendered
``deploy/grafana/dashboard.json``, is asked of Prometheus over the run, and each
row of the dashboard becomes one PNG: what Grafana would draw, without Grafana.

A documentation artifact, not a test: it is not run in CI. Needs PostgreSQL on
127.0.0.1:5432 (trust auth; a private database is created and dropped).

Run:

    .venv/bin/python bench/dashboard.py [--seconds 90] [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import matplotlib.pyplot as plt
import websockets
import yaml
from avanzada.checks import render
from loadkit import free_port, install, wait_listening

REPO = Path(__file__).resolve().parents[1]

PACKAGE = "my_service"
PREFIX = PACKAGE.upper() + "_"
API_KEY = "dashboard-bench-key-" + uuid.uuid4().hex
RATE_INTERVAL = "5s"  # what Grafana's $__rate_interval is for a 1 s scrape
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def prepare(work: Path) -> tuple[Path, Path]:
    """Render the service and install it into its own venv."""
    project = render(
        {
            "project_name": "My Service",
            "features": ["rooms", "sse", "queue", "cache", "postgres"],
            "scale_out": "memory",
        },
        work / "service",
        template=REPO,
    )
    python = install(project, work / "venv")
    return project, python


async def create_database() -> str:
    name = f"dashboard_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def start_service(python: Path, work: Path, database: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            f"{PREFIX}PORT": str(port),
            f"{PREFIX}API_KEYS": API_KEY,
            f"{PREFIX}LOG_LEVEL": "warning",
            f"{PREFIX}DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
            # Small enough that the burst phase shows a backlog and slow readers.
            f"{PREFIX}TASKS_WORKERS": "2",
            f"{PREFIX}TASKS_RETRY_BACKOFF": "0.05",
            f"{PREFIX}SSE_CLIENT_QUEUE_SIZE": "50",
            f"{PREFIX}ROOMS_QUEUE_MAX_MESSAGES": "32",
            f"{PREFIX}ROOMS_QUEUE_MAX_BYTES": "262144",
            f"{PREFIX}SSE_HISTORY_SIZE": "200",
            # One API key opens every connection of this run.
            f"{PREFIX}CLIENT_MAX_CONNECTIONS": "1000",
            f"{PREFIX}ROOMS_RATE_LIMIT": "1000",
            f"{PREFIX}ROOMS_RATE_BURST": "1000",
        }
    )
    subprocess.run([str(python), "-m", PACKAGE, "migrate"], env=env, check=True)
    with (work / "service.log").open("ab") as log:
        process = subprocess.Popen(
            [str(python), "-m", PACKAGE], cwd=work, env=env, stdout=log, stderr=log
        )
    wait_listening(port, process)
    return process, port


def start_prometheus(project: Path, work: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus with the rendered config, scraping every second."""
    folder = work / "prometheus"
    shutil.copytree(project / "deploy" / "prometheus", folder)
    (folder / "api_key").write_text(API_KEY + "\n")
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    listen = free_port()
    command = [
        shutil.which("prometheus") or "/usr/bin/prometheus",
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{listen}",
    ]
    with (work / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    wait_listening(listen, process)
    return process, f"http://127.0.0.1:{listen}"


# Load


class Load:
    """Clients of every feature, shaped by a phase that changes during the run."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.burst = False
        self.item_ids: list[int] = []
        self.last_event_id = ""

    async def http_clients(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            roll = random.random()
            if roll < 0.6 and self.item_ids:
                # Reads through the cache: a few hot items, some cold ones.
                item = random.choice(self.item_ids[:5] if roll < 0.4 else self.item_ids)
                await http.get(f"{self.base}/items/{item}")
            elif roll < 0.7:
                await http.get(f"{self.base}/items", params={"limit": 20})
            elif roll < 0.75:
                await http.get(f"{self.base}/items/999999999")  # 404
            elif roll < 0.8 or (self.burst and roll < 0.9):
                # No key: refused, counted by reason.
                await http.post(f"{self.base}/tasks", json={}, headers={"Authorization": ""})
            else:
                await http.get(f"{self.base}/readyz")
            await asyncio.sleep(0.02 if self.burst else 0.05)

    async def tasks(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            count = 150 if self.burst else 3
            for _ in range(count):
                failing = self.burst and random.random() < 0.2
                body = {
                    "name": "sleep",
                    "args": [-1 if failing else random.uniform(0.01, 0.08)],
                    "priority": random.choice(["urgent", "high", "normal", "low", "low"]),
                }
                await http.post(f"{self.base}/tasks", json=body)
            await asyncio.sleep(1)

    async def room_publisher(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            size = 20_000 if self.burst else 200
            await http.post(f"{self.base}/rooms/lobby/messages", json={"data": "x" * size})
            await asyncio.sleep(0.02)

    async def room_member(self, stop: asyncio.Event, *, stuck: bool = False) -> None:
        while not stop.is_set():
            try:
                async with websockets.connect(
                    f"{self.ws}/ws/lobby", additional_headers=self.headers, max_queue=4
                ) as ws:
                    while not stop.is_set():
                        if stuck and self.burst:
                            await asyncio.sleep(0.5)  # stops reading: evicted
                        else:
                            await ws.recv()
            except (websockets.ConnectionClosed, OSError):
                await asyncio.sleep(0.5)

    async def sse_publisher(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = {"type": "tick", "data": {"at": time.time(), "pad": "y" * 2000}}
            self.last_event_id = (await http.post(f"{self.base}/sse/events", json=body)).json()[
                "id"
            ]
            await asyncio.sleep(0.01 if self.burst else 0.1)

    async def sse_client(self, http: httpx.AsyncClient, stop: asyncio.Event, slow: bool) -> None:
        while not stop.is_set():
            headers = {}
            if self.last_event_id and random.random() < 0.5:
                # Reconnect from an id: a replay, or a resync once history moved on.
                headers["Last-Event-ID"] = self.last_event_id
            try:
                async with http.stream(
                    "GET", f"{self.base}/sse/stream", headers=headers, timeout=None
                ) as response:
                    started = time.monotonic()
                    async for _ in response.aiter_lines():
                        if slow and self.burst:
                            await asyncio.sleep(0.2)
                        if stop.is_set() or time.monotonic() - started > 8:
                            break
            except httpx.HTTPError:
                await asyncio.sleep(0.5)

    async def run(self, seconds: float) -> None:
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(headers=self.headers, timeout=30, limits=limits) as http:
            for number in range(30):
                body = {"name": f"item-{number}", "price_cents": 100 + number}
                self.item_ids.append(
                    (await http.post(f"{self.base}/items", json=body)).json()["id"]
                )
            jobs = [
                *(self.http_clients(http, stop) for _ in range(8)),
                self.tasks(http, stop),
                self.room_publisher(http, stop),
                *(self.room_member(stop) for _ in range(20)),
                *(self.room_member(stop, stuck=True) for _ in range(3)),
                self.sse_publisher(http, stop),
                *(self.sse_client(http, stop, slow=index < 3) for index in range(10)),
            ]
            running = [asyncio.create_task(job) for job in jobs]
            await asyncio.sleep(seconds / 3)
            self.burst = True
            await asyncio.sleep(seconds / 3)
            self.burst = False
            await asyncio.sleep(seconds / 3)
            stop.set()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


# Pictures


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    answer = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": "1s"},
        timeout=30,
    ).json()
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def series_label(legend: str, labels: dict[str, str]) -> str:
    if legend and legend != "__auto":
        return legend
    shown = {k: v for k, v in labels.items() if k not in ("job", "instance", "__name__")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or labels.get("__name__", "value")


_SCALE = {"percentunit": (100, "%"), "s": (1000, "ms"), "bytes": (1 / 2**20, "MiB")}


def draw(board: dict[str, Any], prometheus: str, start: float, end: float, out: Path) -> list[Path]:
    sections: list[tuple[str, list[dict[str, Any]]]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            sections.append((panel["title"], []))
        else:
            sections[-1][1].append(panel)
    written = []
    for title, panels in sections:
        rows = (len(panels) + 1) // 2
        figure, axes = plt.subplots(rows, 2, figsize=(12, 3.2 * rows), squeeze=False)
        for axis, panel in zip(axes.flat, panels, strict=False):
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            factor, shown_unit = _SCALE.get(unit, (1, unit))
            for target in panel["targets"]:
                for series in query_range(prometheus, target["expr"], start, end):
                    points = [(float(t) - start, float(v) * factor) for t, v in series["values"]]
                    points = [(t, v) for t, v in points if v == v]  # NaN: no data
                    if points:
                        xs, ys = zip(*points, strict=True)
                        label = series_label(target.get("legendFormat", ""), series["metric"])
                        axis.plot(xs, ys, label=label, linewidth=1.2)
            axis.set_title(panel["title"], fontsize=10, loc="left")
            axis.set_ylabel(shown_unit, fontsize=8)
            top = max((max(line.get_ydata()) for line in axis.get_lines()), default=1.0)
            axis.set_ylim(0, top * 1.15 or 1.0)
            axis.grid(alpha=0.3)
            axis.tick_params(labelsize=8)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7, loc="upper left")
        for axis in list(axes.flat)[len(panels) :]:
            axis.axis("off")
        for axis in axes[-1]:
            axis.set_xlabel("seconds into the run", fontsize=8)
        figure.suptitle(f"{board['title']}: {title}", fontsize=12, x=0.01, ha="left")
        figure.tight_layout()
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        path = out / f"dashboard-{slug}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plt.switch_backend("Agg")
    with tempfile.TemporaryDirectory(prefix="dashboard-") as tmp:
        work = Path(tmp)
        project, python = prepare(work)
        database = asyncio.run(create_database())
        service = prometheus = None
        try:
            service, port = start_service(python, work, database)
            prometheus, prometheus_url = start_prometheus(project, work, port)
            time.sleep(3)
            start = time.time()
            asyncio.run(Load(port).run(args.seconds))
            time.sleep(3)  # the last scrapes
            end = time.time()
            board = json.loads((project / "deploy" / "grafana" / "dashboard.json").read_text())
            for path in draw(board, prometheus_url, start, end, args.out):
                print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
            alerts = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=10).json()
            names = sorted({alert["labels"]["alertname"] for alert in alerts["data"]["alerts"]})
            print("alerts pending or firing at the end:", ", ".join(names) or "none")
        finally:
            for process in (prometheus, service):
                if process is not None:
                    process.terminate()
                    process.wait(15)
            asyncio.run(drop_database(database))


if __name__ == "__main__":
    main()
