"""``WS /ws/{room}``, ``POST /rooms/{room}/messages`` and ``GET /rooms/{room}``."""

import asyncio
import contextlib
import logging
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, WebSocket
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..auth.http import Caller, forbidden
from ..auth.limits import PublishRates
from ..auth.policy import Auth, Denied, Principal
from ..auth.websocket import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, admit
from .bus import BusUnavailable
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
    ClientAuth,
    FrameError,
    auth_frame,
    error_frame,
    is_valid_room,
    parse_client_frame,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["rooms"])

RAW_SEND_KEY = "rooms.raw_send"


_ROOM_PATH = re.compile(r"/ws/([^/]+)")
"""``/ws/{room}``, as the router matches it (any room; ``room_socket`` checks the name)."""


class RawSendMiddleware:
    """Serve ``WS /ws/{room}`` right here, and record the server's ASGI ``send``.

    Pure ASGI. A member's connection stays inside the ASGI call for as long as
    it is open, so every layer between the server and the handler lives that
    long: FastAPI's routing and dependency exit stacks, the exception
    middleware, the body limit held about 15 KB of every idle member's 40
    (``bench/scale.py --breakdown``). The middleware outside this one (header
    limits, metrics, CORS) still run. Broadcast frames then go straight to the
    server instead of through the framework's per-message checks and wrappers
    (``bench/rooms.py`` measures the difference); ``test_rooms.py`` pins the
    behaviour of the route either way.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a room member, or pass the connection on."""
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
            match = _ROOM_PATH.fullmatch(_route_path(scope))
            if match is not None:
                await room_socket(WebSocket(scope, receive, send), match[1])
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    # The path below the root path, as Starlette's router sees it.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


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


