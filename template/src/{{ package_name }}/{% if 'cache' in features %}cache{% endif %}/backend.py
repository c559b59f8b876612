"""What a cache backend provides: bytes in, bytes out, prefix deletes, a fill lock."""

from contextlib import AbstractAsyncContextManager
from typing import Protocol


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
        """Store ``value`` for ``ttl`` seconds (``None``: until evicted)."""
        ...

    async def delete(self, *keys: str) -> int:
        """Remove these keys; return how many existed."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise otherwise."""
        ...

    def fill_lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold the lock that lets one process compute ``key``; yields whether it was won."""
        ...
