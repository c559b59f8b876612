"""Cache benchmark: cached vs uncached reads of /items/{id}, and computations per 100 misses.

One run renders the cache+postgres project (Redis backend), then measures:

1. Read throughput of ``GET /items/{id}`` on a real uvicorn with the cache on
   and with it off (``CACHE_ENABLED=false``: every read goes to PostgreSQL),
   same endpoint, same data, same load; prints requests/s and the ratio.
2. Computations when 100 callers miss the same key at once: a baseline shaped
   like the seed's cache (get, compute on a miss, set; no single flight) against
   the generated ``Cache`` with the memory backend and with Redis (two clients
   standing for two processes).

Run from the repository root (Redis on 127.0.0.1:6379, PostgreSQL on 5432):

    .venv/bin/python bench/cache.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from avanzada.checks import render
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


async def load(base: str, ids: list[int], seconds: float, concurrency: int) -> tuple[int, int]:
    """Requests completed (and non-200s) by ``concurrency`` clients in ``seconds``."""
    done = errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as http:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            n = offset
            while time.perf_counter() < deadline:
                response = await http.get(f"/items/{ids[n % len(ids)]}")
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


async def misses(project: Path) -> dict[str, int]:
    sys.path.insert(0, str(project / "src"))
    from bench_cache.cache import Cache  # type: ignore[import-not-found]
    from bench_cache.cache.memory import MemoryBackend  # type: ignore[import-not-found]
    from bench_cache.cache.redis_backend import RedisBackend  # type: ignore[import-not-found]

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
    parser.add_argument("--concurrency", type=int, default=32)
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
            ids = asyncio.run(prepare_database(dsn, 100))

            throughput: dict[str, float] = {}
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
                    asyncio.run(load(base, ids, 1.0, args.concurrency))  # warm-up
                    done, errors = asyncio.run(load(base, ids, args.seconds, args.concurrency))
                finally:
                    process.terminate()
                    process.wait(10)
                throughput[label] = done / args.seconds
                rate = done / args.seconds
                print(f"GET /items/{{id}} {label:>8}: {rate:8.0f} req/s ({errors} errors)")
            ratio = throughput["cached"] / throughput["uncached"]
            print(f"cached / uncached throughput: {ratio:.2f}x")

            print("computations for 100 concurrent misses of one key (50 ms computation):")
            for label, count in asyncio.run(misses(project)).items():
                print(f"  {label:<40} {count}")
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