class Session:
    """Who a member is and what it may do; renewed by an ``auth`` frame before ``exp``."""

    __slots__ = ("_auth", "_expiry", "_member", "may_publish", "principal")

    def __init__(self, auth: Auth, member: Member, principal: Principal) -> None:
        """Start the expiry timer of ``principal``'s token."""
        self._auth = auth
        self._member = member
        self._expiry: asyncio.TimerHandle | None = None
        self.principal = principal
        self.may_publish = False
        self._grant(principal)

    def _grant(self, principal: Principal) -> None:
        self.principal = principal
        self.may_publish = self._member.room in principal.grants.publish
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if principal.expires_at is not None:
            delay = max(0.0, principal.expires_at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._auth.deny("expired", "the token expired on an open connection")
        self._member.stop(CLOSE_UNAUTHORIZED, "token expired")

    async def renew(self, token: str) -> str:
        """Take a fresh token for the same subject; the reply frame, or ``FrameError``."""
        try:
            principal = await self._auth.authenticate(token)
        except Denied as denied:
            raise FrameError("unauthorized", denied.detail) from None
        if principal.id != self.principal.id:
            raise FrameError("unauthorized", "the new token is for another subject")
        if self._member.room not in principal.grants.join:
            self._auth.deny("forbidden", "the new token does not grant this room")
            self._member.stop(CLOSE_FORBIDDEN, "the token does not grant this room")
            raise FrameError("forbidden", "the new token does not grant this room")
        self._grant(principal)
        return auth_frame(principal.expires_at or 0.0)

    def refuse_publish(self) -> FrameError:
        """Count a publish the grants do not cover; the error frame to answer with."""
        self._auth.deny("forbidden", "publish not granted")
        return FrameError("forbidden", "the token does not grant publishing into this room")

    def end(self) -> None:
        """The connection is over: no expiry to watch."""
        if self._expiry is not None:
            self._expiry.cancel()


def _join_grant(principal: Principal) -> Any:
    return principal.grants.join


@router.websocket("/ws/{room}")
async def room_socket(websocket: WebSocket, room: str) -> None:
    """Join ``room``: every message published to it arrives here, and what you send is published."""
    if not is_valid_room(room):
        # Refused at the handshake: a close before accept is an HTTP 403.
        await websocket.close(1008, f"invalid room name; it must match {ROOM_NAME_PATTERN}")
        return
    auth: Auth = websocket.app.state.auth
    admission = await admit(websocket, auth, _join_grant, room)
    if admission is None:
        return
    try:
        await _serve_member(websocket, room, auth, admission.principal, admission.subprotocol)
    finally:
        admission.release()


async def _serve_member(
    websocket: WebSocket, room: str, auth: Auth, principal: Principal, subprotocol: str | None
) -> None:
    rooms: Rooms = websocket.app.state.rooms
    settings = websocket.app.state.settings
    await websocket.accept(subprotocol=subprotocol)
    try:
        # The server's own ASGI send when RawSendMiddleware recorded it: the
        # framework's wrappers around it cost more than the write itself.
        member = rooms.join(room, websocket.scope.get(RAW_SEND_KEY, websocket.send))
    except RoomFullError:
        await websocket.close(CLOSE_ROOM_FULL, "Room is full")
        return
    session = Session(auth, member, principal)
    # This task reads; a member has a writer task only while frames wait for
    # its socket. A stop (eviction, shutdown, expiry) cancels this task.
    task = asyncio.current_task()
    assert task is not None
    try:
        member.wake_on_stop(task)
        await _read_loop(websocket, member, rooms, session)
    except asyncio.CancelledError:
        if not member.woken or task.uncancel() > 0:
            raise
    finally:
        # Every way out passes here: the member leaves, its writer ends.
        session.end()
        rooms.leave(member)
        writer = member.writer
        member.stop(None)
        if writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await writer
    if member.close_code is not None:
        await _close(
            websocket, member.close_code, member.close_reason, settings.rooms_close_timeout
        )
    rooms.closed(member)


async def _read_loop(websocket: WebSocket, member: Member, rooms: Rooms, session: Session) -> None:
    settings = websocket.app.state.settings
    metrics: RoomMetrics = websocket.app.state.room_metrics
    rates: PublishRates = websocket.app.state.room_publish_rates
    idle = settings.rooms_idle_timeout or None
    # A frame can stop the member (a renewal that no longer grants the room, an
    # own queue over its bound): the loop ends and the connection closes.
    while not member.stopped:
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
        answer: str | None = None
        if text is None:
            problem = FrameError("binary_frame", "send JSON in text frames")
        else:
            try:
                frame = parse_client_frame(text)
                if isinstance(frame, ClientAuth):
                    answer = await session.renew(frame.token)
                elif not session.may_publish:
                    problem = session.refuse_publish()
                elif not session.principal.is_operator and not rates.allow(session.principal.id):
                    problem = FrameError("rate_limited", "too many messages; slow down")
                else:
                    await rooms.publish(member.room, frame.data)
            except FrameError as error:
                problem = error
            except MessageTooLargeError as error:
                problem = FrameError("too_large", str(error))
            except BusUnavailable:
                problem = FrameError("unavailable", "the message was not delivered; send it again")
        if answer is not None and member.offer(send_message(answer)) == OVERFLOW:
            rooms.evict(member, "queue_full")
        if problem is not None:
            metrics.rejected.labels(problem.code).inc()
            # Through the member's queue: the writer stays the only sender.
            reply = send_message(error_frame(problem.code, problem.detail))
            if member.offer(reply) == OVERFLOW:
                rooms.evict(member, "queue_full")


async def _close(websocket: WebSocket, code: int, reason: str, wait: float) -> None:
    # A stuck client cannot take the close frame either: after ``wait`` seconds
    # the connection is aborted.
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    try:
        async with asyncio.timeout(wait):
            await websocket.close(code, reason)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        aborted = _abort(websocket)
        logger.info("close frame not delivered", extra={"code": code, "aborted": aborted})


def _abort(websocket: WebSocket) -> bool:
    """Drop the connection now, unsent bytes and all; ``False`` if the server allows no way.

    uvicorn closes the transport once the handler returns, and asyncio keeps a
    closing transport open until its write buffer drains: for a client that
    never reads, never (the socket, its buffers and the file descriptor stayed
    until the client went away). ASGI has no abort, so this reaches the
    transport of the server's ``send`` that ``RawSendMiddleware`` recorded
    (uvicorn's WebSocket protocol object); ``test_rooms.py`` pins it.
    """
    send = websocket.scope.get(RAW_SEND_KEY)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports are not asyncio.Transport subclasses.
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        return False
    abort()
    return True


@router.post(
    "/rooms/{room}/messages",
    status_code=202,
    summary="Publish to a room",
    responses={
        401: {"description": "No valid API key or token."},
        403: {"description": "The token does not grant publishing into this room."},
        413: {"description": "The message is larger than the configured limit."},
        429: {"description": "This token's subject publishes too fast."},
        503: {"description": "The bus between processes (Redis) did not take it."},
    },
)
async def publish_message(
    room: RoomName, body: PublishRequest, request: Request, caller: Caller
) -> dict[str, str]:
    """Send ``data`` to every member of ``room`` (on every worker with Redis scale-out).

    An API key may publish anywhere; a token needs a ``publish`` grant for the room.
    """
    if room not in caller.grants.publish:
        raise forbidden(request, "the token does not grant publishing into this room")
    rates: PublishRates = request.app.state.room_publish_rates
    if not caller.is_operator and not rates.allow(caller.id):
        raise HTTPException(status_code=429, detail="too many messages; slow down")
    rooms: Rooms = request.app.state.rooms
    try:
        await rooms.publish(room, body.data)
    except MessageTooLargeError as error:
        raise HTTPException(status_code=413, detail=str(error)) from None
    except BusUnavailable:
        raise HTTPException(
            status_code=503,
            detail="the message was not delivered; try again",
            headers={"Retry-After": "1"},
        ) from None
    except (TypeError, ValueError) as error:
        # NaN and Infinity parse from a request body but are not JSON.
        raise HTTPException(status_code=422, detail=f"data is not valid JSON: {error}") from None
    return {"status": "accepted", "room": room}


@router.get(
    "/rooms/{room}",
    summary="Members of a room",
    responses={
        401: {"description": "No valid API key or token."},
        403: {"description": "The token does not grant joining this room."},
    },
)
async def room_info(room: RoomName, request: Request, caller: Caller) -> RoomInfo:
    """How many members ``room`` has: on every worker with Redis, else on this process.

    An API key, or a token with a ``join`` grant for the room.

    ``scope`` says which: ``cluster`` (every live worker) or ``local`` (in
    memory, or while Redis does not answer); ``local_members`` is this process's.
    """
    if room not in caller.grants.join:
        raise forbidden(request, "the token does not grant this room")
    rooms: Rooms = request.app.state.rooms
    members, everywhere = await rooms.count_everywhere(room)
    return RoomInfo(
        room=room,
        members=members,
        local_members=rooms.count(room),
        scope="cluster" if everywhere else "local",
    )
