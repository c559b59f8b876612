"""The cache: namespaced readable keys, JSON values, single-flight fills, metrics, degradation.

- Keys read ``<namespace>:v<version>:<part>:<part>...``; parts are percent-encoded
  so a ``:`` inside a part cannot fake a boundary, and only parts longer than
  ``MAX_PART_LENGTH`` are replaced by a digest. Prefix invalidation therefore
  matches what it should (hashing whole keys would leave a pattern delete
  nothing to match).
- Values are JSON (never pickle): reading a key can never run code, whoever
  wrote it. Bytes that are not JSON count as a miss.
- A missing key is computed once: concurrent callers in this process share one
  computation (single flight); with a shared backend (Redis) a lock makes
  callers in other processes wait for that result rather than compute it again.
- A computed value is stored only if its key was not written, deleted or
  invalidated while it was computed (the backend revokes the fill's lease), and
  callers that arrive after such an invalidation start a new computation
  instead of joining the old one. So a read that loaded the row before a write
  committed cannot put the old row back after the write invalidated it.
- ``None`` is cached too, for ``negative_ttl`` seconds.
- When the backend fails, calls still answer, computed and uncached; the
  backend is then left alone for ``retry_interval`` seconds, so an outage costs
  one failed round trip per interval instead of one per call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload
from urllib.parse import quote

from prometheus_client import Counter

from .backend import Backend

if TYPE_CHECKING:
    from ..observability.metrics import Metrics

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_PART_LENGTH: Final = 100
"""Longer key parts are replaced by ``#`` and a SHA-256 digest (keys stay bounded)."""

_MISSING: Final = object()


class CacheMetrics:
    """Hit, miss, fill and error counters, on the app's registry."""

    def __init__(self, metrics: Metrics) -> None:
        """Register on ``metrics.registry`` (shared files when several workers run)."""
        owner = metrics.owner
        self.lookups = Counter(
            "cache_lookups",
            "Cache lookups by result (hit or miss); name is the cached function or resource.",
            ("name", "result"),
            registry=owner,
        )
        self.fills = Counter(
            "cache_fills",
            "Values computed because they were missing (one per single-flight group).",
            ("name",),
            registry=owner,
        )
        self.discarded = Counter(
            "cache_fills_discarded",
            "Computed values not stored: their key was written or invalidated meanwhile.",
            ("name",),
            registry=owner,
        )
        self.errors = Counter(
            "cache_backend_errors",
            "Backend operations that failed; the caller got a computed, uncached value.",
            ("operation",),
            registry=owner,
        )


def cache_key_part(value: object) -> str:
    """One readable key part for ``value``: its text (JSON unless a str), percent-encoded."""
    # "=", "@" and "," are kept readable; ":" (the separator), "*", "?" and
    # "[" (glob characters) and everything else are percent-encoded.
    part = quote(_text(value), safe="=@,")
    if len(part) > MAX_PART_LENGTH:
        return "#" + hashlib.sha256(part.encode()).hexdigest()[:32]
    return part


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)


