"""Cache benchmark: cached vs uncached reads of /items, computations per 100 misses, cashews.

One run renders the cache+postgres project (Redis backend), then measures:

1. Read throughput of ``GET /items/{id}`` (one row by primary key) and of
   ``GET /items?limit=50`` (a page of 50 rows) on a real uvicorn with the cache
   on and with it off (``CACHE_ENABLED=false``: every read goes to
   PostgreSQL), same endpoint, same data, same load; prints requests/s, the
   ratio, and PostgreSQL transactions per request (the load the cache takes
   off the database). The load comes from ``wrk`` when it is installed
   (``apt-get install wrk``), else from an httpx loop, which is slower than
   the server and so understates the ratio.
2. Computations when 100 callers miss the same key at once: a baseline shaped
   like the seed's cache (get, compute on a miss, set; no single flight) against
   the generated ``Cache`` with the memory backend and with Redis (two clients
   standing for two processes).
3. The generated cache against cashews configured safely (JSON, lock=True):
   see bench/cache_libraries.py.

Run from the repository root (Redis on 127.0.0.1:6379, PostgreSQL on 5432),
in a venv made by ``scripts/bootstrap bench``:

    .venv/bin/python bench/cache.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from avanzada.checks import render
from cache_libraries import compare
from loadkit import free_port
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bench_cache"
ANSWERS = {"features": ["cache", "postgres"], "cache_backend": "redis", "package_name": PACKAGE}
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = PACKAGE.upper() + "_"


def env_for(project: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env["PYTHONPATH"] = str(project / "src")
    env.update({PREFIX + key.upper(): value for key, value in settings.items()})
    return env


def start_server(project: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = env_for(project, port=str(port), log_level="warning", **settings)
    process = subprocess.Popen([sys.executable, "-m", PACKAGE], env=env, cwd=project)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    sys.exit("server did not start")


ENDPOINTS = {"one item": "/items/{}", "page of 50": "/items?limit=50&after={}"}
"""What is read: the path, formatted with an item id (taken in turn from the loaded ones)."""

WRK_SCRIPT = """
local ids = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("%s", ids[n %% #ids + 1]))
end
"""


def run_wrk(base: str, path: str, ids: list[int], seconds: float, concurrency: int) -> float:
    """Requests per second by wrk (two threads, ``concurrency`` connections)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % (",".join(map(str, ids)), path.replace("{}", "%d")))
        script.flush()
        duration = f"-d{max(1, round(seconds))}s"
        output = subprocess.run(
            ["wrk", "-t2", f"-c{concurrency}", duration, "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in output:
        sys.exit(f"wrk saw errors:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def warm_up(base: str, path: str, ids: list[int]) -> None:
    """Read every key once, so the cached run measures hits rather than first misses."""
    with httpx.Client(base_url=base, timeout=10) as http:
        for item_id in ids:
            http.get(path.format(item_id)).raise_for_status()


def run_httpx(base: str, path: str, ids: list[int], seconds: float, concurrency: int) -> float:
    done, errors = asyncio.run(load(base, path, ids, seconds, concurrency))
    if errors:
        sys.exit(f"{errors} requests failed")
    return done / seconds


async def load(
    base: str, path: str, ids: list[int], seconds: float, concurrency: int
) -> tuple[int, int]:
    """Requests completed (and non-200s) by ``concurrency`` clients in ``seconds``."""
    done = errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            n = offset
            while time.perf_counter() < deadline:
                response = await http.get(path.format(ids[n % len(ids)]))
                done += 1
                errors += response.status_code != 200
                n += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done, errors


class SeedShapedCache:
    """The seed's get_or_set: read, compute on a miss, write. JSON here, same shape."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def get_or_set(self, key: str, func: Callable[[], Awaitable[Any]]) -> Any:
        raw = await self.client.get(key)
        if raw is not None:
            return json.loads(raw)
        value = await func()
        await self.client.set(key, json.dumps(value), ex=300)
        return value


def cache_modules(project: Path) -> types.SimpleNamespace:
    """The rendered project's cache classes."""
    sys.path.insert(0, str(project / "src"))
    from bench_cache.cache import Cache  # type: ignore[import-not-found]
    from bench_cache.cache.memory import MemoryBackend  # type: ignore[import-not-found]
    from bench_cache.cache.redis_backend import RedisBackend  # type: ignore[import-not-found]

    return types.SimpleNamespace(
        Cache=Cache, MemoryBackend=MemoryBackend, RedisBackend=RedisBackend
    )


async def misses(project: Path) -> dict[str, int]:
    modules = cache_modules(project)
    Cache, MemoryBackend, RedisBackend = modules.Cache, modules.MemoryBackend, modules.RedisBackend

    results: dict[str, int] = {}
    calls = 0

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # a 50 ms query
        return {"answer": 42}

    clients = [Redis.from_url(REDIS_URL) for _ in range(2)]
    try:
        seed = SeedShapedCache(clients[0])
        key = f"bench:{uuid.uuid4().hex}"
        calls = 0
        await asyncio.gather(*(seed.get_or_set(key, compute) for _ in range(100)))
        results["seed-shaped (Redis)"] = calls

        memory = Cache(MemoryBackend(1000), namespace="bench")
        calls = 0
        await asyncio.gather(*(memory.get_or_compute(memory.key("k"), compute) for _ in range(100)))
        results["generated, memory backend"] = calls

        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        caches = [
            Cache(RedisBackend(c, lock_timeout=10, lock_wait=5), namespace=namespace)
            for c in clients
        ]
        calls = 0
        key = caches[0].key("k")
        await asyncio.gather(*(caches[i % 2].get_or_compute(key, compute) for i in range(100)))
        results["generated, Redis backend, 2 clients"] = calls
        await caches[0].invalidate()
        await clients[0].delete(f"bench:{key}")
    finally:
        for client in clients:
            await client.aclose()
    return results


async def transactions(dsn: str, database: str) -> int:
    """Transactions committed in ``database`` so far (each asyncpg query outside one is one)."""
    # PostgreSQL publishes a backend's counters up to a second late.
    await asyncio.sleep(1.5)
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database
        )
        return count
    finally:
        await connection.close()


async def prepare_database(dsn: str, count: int) -> list[int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = [(f"bench-{n}", "x" * 200, n) for n in range(count)]
        await connection.copy_records_to_table(
            "items", records=rows, columns=["name", "description", "price_cents"]
        )
        return [r["id"] for r in await connection.fetch("SELECT id FROM items ORDER BY id")]
    finally:
        await connection.close()


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        project = render(ANSWERS, Path(work) / "project", template=REPO)
        database = f"bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin(f'CREATE DATABASE "{database}"'))
        dsn = f"postgresql://postgres@127.0.0.1:5432/{database}"
        try:
            migrated = subprocess.run(
                [sys.executable, "-m", PACKAGE, "migrate"],
                env=env_for(project, database_url=dsn),
                capture_output=True,
                text=True,
                check=True,
            )
            print(migrated.stdout.strip())
            ids = asyncio.run(prepare_database(dsn, 1000))
            # Pages start at 20 places, so the cached run reads 20 keys over and over.
            page_starts = [0, *ids[49:1000:50][:19]]
            generator = run_wrk if shutil.which("wrk") else run_httpx
            print(f"load generator: {'wrk' if generator is run_wrk else 'httpx (install wrk)'}")

            for endpoint, path in ENDPOINTS.items():
                keys = ids if endpoint == "one item" else page_starts
                rates: dict[str, float] = {}
                for label, enabled in (("uncached", "false"), ("cached", "true")):
                    process, base = start_server(
                        project,
                        database_url=dsn,
                        redis_url=REDIS_URL,
                        cache_enabled=enabled,
                        cache_namespace=f"bench-{uuid.uuid4().hex[:8]}",
                        log_json="false",
                    )
                    try:
                        warm_up(base, path, keys)
                        generator(base, path, keys, 1.0, args.concurrency)
                        before = asyncio.run(transactions(dsn, database))
                        rates[label] = generator(base, path, keys, args.seconds, args.concurrency)
                        after = asyncio.run(transactions(dsn, database))
                    finally:
                        process.terminate()
                        process.wait(10)
                    per_request = (after - before) / (rates[label] * args.seconds)
                    print(
                        f"GET {path.format('…')} {label:>8}: {rates[label]:8.0f} req/s, "
                        f"{per_request:.3f} PostgreSQL transactions per request"
                    )
                ratio = rates["cached"] / rates["uncached"]
                print(f"  {endpoint}: cached / uncached throughput {ratio:.2f}x")

            print("computations for 100 concurrent misses of one key (50 ms computation):")
            for label, count in asyncio.run(misses(project)).items():
                print(f"  {label:<40} {count}")

            print("generated cache vs cashews (pickle_type='json', lock=True), same Redis:")
            print(f"  {'measure':<50} {'generated':>10} {'cashews':>10}")
            for measure, ours, theirs in asyncio.run(compare(cache_modules(project))):
                print(f"  {measure:<50} {ours:>10} {theirs:>10}")
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
