"""Authorization of WebSocket handshakes.

A browser cannot set headers on ``new WebSocket()``, so a token travels as a
subprotocol: the client offers ``["bearer", "bearer.<token>"]`` and the
server accepts ``bearer``, never echoing the token. Non-browser clients may
send ``Authorization: Bearer`` (or ``X-API-Key``) instead, and
``?access_token=`` works for clients that can do neither (logs redact it).

Refusals: a browser origin that is not allowed gets HTTP 403 before the
handshake completes (the page learns nothing more). A missing, invalid or
expired token closes right after the handshake with 4401, a token whose
grants do not cover the room with 4403, one client over its connection limit
with 4429: browsers cannot read an HTTP status of a refused WebSocket
handshake, but they can read a close code, so a page can tell "get a new
token" from "not allowed" from a network failure.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket

from .grants import Selectors
from .policy import ACCESS_TOKEN_PARAM, Auth, Denied, Principal

CLOSE_UNAUTHORIZED: Final = 4401
"""No token, or one that is invalid or expired (also at ``exp`` on an open connection)."""
CLOSE_FORBIDDEN: Final = 4403
"""The token's grants do not cover this room."""
CLOSE_TOO_MANY: Final = 4429
"""This client already holds its maximum number of connections."""
CLOSE_POLICY: Final = 1008
"""Before the handshake completes, a close is an HTTP 403 (a refused origin)."""

BEARER_PROTOCOL: Final = "bearer"
TOKEN_PROTOCOL_PREFIX: Final = "bearer."

_CLOSE_CODES: Final = {"forbidden": CLOSE_FORBIDDEN, "limited": CLOSE_TOO_MANY}


@dataclass(slots=True)
class Admission:
    """A handshake that may complete: who, with which subprotocol, and its connection slot."""

    principal: Principal
    subprotocol: str | None
    release: Callable[[], None]


def _credential(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The credential and the subprotocol to accept."""
    offered: list[str] = websocket.scope.get("subprotocols") or []
    if BEARER_PROTOCOL in offered:
        for protocol in offered:
            if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
                return protocol.removeprefix(TOKEN_PROTOCOL_PREFIX), BEARER_PROTOCOL
        return None, BEARER_PROTOCOL
    headers = websocket.headers
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    key = headers.get("x-api-key", "").strip()
    # Parsed here, not through ``websocket.query_params``, which would keep the
    # parsed query (token included) for as long as the connection is open.
    query = QueryParams(websocket.scope.get("query_string", b""))
    return key or query.get(ACCESS_TOKEN_PARAM), None


async def admit(
    websocket: WebSocket, auth: Auth, grant: Callable[[Principal], Selectors], name: str
) -> Admission | None:
    """Authorize the handshake for ``name`` under ``grant``, or refuse it and return ``None``.

    On success the caller accepts with ``admission.subprotocol`` and calls
    ``admission.release()`` when the connection ends.
    """
    try:
        auth.check_origin(websocket.headers.get("origin"), websocket.headers.get("host"))
    except Denied:
        await websocket.close(CLOSE_POLICY, "origin not allowed")
        return None
    credential, subprotocol = _credential(websocket)
    try:
        principal = await auth.authenticate(credential)
        if name not in grant(principal):
            raise auth.deny("forbidden", "the token does not grant this room")
        if not principal.is_operator and not auth.connections.acquire(principal.id):
            raise auth.deny("limited", "too many connections for this client")
    except Denied as denied:
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(_CLOSE_CODES.get(denied.reason, CLOSE_UNAUTHORIZED), denied.detail)
        return None

    def release() -> None:
        if not principal.is_operator:
            auth.connections.release(principal.id)

    return Admission(principal, subprotocol, release)
