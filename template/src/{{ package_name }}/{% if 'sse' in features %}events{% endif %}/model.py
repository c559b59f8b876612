"""Event ids and the wire format of one event.

An id is ``<epoch>.<position>``. The epoch names one history: it changes when
the history starts again (a restart of a single process, a wiped Redis
stream), so an id from an older history is recognised instead of being read
as a position in the new one. The position increases within an epoch: a
counter in memory, the Redis Stream entry id (``<ms>-<seq>``) with Redis.
"""

import json
import re
from dataclasses import dataclass
from typing import Any, Final

NAME_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,64}$"
"""Event types (and the topics a client filters on)."""

RESYNC_EVENT: Final = "resync"
"""Sent when history cannot tell what the client missed after its id (gone, from an
older history, or an id that does not parse); the events of the history that
exists follow it, from the oldest."""

RESERVED_TYPES: Final = frozenset({RESYNC_EVENT})

_NAME = re.compile(NAME_PATTERN)
ID_PATTERN: Final = r"^([0-9a-f]{1,32})\.(\d{1,20}(?:-\d{1,20})?)$"
"""Event ids: ``<epoch>.<position>``, the position ``<n>`` or ``<ms>-<seq>`` (Redis)."""
_ID = re.compile(ID_PATTERN)
MAX_ID_LENGTH: Final = 80


@dataclass(frozen=True, slots=True)
class EventId:
    """A parsed event id: which history (``epoch``) and where in it (``position``)."""

    epoch: str
    position: str

    @classmethod
    def malformed(cls, text: str) -> "EventId":
        """An id a client sent that does not parse: it gets a resync, never an error."""
        return cls("", text[:MAX_ID_LENGTH])

    @property
    def is_malformed(self) -> bool:
        """Whether this stands for an id that did not parse (a parsed one has an epoch)."""
        return not self.epoch

    @classmethod
    def parse(cls, text: str) -> "EventId":
        """Parse ``<epoch>.<position>``; ``ValueError`` names the expected form."""
        match = _ID.match(text.strip()) if len(text) <= MAX_ID_LENGTH else None
        if match is None:
            raise ValueError(
                "an event id looks like <epoch>.<position> (for example 3f2a9c1d.42), "
                f"got {text[:MAX_ID_LENGTH]!r}"
            )
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{self.epoch}.{self.position}" if self.epoch else self.position


@dataclass(frozen=True, slots=True)
class Event:
    """One published event, encoded once for every client that receives it."""

    id: str
    type: str
    data_json: str
    frame: bytes

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON for the history endpoint."""
        return {"id": self.id, "type": self.type, "data": json.loads(self.data_json)}


def check_type(event_type: str) -> str:
    """The event type if it is a valid, unreserved name; ``ValueError`` otherwise."""
    if not isinstance(event_type, str) or not _NAME.match(event_type):
        raise ValueError(f"event type must match {NAME_PATTERN}, got {event_type!r}")
    if event_type in RESERVED_TYPES:
        raise ValueError(f"event type {event_type!r} is reserved")
    return event_type


def encode_data(data: Any) -> str:
    """Compact JSON on one line (JSON escapes every line break inside strings)."""
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event data is not JSON-serialisable: {exc}") from exc


def make_event(event_id: str, event_type: str, data_json: str) -> Event:
    """Build the event and its SSE frame (``id``, ``event`` and ``data`` lines)."""
    frame = f"id: {event_id}\nevent: {event_type}\ndata: {data_json}\n\n".encode()
    return Event(event_id, event_type, data_json, frame)


def resync_frame(resume_id: str, reason: str, last_event_id: str | None) -> bytes:
    """The explicit "you missed events we no longer have" event.

    The oldest events still in history follow it, so its id is the position
    just before them: a client that reconnects after the resync but before
    those events arrived gets them replayed, not skipped.
    """
    data = encode_data({"reason": reason, "last_event_id": last_event_id, "current_id": resume_id})
    return f"id: {resume_id}\nevent: {RESYNC_EVENT}\ndata: {data}\n\n".encode()


def retry_frame(retry_ms: int) -> bytes:
    """The reconnection delay hint; a block without data dispatches no event."""
    return f"retry: {retry_ms}\n\n".encode()


def parse_topics(text: str | None) -> frozenset[str] | None:
    """``a,b`` -> the set of event types a client wants; ``None`` for all."""
    if text is None or not text.strip():
        return None
    topics = frozenset(part.strip() for part in text.split(",") if part.strip())
    bad = sorted(topic for topic in topics if not _NAME.match(topic))
    if bad or len(topics) > 32:
        raise ValueError(f"a comma-separated list of up to 32 names matching {NAME_PATTERN}")
    return topics