def encode(value: object) -> bytes:
    """JSON bytes of ``value``; anything JSON cannot represent is a TypeError."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cache values must be JSON-serializable: {exc}") from exc
    return text.encode()


class Cache:
    """A namespaced cache over one backend. Safe to share within one event loop."""

    def __init__(
        self,
        backend: Backend,
        *,
        namespace: str,
        version: int = 1,
        default_ttl: float = 60.0,
        negative_ttl: float = 5.0,
        retry_interval: float = 1.0,
        enabled: bool = True,
        metrics: CacheMetrics | None = None,
    ) -> None:
        """Keys start with ``<namespace>:v<version>:``."""
        self.backend = backend
        self.prefix = f"{cache_key_part(namespace)}:v{version}:"
        self.default_ttl = default_ttl
        self.negative_ttl = negative_ttl
        self.enabled = enabled
        self._retry_interval = retry_interval
        self._metrics = metrics
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        """Fills running now, by key; the callers of a key await its task."""
        self._bypass_until = -1.0
        self._failing = False

    # Keys

    def key(self, *parts: object) -> str:
        """The full key for ``parts``, e.g. ``svc:v1:items:42``."""
        return self.prefix + ":".join(cache_key_part(part) for part in parts)

    # Reads and writes

    async def get(self, key: str, default: Any = None, *, name: str = "default") -> Any:
        """The cached value, or ``default`` when missing (or the backend fails)."""
        value = await self._read(key, name)
        return default if value is _MISSING else value

    async def set(self, key: str, value: object, ttl: float | None = None) -> None:
        """Store ``value`` as JSON for ``ttl`` s (default TTL; the negative TTL for ``None``).

        A fill of ``key`` running meanwhile will not overwrite it.
        """
        data = encode(value)
        self._forget_fills(lambda inflight: inflight == key)
        await self._guard("set", self.backend.set(key, data, self._ttl_for(value, ttl)))

    async def delete(self, *keys: str) -> int:
        """Remove these keys; how many existed (0 while the backend is down).

        Fills of these keys running meanwhile will not store their values.
        """
        doomed = set(keys)
        self._forget_fills(doomed.__contains__)
        removed = await self._guard("delete", self.backend.delete(*keys))
        return removed if isinstance(removed, int) else 0

    async def invalidate(self, *parts: object) -> int:
        """Remove every key under ``parts`` (``invalidate("items")`` removes ``...:items:*``).

        Fills of those keys running meanwhile will not store their values.
        """
        prefix = self.key(*parts) + ":" if parts else self.prefix
        self._forget_fills(lambda inflight: inflight.startswith(prefix))
        removed = await self._guard("invalidate", self.backend.delete_prefix(prefix))
        return removed if isinstance(removed, int) else 0

    async def check(self) -> None:
        """Readiness: the backend answers (raises otherwise)."""
        await self.backend.ping()

    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        name: str = "default",
    ) -> T:
        """The cached value of ``key``, else ``await compute()`` once for all concurrent callers."""
        if not self.enabled:
            return await compute()
        value = await self._read(key, name)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fill(key, compute, ttl, name))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._fill_done, key))
        # Shielded: a caller that gives up does not cancel the fill the others wait for.
        return await asyncio.shield(task)

    def cached(self, ttl: float | None = None, *, name: str | None = None) -> Cached:
        """Decorator: cache an async or sync function's results by its arguments.

        The decorated function is always async. A sync function runs in a
        worker thread (it is presumably blocking, or it would not need a cache).
        Arguments become key parts, so they should be simple values; ``name``
        (default ``module.qualname``) is the key prefix and the metrics label.
        """
        return Cached(self, ttl, name)

    async def close(self) -> None:
        """Cancel fills still running (shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Internals

    async def _fill(
        self, key: str, compute: Callable[[], Awaitable[T]], ttl: float | None, name: str
    ) -> T:
        if self._bypassed():
            # The backend is failing: answer, store nothing.
            return (await self._compute(compute, name))[0]
        try:
            lease_holder = self.backend.fill_lease(key)
            lease = await lease_holder.__aenter__()
        except self.backend.errors as exc:
            self._failed("lock", exc)
            return (await self._compute(compute, name))[0]
        try:
            if self.backend.shared:
                # While this process waited for the lock another may have filled the key.
                cached = await self._read(key, name, count=False)
                if cached is not _MISSING:
                    return cached  # type: ignore[no-any-return]
            value, data = await self._compute(compute, name)
            if lease.won:
                stored = await self._guard("set", lease.store(data, self._ttl_for(value, ttl)))
                if stored is False and self._metrics is not None:
                    self._metrics.discarded.labels(name).inc()
            return value
        finally:
            try:
                await lease_holder.__aexit__(None, None, None)
            except self.backend.errors as exc:
                self._failed("unlock", exc)

    async def _compute(self, compute: Callable[[], Awaitable[T]], name: str) -> tuple[T, bytes]:
        # Encoded even when it will not be stored: a value JSON cannot hold is
        # refused the same way whether or not the backend is up.
        value = await compute()
        if self._metrics is not None:
            self._metrics.fills.labels(name).inc()
        return value, encode(value)

    def _forget_fills(self, matches: Callable[[str], bool]) -> None:
        # Callers from now on start a new fill; the old one's lease is revoked
        # by the backend, so its value is returned to its callers but not stored.
        for key in [key for key in self._inflight if matches(key)]:
            del self._inflight[key]

    def _fill_done(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            # Retrieved so that a failure nobody awaited any more is not reported
            # as "exception never retrieved"; every awaiter got it already.
            task.exception()

    async def _read(self, key: str, name: str, *, count: bool = True) -> Any:
        raw = await self._guard("get", self.backend.get(key))
        value: Any = _MISSING
        if isinstance(raw, bytes):
            try:
                value = json.loads(raw)
            except ValueError:
                logger.warning("cache key %s holds bytes that are not JSON; ignored", key)
        if count and self._metrics is not None:
            self._metrics.lookups.labels(name, "miss" if value is _MISSING else "hit").inc()
        return value

    def _ttl_for(self, value: object, ttl: float | None) -> float:
        if value is None:
            return self.negative_ttl
        return self.default_ttl if ttl is None else ttl

    def _bypassed(self) -> bool:
        return time.monotonic() < self._bypass_until

    async def _guard(self, operation: str, call: Coroutine[Any, Any, T]) -> T | object:
        """Run a backend call; on a backend error return ``_MISSING`` and bypass for a while."""
        if self._bypassed():
            call.close()
            return _MISSING
        try:
            result = await call
        except self.backend.errors as exc:
            self._failed(operation, exc)
            return _MISSING
        if self._failing:
            self._failing = False
            logger.info("cache backend answers again")
        return result

    def _failed(self, operation: str, exc: Exception) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(operation).inc()
        self._bypass_until = time.monotonic() + self._retry_interval
        if not self._failing:
            self._failing = True
            logger.warning(
                "cache backend failing (%s: %s); serving uncached for now",
                operation,
                f"{type(exc).__name__}: {exc}",
            )


class Cached:
    """The decorator returned by ``Cache.cached``."""

    def __init__(self, cache: Cache, ttl: float | None, name: str | None) -> None:
        """Remember the cache, TTL and name for the function to come."""
        self._cache = cache
        self._ttl = ttl
        self._name = name

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, func: Callable[P, T]) -> Callable[P, Awaitable[T]]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
        """Wrap ``func``; the wrapper awaits the cached (or freshly computed) result."""
        cache, ttl = self._cache, self._ttl
        name = self._name or f"{func.__module__}.{func.__qualname__}"
        is_async = inspect.iscoroutinefunction(func)

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            parts = [*args, *(f"{key}={_text(kwargs[key])}" for key in sorted(kwargs))]
            key = cache.key(name, *parts)

            async def compute() -> Any:
                if is_async:
                    return await func(*args, **kwargs)
                return await asyncio.to_thread(func, *args, **kwargs)

            return await cache.get_or_compute(key, compute, ttl=ttl, name=name)

        return wrapper


__all__ = ["Cache", "CacheMetrics", "Cached", "cache_key_part", "encode"]
