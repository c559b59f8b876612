"""Fan-out to connected clients, each with a bounded queue.

A publish encodes its event once; fan-out appends those same bytes to every
matching client's queue without awaiting anything, so a slow client can never
hold up the others. A client whose queue is full is evicted: its stream is
cancelled at once, even while it is stuck writing to a socket nobody reads.
"""

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

import anyio

from .metrics import EventMetrics
from .model import Event, EventId, check_type, encode_data, resync_frame

logger = logging.getLogger(__name__)

TopicFilter = Container[str] | None
"""The event types a client receives: ``None`` for all, else asked with ``type in topics``
(a set of names, or the selectors of a token's ``subscribe`` grant)."""


class EventTooLarge(ValueError):
    """The event's data is over the configured size limit."""


class HistoryUnavailable(Exception):
    """The history store (Redis) did not answer."""


class Subscriber:
    """One connected client: its topics and its queue of encoded frames."""

    __slots__ = ("_pending", "_wake", "cancel_scope", "ended", "evicted", "limit", "topics")

    def __init__(self, topics: TopicFilter, limit: int) -> None:
        """A client receiving ``topics`` (all when ``None``), ``limit`` frames queued at most."""
        self.topics = topics
        self.limit = limit
        self.evicted = False
        self.ended = False
        self.cancel_scope: anyio.CancelScope | None = None
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; ``False`` when the queue is full."""
        if len(self._pending) >= self.limit:
            return False
        self._pending.append(frame)
        self._wake.set()
        return True

    async def take(self) -> list[bytes]:
        """Every queued frame, waiting until there is one; ``[]`` once evicted or ended."""
        while not self._pending and not self.evicted and not self.ended:
            self._wake.clear()
            await self._wake.wait()
        if self.evicted:
            return []
        frames, self._pending = self._pending, []
        return frames

    def end(self) -> None:
        """End this client's stream cleanly once its queued frames are sent."""
        self.ended = True
        self._wake.set()

    def evict(self) -> None:
        """Stop this client's stream, wherever it is waiting."""
        self.evicted = True
        self._pending = []
        self._wake.set()
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()


@dataclass(slots=True)
class Subscription:
    """A new client: frames to send first (replay or resync), then its live queue."""

    subscriber: Subscriber
    opening: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class HistoryPage:
    """Events after an id; ``gap`` when history no longer reaches that id."""

    epoch: str
    events: list[Event]
    gap: bool


class EventHub(ABC):
    """Publish events, keep their history, stream them to subscribers.

    ``app.state.events`` is one of these; ``publish`` is the one call other
    components need.
    """

    def __init__(self, metrics: EventMetrics, client_queue_size: int, max_event_bytes: int) -> None:
        """Shared state of every backend."""
        self.metrics = metrics
        self._client_queue_size = client_queue_size
        self._max_event_bytes = max_event_bytes
        self._subscribers: set[Subscriber] = set()
        self._ending = False
        self._all_ended = asyncio.Event()

    @property
    def clients(self) -> int:
        """Clients connected to this process now."""
        return len(self._subscribers)

    async def publish(self, event_type: str, data: Any) -> str:
        """Publish an event to every client (and history); return its id.

        ``ValueError`` for an invalid type or data that is not JSON (``EventTooLarge``
        when it is too large); ``HistoryUnavailable`` when Redis does not answer.
        """
        data_json = encode_data(data)
        if len(data_json.encode()) > self._max_event_bytes:
            raise EventTooLarge(f"event data is larger than {self._max_event_bytes} bytes")
        event_id = await self._append(check_type(event_type), data_json)
        self.metrics.published.inc()
        return event_id

    @abstractmethod
    async def _append(self, event_type: str, data_json: str) -> str:
        """Store the event in history (and deliver it); return its id."""

    @abstractmethod
    async def subscribe(self, last_event_id: EventId | None, topics: TopicFilter) -> Subscription:
        """Register a client; replay what it missed after ``last_event_id``."""

    @abstractmethod
    async def history(self, after: EventId | None, limit: int) -> HistoryPage:
        """Up to ``limit`` events after ``after`` (the oldest kept when ``None``)."""

    def _new_subscriber(self, topics: TopicFilter) -> Subscriber:
        subscriber = Subscriber(topics, self._client_queue_size)
        self._subscribers.add(subscriber)
        self.metrics.clients.inc()
        if self._ending:
            subscriber.end()
        return subscriber

    async def end_streams(self) -> None:
        """End every client's stream after what is queued (server shutting down).

        Returns once they have ended; a stream opened from now on ends after its
        opening frames. Clients reconnect (to another instance) with ``Last-Event-ID``.
        """
        self._ending = True
        for subscriber in self._subscribers:
            subscriber.end()
        logger.info("ending event streams", extra={"clients": len(self._subscribers)})
        if self._subscribers:
            await self._all_ended.wait()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a client (idempotent: disconnect and eviction may both call it)."""
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self.metrics.clients.dec()
            if self._ending and not self._subscribers:
                self._all_ended.set()

    def _fan_out(self, event: Event) -> None:
        # The hot path: no await, no per-client encoding.
        frame = event.frame
        overflowing = []
        for subscriber in self._subscribers:
            topics = subscriber.topics
            if (topics is None or event.type in topics) and not subscriber.offer(frame):
                overflowing.append(subscriber)
        for subscriber in overflowing:
            self._evict(subscriber)

    def _fan_out_frame(self, frame: bytes) -> None:
        overflowing = [s for s in self._subscribers if not s.offer(frame)]
        for subscriber in overflowing:
            self._evict(subscriber)

    def _evict(self, subscriber: Subscriber) -> None:
        self.unsubscribe(subscriber)
        subscriber.evict()
        self.metrics.evictions.inc()
        logger.warning("evicted a slow SSE client (queue of %d events full)", subscriber.limit)

    def _opening(
        self,
        subscriber: Subscriber,
        last_event_id: EventId | None,
        replay: list[Event],
        reason: str,
        resume_id: str,
    ) -> Subscription:
        """The frames a new client gets first.

        ``reason`` is ``ok`` when ``replay`` is exactly what the client missed.
        Otherwise history cannot tell (``reason`` says why) and ``replay`` is the
        history that exists, from its oldest event: the client gets one resync
        event (id ``resume_id``, just before that history), then that history,
        rather than only what is published from now on.
        """
        if last_event_id is None:
            return Subscription(subscriber)
        topics = subscriber.topics
        frames = [e.frame for e in replay if topics is None or e.type in topics]
        if reason == "ok" and not last_event_id.is_malformed:
            self.metrics.replays.inc()
            return Subscription(subscriber, frames)
        self.metrics.resyncs.inc()
        if last_event_id.is_malformed:
            reason = "malformed"
        return Subscription(
            subscriber, [resync_frame(resume_id, reason, str(last_event_id)), *frames]
        )
