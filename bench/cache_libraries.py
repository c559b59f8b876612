"""The library comparison of bench/cache.py: the generated cache against cashews, JSON on both.

cashews is the maintained asyncio cache closest to what the template needs
(Redis and memory backends, decorators, a distributed lock, in-process
single flight). Configured safely, ``pickle_type="json"``, with ``lock=True``
so a miss is computed once across processes, it is the alternative to the
generated ``cache`` package. Each scenario runs both on the same Redis:

1. cost of a hit (sequential calls of a decorated function), Redis and memory;
2. computations for 100 concurrent misses of one key from two clients;
3. the cache-aside race: a fill loads a row, a write commits and deletes the
   key, the fill finishes; how many of 20 trials leave the old row cached;
4. a key holding bytes that are not JSON (written by anyone who can reach
   Redis): calls that raised instead of answering;
5. Redis that accepts connections and never answers (a hung server or a
   network partition, socket timeout 0.2 s): time for 20 calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

from cashews import Cache as CashewsCache
from redis.asyncio import Redis

REDIS_URL = "redis://127.0.0.1:6379/0"
ROW = {"id": 1, "name": "bench", "description": "x" * 200, "price_cents": 100}

Row = tuple[str, str, str]
"""One result line: what was measured, the generated cache's figure, cashews' figure."""


def cashews(url: str, **options: Any) -> CashewsCache:
    cache = CashewsCache()
    cache.setup(url, pickle_type="json", client_side=False, **options)
    return cache


def generated(cache_module: Any, url: str, namespace: str, **redis_options: Any) -> Any:
    client = Redis.from_url(url, **redis_options)
    backend = cache_module.RedisBackend(client, lock_timeout=10, lock_wait=5)
    return cache_module.Cache(backend, namespace=namespace), client


async def per_call_us(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    await call()  # the miss that fills it
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls * 1e6


async def hit_cost(modules: Any, calls: int) -> list[Row]:
    ours, client = generated(modules, REDIS_URL, f"bench-{uuid.uuid4().hex[:8]}")
    theirs = cashews(REDIS_URL)
    memory_ours = modules.Cache(modules.MemoryBackend(10_000), namespace="bench")
    memory_theirs = cashews("mem://?size=10000")

    @ours.cached(ttl=60, name="row")
    async def ours_row(item_id: int) -> dict[str, Any]:
        return ROW

    @theirs(ttl=60, lock=True, key="row:{item_id}")
    async def theirs_row(item_id: int) -> dict[str, Any]:
        return ROW

    # Without the lock a hit is cheaper, but misses are no longer computed once across processes.
    @theirs(ttl=60, key="row_unlocked:{item_id}")
    async def theirs_unlocked_row(item_id: int) -> dict[str, Any]:
        return ROW

    @memory_ours.cached(ttl=60, name="row")
    async def memory_ours_row(item_id: int) -> dict[str, Any]:
        return ROW

    @memory_theirs(ttl=60, key="row:{item_id}")
    async def memory_theirs_row(item_id: int) -> dict[str, Any]:
        return ROW

    try:
        redis_us = [
            await per_call_us(lambda f=f: f(1), calls)
            for f in (ours_row, theirs_row, theirs_unlocked_row)
        ]
        memory_us = [
            await per_call_us(lambda f=f: f(1), calls) for f in (memory_ours_row, memory_theirs_row)
        ]
        await theirs.delete_match("row*")
        await ours.invalidate()
    finally:
        await client.aclose()
        await theirs.close()
    return [
        ("hit, Redis backend (us per call)", f"{redis_us[0]:.0f}", f"{redis_us[1]:.0f}"),
        ("the same, cashews without lock=True", "", f"{redis_us[2]:.0f}"),
        ("hit, memory backend (us per call)", f"{memory_us[0]:.1f}", f"{memory_us[1]:.1f}"),
    ]


async def stampede(modules: Any) -> Row:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    pairs = [generated(modules, REDIS_URL, namespace) for _ in range(2)]
    theirs = [cashews(REDIS_URL) for _ in range(2)]
    counts = {"ours": 0, "theirs": 0}
    key_id = uuid.uuid4().int % 10**9

    def decorate(cache: Any, who: str, is_ours: bool) -> Callable[[int], Awaitable[int]]:
        async def compute(item_id: int) -> int:
            counts[who] += 1
            await asyncio.sleep(0.05)
            return item_id

        if is_ours:
            return cache.cached(ttl=60, name="stampede")(compute)  # type: ignore[no-any-return]
        return cache(ttl=60, lock=True, key="stampede:{item_id}")(compute)  # type: ignore[no-any-return]

    try:
        ours = [decorate(cache, "ours", True) for cache, _ in pairs]
        await asyncio.gather(*(ours[i % 2](key_id) for i in range(100)))
        mine = [decorate(cache, "theirs", False) for cache in theirs]
        await asyncio.gather(*(mine[i % 2](key_id) for i in range(100)))
        await pairs[0][0].invalidate()
        await theirs[0].delete(f"stampede:{key_id}")
    finally:
        for _, client in pairs:
            await client.aclose()
        for cache in theirs:
            await cache.close()
    measure = "computations, 100 concurrent misses, 2 clients"
    return (measure, str(counts["ours"]), str(counts["theirs"]))


async def stale_write_backs(modules: Any, trials: int) -> Row:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    (reader, reader_client), (writer, writer_client) = (
        generated(modules, REDIS_URL, namespace) for _ in range(2)
    )
    theirs_reader, theirs_writer = cashews(REDIS_URL), cashews(REDIS_URL)
    rows: dict[int, int] = {}

    async def load(item_id: int) -> int:
        seen = rows[item_id]  # the SELECT, before the write commits
        await asyncio.sleep(0.03)
        return seen

    ours_load = reader.cached(ttl=60, name="race")(load)
    theirs_load = theirs_reader(ttl=60, lock=True, key="race:{item_id}")(load)

    async def trial(call: Callable[[int], Awaitable[int]], delete: Callable[[int], Awaitable[Any]],
                    stored: Callable[[int], Awaitable[Any]], item_id: int) -> bool:  # fmt: skip
        rows[item_id] = 1
        fill = asyncio.create_task(call(item_id))
        await asyncio.sleep(0.01)
        rows[item_id] = 2  # the write commits...
        await delete(item_id)  # ...then invalidates
        await fill
        return await stored(item_id) == 1

    stale = {"ours": 0, "theirs": 0}
    try:
        for n in range(trials):
            stale["ours"] += await trial(
                ours_load,
                lambda i: writer.delete(writer.key("race", i)),
                lambda i: writer.get(writer.key("race", i)),
                n,
            )
            stale["theirs"] += await trial(
                theirs_load,
                lambda i: theirs_writer.delete(f"race:{i}"),
                lambda i: theirs_writer.get(f"race:{i}"),
                trials + n,
            )
        await writer.invalidate()
        await theirs_writer.delete_match("race:*")
    finally:
        for client in (reader_client, writer_client):
            await client.aclose()
        for cache in (theirs_reader, theirs_writer):
            await cache.close()
    return (
        f"old row left cached after a write, of {trials} races",
        str(stale["ours"]),
        str(stale["theirs"]),
    )


async def junk_value(modules: Any) -> Row:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    ours, client = generated(modules, REDIS_URL, namespace)
    theirs = cashews(REDIS_URL)
    junk = b"\x80\x04\x95 not json"

    @ours.cached(ttl=60, name="junk")
    async def ours_value(item_id: int) -> int:
        return item_id

    @theirs(ttl=60, lock=True, key="junk:{item_id}")
    async def theirs_value(item_id: int) -> int:
        return item_id

    raised = {"ours": 0, "theirs": 0}
    try:
        await client.set(ours.key("junk", 1), junk)
        await client.set("junk:1", junk)
        for who, call in (("ours", ours_value), ("theirs", theirs_value)):
            for _ in range(10):
                try:
                    await call(1)
                except Exception:  # counting what reaches the caller
                    raised[who] += 1
        await client.delete(ours.key("junk", 1), "junk:1")
    finally:
        await client.aclose()
        await theirs.close()
    measure = "calls that raised on a non-JSON value, of 10"
    return (measure, str(raised["ours"]), str(raised["theirs"]))


async def hung_redis(modules: Any, calls: int) -> Row:
    """A listener that accepts and never answers stands for a hung Redis."""
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        timeouts = {"socket_timeout": 0.2, "socket_connect_timeout": 0.2}
        ours, client = generated(modules, url, "bench", **timeouts)
        theirs = cashews(url, **timeouts)

        @ours.cached(ttl=60, name="hung")
        async def ours_value(item_id: int) -> int:
            return item_id

        @theirs(ttl=60, lock=True, key="hung:{item_id}")
        async def theirs_value(item_id: int) -> int:
            return item_id

        seconds = []
        for call in (ours_value, theirs_value):
            started = time.perf_counter()
            for n in range(calls):
                # A failed call still costs its time.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(call(n), 5)
            seconds.append(time.perf_counter() - started)
        await client.aclose()
    return (f"Redis hung: seconds for {calls} calls", f"{seconds[0]:.2f}", f"{seconds[1]:.2f}")


async def compare(modules: Any, *, hits: int = 5000, races: int = 20) -> list[Row]:
    """Every scenario, generated cache first, cashews second."""
    # Both libraries log each failure they absorb; the counts are the result here.
    logging.disable(logging.CRITICAL)
    try:
        rows = await hit_cost(modules, hits)
        rows.append(await stampede(modules))
        rows.append(await stale_write_backs(modules, races))
        rows.append(await junk_value(modules))
        rows.append(await hung_redis(modules, 20))
    finally:
        logging.disable(logging.NOTSET)
    return rows
