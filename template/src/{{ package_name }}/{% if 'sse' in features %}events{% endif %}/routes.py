"""HTTP endpoints: ``GET /sse/stream``, ``POST /sse/events``, ``GET /sse/events``."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from ..settings import Settings
from .hub import EventHub, EventTooLarge, HistoryUnavailable, Subscriber
from .model import MAX_ID_LENGTH, NAME_PATTERN, EventId, parse_topics, retry_frame

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientStream(EventSourceResponse):
    """sse-starlette's response (keep-alive comments, prompt disconnect, drain on
    shutdown) inside a cancel scope the hub cancels when it evicts the client,
    so an evicted stream ends even while blocked writing to a full socket."""

    def __init__(self, hub: EventHub, subscriber: Subscriber, opening: list[bytes], ping: float):
        """Stream ``opening`` then the subscriber's queue."""
        self._hub = hub
        self._subscriber = subscriber
        super().__init__(
            _frames(hub, subscriber, opening),
            headers=_STREAM_HEADERS,
            ping=ping,
            sep="\n",
            ping_message_factory=_ping,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream; release the subscriber however it ends."""
        try:
            with anyio.CancelScope() as cancel_scope:
                self._subscriber.cancel_scope = cancel_scope
                if self._subscriber.evicted:
                    cancel_scope.cancel()
                await super().__call__(scope, receive, send)
        finally:
            self._hub.unsubscribe(self._subscriber)


def _ping() -> ServerSentEvent:
    # A comment line: EventSource ignores it, proxies see traffic.
    return ServerSentEvent(comment="ping")


async def _frames(
    hub: EventHub, subscriber: Subscriber, opening: list[bytes]
) -> AsyncIterator[bytes]:
    try:
        yield b"".join(opening)
        hub.metrics.delivered.inc(len(opening) - 1)
        while True:
            frames = await subscriber.take()
            if not frames:
                return
            # Everything queued goes out in one write.
            yield frames[0] if len(frames) == 1 else b"".join(frames)
            hub.metrics.delivered.inc(len(frames))
    finally:
        hub.unsubscribe(subscriber)


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


def _unavailable(exc: HistoryUnavailable) -> HTTPException:
    return HTTPException(status_code=503, detail=f"event history unavailable: {exc}")


def _parse_id(text: str | None, name: str) -> EventId | None:
    if text is None or not text.strip():
        return None
    try:
        return EventId.parse(text)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"{name}: {exc}") from None


@router.get(
    "/sse/stream",
    summary="Event stream",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        422: {"description": "A malformed event id or topics list."},
        503: {"description": "The history store does not answer."},
    },
)
async def stream(
    request: Request,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=MAX_ID_LENGTH)
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=MAX_ID_LENGTH, description="For clients that cannot set headers."),
    ] = None,
    topics: Annotated[
        str | None, Query(max_length=2200, description="Comma-separated event types.")
    ] = None,
) -> Response:
    """``text/event-stream``: replay after ``Last-Event-ID``, then live events."""
    settings: Settings = request.app.state.settings
    after = _parse_id(last_event_id_header, "Last-Event-ID") or _parse_id(
        last_event_id, "last_event_id"
    )
    try:
        wanted = parse_topics(topics)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"topics: {exc}") from None
    hub = _hub(request)
    try:
        subscription = await hub.subscribe(after, wanted)
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    opening = [retry_frame(settings.sse_retry_ms), *subscription.opening]
    return ClientStream(hub, subscription.subscriber, opening, ping=settings.sse_heartbeat_interval)


class PublishRequest(BaseModel):
    """An event to publish."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=NAME_PATTERN, description="Event type (the `event:` line).")
    data: Any = Field(default=None, description="Any JSON value (the `data:` line).")


class Published(BaseModel):
    """The id the event got."""

    id: str


@router.post(
    "/sse/events",
    status_code=202,
    summary="Publish an event",
    responses={
        413: {"description": "The data is larger than the configured limit."},
        422: {"description": "Invalid type or data."},
        503: {"description": "The history store does not answer."},
    },
)
async def publish(body: PublishRequest, request: Request) -> Published:
    """Publish to every connected client and to history; 202 with the event's id."""
    try:
        event_id = await _hub(request).publish(body.type, body.data)
    except EventTooLarge as exc:
        raise HTTPException(status_code=413, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    return Published(id=event_id)


@router.get(
    "/sse/events",
    summary="Event history",
    responses={
        422: {"description": "A malformed id or limit."},
        503: {"description": "The history store does not answer."},
    },
)
async def history(
    request: Request,
    after: Annotated[
        str | None, Query(max_length=MAX_ID_LENGTH, description="Events after this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """History as JSON; ``gap`` is true when it no longer reaches ``after``."""
    try:
        page = await _hub(request).history(_parse_id(after, "after"), limit)
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    return {"epoch": page.epoch, "gap": page.gap, "events": [e.as_dict() for e in page.events]}
