"""In-process backend: an LRU with per-entry TTL (cachetools ``TLRUCache``).

Values are stored serialized, like in Redis, so a caller that mutates what it
got back cannot change what the next caller reads, and both backends accept
exactly the same values. Expired entries are dropped lazily by cachetools on
access and on insertion; nothing runs in the background. A fill's lease is
revoked by any write, delete or prefix delete of its key, so a value computed
before the key was invalidated is never stored.
"""

import math
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager

from cachetools import TLRUCache

Entry = tuple[bytes, float | None]
"""A stored value and its TTL."""


def _expires_at(key: str, entry: Entry, now: float) -> float:
    # An entry without a TTL never expires (only LRU eviction removes it).
    ttl = entry[1]
    return math.inf if ttl is None else now + ttl


class MemoryLease:
    """The right to store one fill's value; revoked when the key changes meanwhile."""

    won = True

    def __init__(self, entries: MutableMapping[str, Entry], key: str) -> None:
        """A lease on ``key`` of ``entries``."""
        self._entries = entries
        self._key = key
        self.revoked = False

    async def store(self, value: bytes, ttl: float | None) -> bool:
        """Store unless revoked; whether it was stored."""
        if self.revoked:
            return False
        self._entries[self._key] = (value, ttl)
        return True


class MemoryBackend:
    """Bounded LRU with TTL, for one process; needs no server."""

    shared = False
    errors: tuple[type[Exception], ...] = ()

    def __init__(self, max_entries: int) -> None:
        """Keep at most ``max_entries`` entries, evicting the least recently used."""
        self._entries: TLRUCache[str, Entry] = TLRUCache(maxsize=max_entries, ttu=_expires_at)
        self._leases: dict[str, MemoryLease] = {}

    def __len__(self) -> int:
        """Entries stored now (expired ones not yet dropped may count)."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None``."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: until evicted); revokes a fill's lease."""
        self._revoke(key)
        self._entries[key] = (value, ttl)

    async def delete(self, *keys: str) -> int:
        """Remove these keys and revoke their leases; return how many existed."""
        for key in keys:
            self._revoke(key)
        return sum(self._entries.pop(key, None) is not None for key in keys)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` and revoke their leases."""
        for key in [key for key in self._leases if key.startswith(prefix)]:
            self._revoke(key)
        doomed = [key for key in list(self._entries.keys()) if key.startswith(prefix)]
        return await self.delete(*doomed)

    async def ping(self) -> None:
        """Always answers: the memory is in this process."""

    @asynccontextmanager
    async def fill_lease(self, key: str) -> AsyncIterator[MemoryLease]:
        """A lease on ``key``; no lock, as no other process shares this memory."""
        lease = self._leases[key] = MemoryLease(self._entries, key)
        try:
            yield lease
        finally:
            if self._leases.get(key) is lease:
                del self._leases[key]

    def _revoke(self, key: str) -> None:
        lease = self._leases.pop(key, None)
        if lease is not None:
            lease.revoked = True
