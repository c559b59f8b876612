"""HTTP endpoints: ``GET /sse/stream``, ``POST /sse/events``, ``GET /sse/events``."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from ..auth.http import BrowserCaller, Caller, KeyHolder, forbidden
from ..auth.policy import Auth, Principal
from ..settings import Settings
from .hub import EventHub, EventTooLarge, HistoryUnavailable, Subscriber, TopicFilter
from .model import ID_PATTERN, MAX_ID_LENGTH, NAME_PATTERN, EventId, parse_topics, retry_frame

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientStream(Response):
    """One client's event stream, written by the request's own task.

    The opening frames (retry hint, replay or resync), then every frame the
    hub queues for the subscriber, everything queued in one write, and a
    ``: ping`` comment after ``ping`` seconds without one. One small task
    waits for the client's disconnect, so it is noticed at once, also while
    no events flow. The hub ends streams on shutdown (``end_streams``: what is
    queued goes out first) and evicts a client by cancelling this cancel
    scope, which ends the response even while it is blocked writing to a full
    socket.

    This replaced sse-starlette's ``EventSourceResponse``, which ran four
    tasks in an anyio task group for every stream (stream, ping, shutdown
    signal, disconnect): most of an idle stream's memory (``bench/scale.py
    --breakdown sse``, ``docs/benchmarks.md``).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: EventHub,
        subscriber: Subscriber,
        opening: list[bytes],
        ping: float,
        on_close: Callable[[], None],
    ) -> None:
        """Stream ``opening`` then the subscriber's queue; ``on_close`` runs once it ends."""
        self.status_code = 200
        self.background = None
        self.init_headers(_STREAM_HEADERS)
        self._hub = hub
        self._subscriber = subscriber
        self._opening = opening
        self._ping = ping
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream; release the subscriber however it ends."""
        subscriber = self._subscriber
        listener = asyncio.create_task(_until_disconnect(receive, subscriber), name="sse-client")
        try:
            with anyio.CancelScope() as cancel_scope:
                subscriber.cancel_scope = cancel_scope
                if subscriber.evicted:
                    cancel_scope.cancel()
                await self._stream(scope, send)
        except OSError:
            pass  # the client went away mid-write (uvicorn's ClientDisconnected)
        finally:
            listener.cancel()
            self._hub.unsubscribe(subscriber)
            self._on_close()

    async def _stream(self, scope: Scope, send: Send) -> None:
        hub, subscriber = self._hub, self._subscriber
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        await send(start)
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        opening = b"".join(self._opening)
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        hub.metrics.delivered.inc(len(self._opening) - 1)
        ping = self._ping or None
        while True:
            try:
                async with asyncio.timeout(ping):
                    frames = await subscriber.take()
            except TimeoutError:
                # A comment line: EventSource ignores it, proxies see traffic.
                await send({"type": "http.response.body", "body": _PING, "more_body": True})
                continue
            if not frames:
                break
            # Everything queued goes out in one write.
            body = frames[0] if len(frames) == 1 else b"".join(frames)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            hub.metrics.delivered.inc(len(frames))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


_PING = b": ping\n\n"


async def _until_disconnect(receive: Receive, subscriber: Subscriber) -> None:
    # A receive that fails says the same as a disconnect: the client is gone.
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    subscriber.end()


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


def _unavailable(exc: HistoryUnavailable) -> HTTPException:
    return HTTPException(status_code=503, detail=f"event history unavailable: {exc}")


def _reconnect_id(text: str | None) -> EventId | None:
    """A reconnecting client's id; one that does not parse still gets a 200 stream.

    ``EventSource`` gives up for good on any answer but a 200 stream, so a bad
    id is answered with a resync event (reason ``malformed``), never a 4xx.
    """
    if text is None or not text.strip():
        return None
    try:
        return EventId.parse(text)
    except ValueError:
        return EventId.malformed(text)


def _parse_id(text: str | None, name: str) -> EventId | None:
    if text is None or not text.strip():
        return None
    try:
        return EventId.parse(text)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"{name}: {exc}") from None


def _readable(request: Request, caller: Principal, wanted: frozenset[str] | None) -> TopicFilter:
    """What ``caller`` receives: the types it asked for, all of them granted, or its grant."""
    granted = caller.grants.subscribe
    if wanted is not None:
        refused = sorted(topic for topic in wanted if topic not in granted)
        if refused:
            raise forbidden(request, f"the token does not grant reading {', '.join(refused)}")
        return wanted
    if not granted:
        raise forbidden(request, "the token grants no event type")
    if granted.everything:
        return None
    # Exact names filter as a frozenset: fan-out asks ``type in topics`` for
    # every event and client, and a set answers that in C.
    return granted.exact if granted.exact_only else granted


def _connection_slot(request: Request, caller: Principal) -> Callable[[], None]:
    """Count the stream against its client's limit; the callback that gives the slot back."""
    auth: Auth = request.app.state.auth
    if caller.is_operator:
        return _nothing
    if not auth.connections.acquire(caller.id):
        raise HTTPException(
            status_code=429, detail=auth.deny("limited", "too many connections").detail
        )

    def release() -> None:
        auth.connections.release(caller.id)

    return release


