"""What a cache backend provides: bytes in, bytes out, prefix deletes, fill leases."""

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class FillLease(Protocol):
    """The right to store the value one fill computes for one key.

    A delete or an invalidation that reaches the key while the value is being
    computed revokes the lease, so a value read from the database before a
    write committed can never land in the cache after that write's
    invalidation (the cache-aside stale-write race).
    """

    won: bool
    """False when waiting for another process's fill timed out: compute, but do not store."""

    async def store(self, value: bytes, ttl: float | None) -> bool:
        """Store ``value`` unless the lease was revoked; return whether it was stored."""
        ...


class Backend(Protocol):
    """Storage of serialized (JSON) values under string keys.

    ``shared`` backends are seen by several processes, so the cache also takes
    a cross-process lock before computing a missing value. ``errors`` are the
    exceptions that mean "the backend is unreachable": the cache then answers
    without it instead of failing the caller.
    """

    shared: bool
    errors: tuple[type[Exception], ...]

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None`` when the key is missing or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: until evicted); revokes fill leases."""
        ...

    async def delete(self, *keys: str) -> int:
        """Remove these keys and revoke their fill leases; return how many keys existed."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix`` and revoke their leases; return how many."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise otherwise."""
        ...

    def fill_lease(self, key: str) -> AbstractAsyncContextManager[FillLease]:
        """Hold the lease that lets one process compute and store ``key`` (a lock when shared)."""
        ...
