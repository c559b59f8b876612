"""In-process backend: an LRU with per-entry TTL (cachetools ``TLRUCache``).

Values are stored serialized, like in Redis, so a caller that mutates what it
got back cannot change what the next caller reads, and both backends accept
exactly the same values. Expired entries are dropped lazily by cachetools on
access and on insertion; nothing runs in the background.
"""

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cachetools import TLRUCache


def _expires_at(key: str, entry: tuple[bytes, float | None], now: float) -> float:
    # An entry without a TTL never expires (only LRU eviction removes it).
    ttl = entry[1]
    return math.inf if ttl is None else now + ttl


class MemoryBackend:
    """Bounded LRU with TTL, for one process; needs no server."""

    shared = False
    errors: tuple[type[Exception], ...] = ()

    def __init__(self, max_entries: int) -> None:
        """Keep at most ``max_entries`` entries, evicting the least recently used."""
        self._entries: TLRUCache[str, tuple[bytes, float | None]] = TLRUCache(
            maxsize=max_entries, ttu=_expires_at
        )

    def __len__(self) -> int:
        """Entries stored now (expired ones not yet dropped may count)."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None``."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: until evicted)."""
        self._entries[key] = (value, ttl)

    async def delete(self, *keys: str) -> int:
        """Remove these keys; return how many existed."""
        return sum(self._entries.pop(key, None) is not None for key in keys)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``."""
        doomed = [key for key in list(self._entries.keys()) if key.startswith(prefix)]
        return await self.delete(*doomed)

    async def ping(self) -> None:
        """Always answers: the memory is in this process."""

    @asynccontextmanager
    async def fill_lock(self, key: str) -> AsyncIterator[bool]:
        """No other process shares this memory: the in-process single flight suffices."""
        yield True