def _nothing() -> None:
    pass


def _end_at_expiry(caller: Principal, subscriber: Subscriber) -> asyncio.TimerHandle | None:
    # The stream ends cleanly when the token expires; the client reconnects with
    # a fresh token (the same URL gets 401 once it has expired).
    if caller.expires_at is None:
        return None
    delay = max(0.0, caller.expires_at - time.time())
    return asyncio.get_running_loop().call_later(delay, subscriber.end)


@router.get(
    "/sse/stream",
    summary="Event stream",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
        401: {"description": "No valid API key or token."},
        403: {"description": "A browser origin not allowed, or event types not granted."},
        422: {"description": "A malformed topics list."},
        429: {"description": "This token's subject holds too many connections."},
        503: {"description": "The history store does not answer."},
    },
)
async def stream(
    request: Request,
    caller: BrowserCaller,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            description=(
                "For clients that cannot set headers. An id that does not parse or "
                "no longer exists gets a resync event, never an error."
            )
        ),
    ] = None,
    topics: Annotated[
        str | None, Query(max_length=2200, description="Comma-separated event types.")
    ] = None,
    access_token: Annotated[
        str | None,
        Query(description="A token, for clients that cannot set headers (EventSource)."),
    ] = None,
) -> Response:
    """``text/event-stream``: replay after ``Last-Event-ID``, then live events.

    Only the event types the caller's ``subscribe`` grant covers are sent,
    replays included; ``topics`` narrows them further.
    """
    settings: Settings = request.app.state.settings
    after = _reconnect_id(last_event_id_header) or _reconnect_id(last_event_id)
    try:
        wanted = parse_topics(topics)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"topics: {exc}") from None
    readable = _readable(request, caller, wanted)
    release = _connection_slot(request, caller)
    hub = _hub(request)
    try:
        subscription = await hub.subscribe(after, readable)
    except HistoryUnavailable as exc:
        release()
        raise _unavailable(exc) from None
    expiry = _end_at_expiry(caller, subscription.subscriber)

    def on_close() -> None:
        if expiry is not None:
            expiry.cancel()
        release()

    opening = [retry_frame(settings.sse_retry_ms), *subscription.opening]
    return ClientStream(
        hub, subscription.subscriber, opening, settings.sse_heartbeat_interval, on_close
    )


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
        401: {"description": "No valid API key."},
        413: {"description": "The data is larger than the configured limit."},
        422: {"description": "Invalid type or data."},
        503: {"description": "The history store does not answer."},
    },
)
async def publish(body: PublishRequest, request: Request, _key: KeyHolder) -> Published:
    """Publish to every connected client and to history; 202 with the event's id (API key)."""
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
        401: {"description": "No valid API key or token."},
        422: {"description": "A malformed id or limit."},
        503: {"description": "The history store does not answer."},
    },
)
async def history(
    request: Request,
    caller: Caller,
    after: Annotated[
        str | None,
        Query(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="Events after this id."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """History as JSON; ``gap`` is true when it no longer reaches ``after``.

    Events the caller's ``subscribe`` grant does not cover are left out.
    """
    try:
        page = await _hub(request).history(_parse_id(after, "after"), limit)
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    granted = caller.grants.subscribe
    events = [e.as_dict() for e in page.events if e.type in granted]
    return {"epoch": page.epoch, "gap": page.gap, "events": events}
