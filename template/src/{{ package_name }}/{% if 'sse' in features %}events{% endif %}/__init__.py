"""Server-Sent Events: ids, exact replay from ``Last-Event-ID``, heartbeats, slow-client eviction.

``hub.py`` holds the fan-out and the per-client queues; ``memory.py`` keeps the
history in this process (a bounded ``deque``); ``redis_stream.py``, with Redis
scale-out, keeps it in a capped Redis Stream that every worker also reads for
live events. ``routes.py`` serves ``/sse/stream`` and ``/sse/events``.
"""

from .hub import EventHub
from .model import EventId
from .routes import router

__all__ = ["EventHub", "EventId", "router"]
