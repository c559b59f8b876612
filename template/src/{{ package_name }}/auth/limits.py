"""Per-client limits: concurrent connections and publish rate, keyed by the caller's id.

A client is a token subject (or an API key). The counts are per process: with
several workers or hosts a client may hold that many connections on each.
"""

import time
from collections import OrderedDict
from typing import Final

_MAX_TRACKED: Final = 100_000
"""Rate buckets kept at most; the least recently used one goes first."""


class ConnectionLimits:
    """Open WebSocket members and SSE streams per client."""

    __slots__ = ("_open", "limit")

    def __init__(self, limit: int) -> None:
        """``limit`` connections per client at once."""
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, client: str) -> bool:
        """Count one more connection for ``client``, unless it is at its limit."""
        count = self._open.get(client, 0)
        if count >= self.limit:
            return False
        self._open[client] = count + 1
        return True

    def release(self, client: str) -> None:
        """One connection of ``client`` ended."""
        count = self._open.get(client, 0) - 1
        if count > 0:
            self._open[client] = count
        else:
            self._open.pop(client, None)

    def count(self, client: str) -> int:
        """Connections ``client`` holds now."""
        return self._open.get(client, 0)


class PublishRates:
    """A token bucket per client: ``rate`` messages per second, bursts of ``burst``."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        """``rate`` 0 means no limit."""
        self.rate = rate
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        """Take one token from ``client``'s bucket if there is one."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, updated = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > _MAX_TRACKED:
            self._buckets.popitem(last=False)
        return allowed
