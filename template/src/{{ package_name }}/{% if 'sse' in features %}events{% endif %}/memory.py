"""Single-process backend: history in a bounded ``deque`` of this process.

Positions are consecutive integers, so the event after a client's id is found
by arithmetic, and registering a client and copying its replay happen in one
step of the event loop: nothing can be published in between, so the seam
between replay and live has no gap and no duplicate.
"""

import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import islice

from ..observability.metrics import Metrics
from ..settings import Settings
from .hub import EventHub, HistoryPage, Subscription, TopicFilter
from .metrics import EventMetrics
from .model import Event, EventId, make_event

logger = logging.getLogger(__name__)


class MemoryEventHub(EventHub):
    """Events and their history in this process; a restart starts a new epoch."""

    def __init__(
        self, metrics: EventMetrics, history_size: int, client_queue_size: int, max_event_bytes: int
    ) -> None:
        """A hub keeping the last ``history_size`` events."""
        super().__init__(metrics, client_queue_size, max_event_bytes)
        self.epoch = secrets.token_hex(6)
        self._history: deque[Event] = deque(maxlen=history_size)
        self._last = 0

    async def _append(self, event_type: str, data_json: str) -> str:
        self._last += 1
        event = make_event(f"{self.epoch}.{self._last}", event_type, data_json)
        self._history.append(event)
        self._fan_out(event)
        return event.id

    def _after(self, after: EventId) -> tuple[int, str]:
        """Index in history of the event after ``after`` (or -1) and why."""
        if after.epoch != self.epoch:
            return (-1, "epoch")
        if not after.position.isdigit() or int(after.position) > self._last:
            return (-1, "unknown")
        first = self._last - len(self._history) + 1
        position = int(after.position)
        if position < first - 1:
            return (-1, "trimmed")
        return (position - first + 1, "ok")

    async def subscribe(self, last_event_id: EventId | None, topics: TopicFilter) -> Subscription:
        """Register a client and copy its replay in the same loop step (no await)."""
        subscriber = self._new_subscriber(topics)
        replay: list[Event] = []
        reason = "ok"
        if last_event_id is not None:
            index, reason = self._after(last_event_id)
            # History cannot tell what was missed: all of it, from the oldest.
            replay = list(islice(self._history, max(index, 0), None))
        before_oldest = f"{self.epoch}.{self._last - len(self._history)}"
        return self._opening(subscriber, last_event_id, replay, reason, before_oldest)

    async def history(self, after: EventId | None, limit: int) -> HistoryPage:
        """Up to ``limit`` events after ``after``; from the oldest kept on a gap."""
        index, gap = 0, after is not None
        if after is not None:
            found, _ = self._after(after)
            if found >= 0:
                index, gap = found, False
        return HistoryPage(self.epoch, list(islice(self._history, index, index + limit)), gap)


@asynccontextmanager
async def open_memory_events(settings: Settings, metrics: Metrics) -> AsyncIterator[EventHub]:
    """The in-process event hub for the app's lifespan."""
    hub = MemoryEventHub(
        EventMetrics(metrics),
        history_size=settings.sse_history_size,
        client_queue_size=settings.sse_client_queue_size,
        max_event_bytes=settings.sse_max_event_bytes,
    )
    logger.info("sse hub started", extra={"epoch": hub.epoch, "backend": "memory"})
    yield hub
