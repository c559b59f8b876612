"""Task queue benchmark: enqueue-to-start latency and no-op burst throughput.

One run renders the queue project twice (in-process, and on Redis with
streaq), installs them in a private venv, and measures against a baseline
shaped like the seed's PriorityTaskManager (bench/queue_seed.py: workers that
poll a heap with ``sleep(0.1)``), which runs inside the same in-process
service, behind the same routes:

1. Wait from enqueue to start at low load (one task every 5 ms): p50 and p99.
2. A burst of N no-op tasks enqueued back to back: tasks/s until all have run,
   and how long ``GET /healthz`` takes meanwhile (probed every 10 ms from
   another process's thread).
3. The same two on Redis: the web process enqueues, one ``worker`` process
   (concurrency 32) runs the tasks.

Run from the repository root (Redis on 127.0.0.1:6379):

    .venv/bin/python bench/task_queue.py [--burst 100000] [--redis-burst 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from avanzada.checks import _uv, render
from loadkit import free_port

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
MEMORY, ON_REDIS = "bench_queue_mem", "bench_queue_redis"


def prepare(work: Path) -> tuple[str, dict[str, Path]]:
    projects = {
        MEMORY: render(
            {"features": ["queue"], "package_name": MEMORY, "project_slug": "bench-queue-mem"},
            work / MEMORY,
            template=REPO,
        ),
        ON_REDIS: render(
            {
                "features": ["queue"],
                "scale_out": "redis",
                "workers": 2,
                "package_name": ON_REDIS,
                "project_slug": "bench-queue-redis",
            },
            work / ON_REDIS,
            template=REPO,
        ),
    }
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(work / "venv")], env=env, check=True
    )
    python = str(work / "venv" / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, *map(str, projects.values())],
        env=env,
        check=True,
    )
    return python, projects


def env_for(package: str, **settings: str) -> dict[str, str]:
    prefix = package.upper() + "_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env.pop("PYTHONPATH", None)
    env.update({prefix + key.upper(): value for key, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit("server did not start")


def start(python: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([python, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def burst_with_probes(
    client: httpx.Client, path: str, params: dict[str, Any]
) -> tuple[dict[str, Any], list[float]]:
    """Run a burst request while another thread times /healthz every 10 ms."""
    probes: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                http.get("/healthz")
                probes.append(time.perf_counter() - started)
                time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        result = client.post(path, params=params, timeout=600).json()
    finally:
        stop.set()
        thread.join()
    return result, probes


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--redis-burst", type=int, default=2000)
    parser.add_argument("--latency-tasks", type=int, default=200)
    options = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        work = Path(tmp)
        python, _ = prepare(work)
        port = free_port()
        server = start(
            python,
            [str(BENCH / "queue_server.py"), MEMORY, str(port)],
            env_for(
                MEMORY,
                tasks_workers="4",
                tasks_batch_path=str(work / "events.jsonl"),
                log_level="warning",
            ),
            work / "memory.log",
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            with httpx.Client(base_url=url, timeout=600) as client:
                for engine in ("seed", "queue"):
                    results[f"latency/{engine}"] = client.post(
                        "/bench/latency",
                        params={"engine": engine, "n": options.latency_tasks, "interval": 0.005},
                    ).json()
                for engine in ("seed", "queue"):
                    client.post("/bench/burst", params={"engine": engine, "n": 1000})  # warm-up
                    results[f"burst/{engine}"] = burst_with_probes(
                        client, "/bench/burst", {"engine": engine, "n": options.burst}
                    )
        finally:
            stop(server)
        report_in_process(results, options)

        queue_name = f"bench-{uuid.uuid4().hex[:8]}"
        settings = {
            "tasks_queue_name": queue_name,
            "tasks_worker_concurrency": "32",
            "log_level": "warning",
        }
        worker = start(
            python,
            [str(BENCH / "queue_server.py"), ON_REDIS, "worker"],
            env_for(ON_REDIS, **settings),
            work / "worker.log",
        )
        port = free_port()
        server = start(
            python,
            [str(BENCH / "queue_server.py"), ON_REDIS, str(port)],
            env_for(ON_REDIS, **settings),
            work / "redis.log",
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            with httpx.Client(base_url=url, timeout=600) as client:
                client.post(
                    "/bench/redis-burst", params={"n": 100}
                )  # warm-up, and the worker is up
                results["latency/redis"] = client.post(
                    "/bench/latency", params={"engine": "redis", "n": 100, "interval": 0.02}
                ).json()
                results["burst/redis"] = burst_with_probes(
                    client, "/bench/redis-burst", {"n": options.redis_burst}
                )
        finally:
            for process in (server, worker):
                stop(process)

    report_redis(results, options)


def report_in_process(results: dict[str, Any], options: argparse.Namespace) -> None:
    print("\nIn process: enqueue-to-start wait at low load (one task every 5 ms)")
    print(f"{'engine':<28}{'p50':>12}{'p99':>12}")
    for key, label in (("seed", "seed (sleep(0.1) polling)"), ("queue", "in-process queue")):
        row = results[f"latency/{key}"]
        print(f"{label:<28}{row['p50_ms']:>9.2f} ms{row['p99_ms']:>9.2f} ms")
    seed_l, queue_l = results["latency/seed"], results["latency/queue"]
    print(
        f"ratio seed/queue: p50 {seed_l['p50_ms'] / queue_l['p50_ms']:.0f}x, "
        f"p99 {seed_l['p99_ms'] / queue_l['p99_ms']:.0f}x"
    )
    print(f"\nIn process: burst of {options.burst} no-op tasks")
    print(
        f"{'engine':<28}{'tasks/s':>12}{'enqueue/s':>12}"
        f"{'healthz p50':>14}{'healthz max':>14}{'probes':>8}"
    )
    rates = {}
    for key, label in (("seed", "seed (sleep(0.1) polling)"), ("queue", "in-process queue")):
        row, probes = results[f"burst/{key}"]
        rates[key] = options.burst / row["total_s"]
        print(
            f"{label:<28}{rates[key]:>12,.0f}{options.burst / row['enqueue_s']:>12,.0f}"
            f"{ms(statistics.median(probes)) if probes else '-':>14}"
            f"{ms(max(probes)) if probes else '-':>14}{len(probes):>8}"
        )
    print(f"throughput ratio queue/seed: {rates['queue'] / rates['seed']:.2f}x (target >= 1.0)")
    sys.stdout.flush()


def report_redis(results: dict[str, Any], options: argparse.Namespace) -> None:
    row = results["latency/redis"]
    print("\nOn Redis (streaq, one worker process, concurrency 32)")
    print(
        f"wait at low load (one task every 20 ms): "
        f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
    )
    burst, probes = results["burst/redis"]
    print(
        f"burst of {options.redis_burst} no-op tasks: "
        f"{options.redis_burst / burst['total_s']:,.0f} tasks/s "
        f"(enqueue {options.redis_burst / burst['enqueue_s']:,.0f}/s); "
        f"healthz p50 {ms(statistics.median(probes))}, max {ms(max(probes))}"
    )


if __name__ == "__main__":
    main()
