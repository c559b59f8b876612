"""``WS /ws/{room}``, ``POST /rooms/{room}/messages`` and ``GET /rooms/{room}``."""

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, WebSocket
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from .manager import (
    OVERFLOW,
    Member,
    MessageTooLargeError,
    RoomFullError,
    Rooms,
    send_message,
)
from .metrics import RoomMetrics
from .protocol import (
    CLOSE_IDLE,
    CLOSE_ROOM_FULL,
    ROOM_NAME_PATTERN,
    FrameError,
    error_frame,
    is_valid_room,
    parse_client_frame,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["rooms"])

RAW_SEND_KEY = "rooms.raw_send"


class RawSendMiddleware:
    """Record the server's ASGI ``send`` of each WebSocket connection in its scope.

    Pure ASGI; it changes nothing else. Broadcast frames then go straight to
    the server instead of through the framework's per-message checks and
    wrappers (``bench/rooms.py`` measures the difference).
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the connection on, with its send recorded for WebSockets."""
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


RoomName = Annotated[
    str, Path(pattern=ROOM_NAME_PATTERN, description="1 to 64 of A-Z a-z 0-9 _ . -")
]


class PublishRequest(BaseModel):
    """Body of ``POST /rooms/{room}/messages``."""

    data: Any


class RoomInfo(BaseModel):
    """Members of a room: on every worker (``scope: cluster``) or on this one (``local``)."""

    room: str
    members: int
    local_members: int
    scope: Literal["cluster", "local"]


class RateLimiter:
    """Token bucket: ``rate`` messages per second on average, bursts of ``burst``."""

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int) -> None:
        """A full bucket."""
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@router.websocket("/ws/{room}")
async def room_socket(websocket: WebSocket, room: str) -> None:
    """Join ``room``: every message published to it arrives here, and what you send is published."""
    if not is_valid_room(room):
        # Refused at the handshake: a close before accept is an HTTP 403.
        await websocket.close(1008, f"invalid room name; it must match {ROOM_NAME_PATTERN}")
        return
    rooms: Rooms = websocket.app.state.rooms
    settings = websocket.app.state.settings
    await websocket.accept()
    try:
        # The server's own ASGI send when RawSendMiddleware recorded it: the
        # framework's wrappers around it cost more than the write itself.
        member = rooms.join(room, websocket.scope.get(RAW_SEND_KEY, websocket.send))
    except RoomFullError:
        await websocket.close(CLOSE_ROOM_FULL, "Room is full")
        return
    assert member.writer is not None
    reader = asyncio.create_task(_read_loop(websocket, member, rooms), name=f"room-reader-{room}")
    try:
        await asyncio.wait((member.writer, reader), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Every way out passes here: the member leaves, both tasks end.
        rooms.leave(member)
        for task in (member.writer, reader):
            task.cancel()
        for task in (member.writer, reader):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if member.close_code is not None:
        await _close(
            websocket, member.close_code, member.close_reason, settings.rooms_close_timeout
        )
    rooms.closed(member)


async def _read_loop(websocket: WebSocket, member: Member, rooms: Rooms) -> None:
    settings = websocket.app.state.settings
    metrics: RoomMetrics = websocket.app.state.room_metrics
    limiter = (
        RateLimiter(settings.rooms_rate_limit, settings.rooms_rate_burst)
        if settings.rooms_rate_limit > 0
        else None
    )
    idle = settings.rooms_idle_timeout or None
    while True:
        try:
            async with asyncio.timeout(idle):
                message = await websocket.receive()
        except TimeoutError:
            member.stop(CLOSE_IDLE, "Idle timeout")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        problem: FrameError | None = None
        if text is None:
            problem = FrameError("binary_frame", "send JSON in text frames")
        elif limiter is not None and not limiter.allow():
            problem = FrameError("rate_limited", "too many messages; slow down")
        else:
            try:
                frame = parse_client_frame(text)
                await rooms.publish(member.room, frame.data)
            except FrameError as error:
                problem = error
            except MessageTooLargeError as error:
                problem = FrameError("too_large", str(error))
        if problem is not None:
            metrics.rejected.labels(problem.code).inc()
            # Through the member's queue: the writer stays the only sender.
            reply = send_message(error_frame(problem.code, problem.detail))
            if member.offer(reply) == OVERFLOW:
                rooms.evict(member, "queue_full")


async def _close(websocket: WebSocket, code: int, reason: str, wait: float) -> None:
    # A stuck client cannot take the close frame either; after ``wait`` seconds the
    # handler returns and uvicorn closes the transport.
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    try:
        async with asyncio.timeout(wait):
            await websocket.close(code, reason)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        logger.info("close frame not delivered", extra={"code": code})


@router.post("/rooms/{room}/messages", status_code=202, summary="Publish to a room")
async def publish_message(room: RoomName, body: PublishRequest, request: Request) -> dict[str, str]:
    """Send ``data`` to every member of ``room`` (on every worker with Redis scale-out)."""
    rooms: Rooms = request.app.state.rooms
    try:
        await rooms.publish(room, body.data)
    except MessageTooLargeError as error:
        raise HTTPException(status_code=413, detail=str(error)) from None
    except (TypeError, ValueError) as error:
        # NaN and Infinity parse from a request body but are not JSON.
        raise HTTPException(status_code=422, detail=f"data is not valid JSON: {error}") from None
    return {"status": "accepted", "room": room}


@router.get("/rooms/{room}", summary="Members of a room")
async def room_info(room: RoomName, request: Request) -> RoomInfo:
    """How many members ``room`` has: on every worker with Redis, else on this process.

    ``scope`` says which: ``cluster`` (every live worker) or ``local`` (in
    memory, or while Redis does not answer); ``local_members`` is this process's.
    """
    rooms: Rooms = request.app.state.rooms
    members, everywhere = await rooms.count_everywhere(room)
    return RoomInfo(
        room=room,
        members=members,
        local_members=rooms.count(room),
        scope="cluster" if everywhere else "local",
    )
