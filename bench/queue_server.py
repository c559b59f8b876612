"""The service the queue benchmark drives: the rendered app plus bench-only routes.

Run by bench/task_queue.py as ``python queue_server.py <package> <port>``. It
registers two benchmark tasks in the app's own registry, adds ``/bench/*``
routes, and serves the app with uvicorn. The baseline is the seed's
``PriorityTaskManager`` (bench/queue_seed.py) in the same process, measured
by the same routes.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

BENCH = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("queue_seed", BENCH / "queue_seed.py")
assert _spec is not None and _spec.loader is not None
queue_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queue_seed)
SeedPriority = queue_seed.Priority
PriorityTaskManager = queue_seed.PriorityTaskManager

package = sys.argv[1]
registry_module = importlib.import_module(f"{package}.tasks.registry")
app_module = importlib.import_module(f"{package}.app")
registry = registry_module.registry
Priority = registry_module.Priority

done = 0
waits: list[float] = []


@registry.task(name="bench_noop")
async def bench_noop() -> None:
    global done
    done += 1


@registry.task(name="bench_stamp")
async def bench_stamp(enqueued: float) -> float:
    # Wall clock: on Redis the task runs in another process on the same host.
    wait = time.time() - enqueued
    waits.append(wait)
    return wait


async def seed_noop() -> None:
    global done
    done += 1


async def seed_stamp(enqueued: float) -> None:
    waits.append(time.time() - enqueued)


app: FastAPI = app_module.create_app()
seed = PriorityTaskManager(max_workers=4)


async def seed_started() -> Any:
    # Started on first use, inside the running loop (the seed used @app.on_event).
    if not seed.running:
        await seed.start_workers()
    return seed


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "n": len(ordered),
    }


@app.post("/bench/burst")
async def burst(engine: str, n: int) -> dict[str, Any]:
    """Enqueue ``n`` no-op tasks back to back; return when all have run."""
    global done
    done = 0
    started = time.perf_counter()
    # Enqueued in chunks of 1000 with a yield between them, as separate
    # producers would; the same for both engines.
    if engine == "seed":
        await seed_started()
        for chunk in range(0, n, 1000):
            for _ in range(min(1000, n - chunk)):
                await seed.add_task(seed_noop, SeedPriority.NORMAL)
            await asyncio.sleep(0)
    else:
        queue = app.state.tasks
        for chunk in range(0, n, 1000):
            for _ in range(min(1000, n - chunk)):
                queue.submit("bench_noop")
            await asyncio.sleep(0)
    enqueued = time.perf_counter()
    while done < n:
        await asyncio.sleep(0.001)
    finished = time.perf_counter()
    return {"enqueue_s": enqueued - started, "total_s": finished - started}


@app.post("/bench/latency")
async def latency(engine: str, n: int, interval: float) -> dict[str, Any]:
    """Enqueue one task every ``interval`` seconds; enqueue-to-start wait percentiles."""
    waits.clear()
    ids = []
    if engine == "seed":
        await seed_started()
    for _ in range(n):
        if engine == "seed":
            await seed.add_task(seed_stamp, SeedPriority.NORMAL, time.time())
        else:
            ids.append(
                await app.state.tasks.enqueue("bench_stamp", [time.time()], {}, Priority.NORMAL)
            )
        await asyncio.sleep(interval)
    if engine == "redis":
        # The tasks ran in the worker process: their waits come back as results.
        remote = []
        for task_id in ids:
            for _ in range(500):
                view = await app.state.tasks.get(task_id)
                if view is not None and view.state in ("succeeded", "failed"):
                    if view.state == "failed":
                        raise RuntimeError(f"benchmark task failed: {view.error}")
                    remote.append(view.result)
                    break
                await asyncio.sleep(0.01)
        return percentiles(remote)
    while len(waits) < n:
        await asyncio.sleep(0.01)
    return percentiles(waits)


@app.post("/bench/redis-burst")
async def redis_burst(n: int) -> dict[str, Any]:
    """Enqueue ``n`` no-op tasks on Redis (64 at a time); return when all have results."""
    queue = app.state.tasks
    started = time.perf_counter()
    ids: list[str] = []
    for offset in range(0, n, 64):
        batch = min(64, n - offset)
        ids += await asyncio.gather(
            *(queue.enqueue("bench_noop", [], {}, Priority.NORMAL) for _ in range(batch))
        )
    enqueued = time.perf_counter()
    redis = app.state.redis
    worker = queue._worker
    pending = [worker.results_key + task_id for task_id in ids]
    while pending:
        found = await redis.exists(*pending[:500])
        if found == len(pending[:500]):
            pending = pending[500:]
        else:
            await asyncio.sleep(0.01)
    finished = time.perf_counter()
    return {"enqueue_s": enqueued - started, "total_s": finished - started}


if sys.argv[2] == "worker":
    # A task worker process with the benchmark tasks registered too.
    settings_module = importlib.import_module(f"{package}.settings")
    worker_module = importlib.import_module(f"{package}.tasks.worker")
    worker_module.main(settings_module.Settings())
else:
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
