"""The wire format of rooms: room names, client frames, server frames, close codes.

Every frame the server sends is JSON encoded with ``ensure_ascii`` so its length
in characters is its length in bytes: queue bounds count exact bytes without
encoding each frame again.
"""

import json
import re
from dataclasses import dataclass
from typing import Any, Final

ROOM_NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
"""Room names: 1 to 64 letters, digits, ``_``, ``.`` or ``-``."""

_ROOM_NAME = re.compile(ROOM_NAME_PATTERN)

CLOSE_ROOM_FULL: Final = 4004
"""The room already has its maximum number of members."""

CLOSE_TOO_SLOW: Final = 4008
"""The member did not read fast enough (outbound queue over its bound, or a write timed out)."""

CLOSE_IDLE: Final = 4000
"""The member sent nothing for the idle timeout."""

CLOSE_GOING_AWAY: Final = 1001
"""The service is shutting down."""


def is_valid_room(name: str) -> bool:
    """Whether ``name`` is a valid room name."""
    return _ROOM_NAME.fullmatch(name) is not None


def encode(value: Any) -> str:
    """Compact, ASCII-only JSON (raises ``TypeError`` for values JSON cannot carry)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def message_frame(room: str, data: Any) -> str:
    """The frame every member of ``room`` receives for one message."""
    return encode({"type": "message", "room": room, "data": data})


def batch_frame(frames: list[str]) -> str:
    """A ``batch`` frame made of already encoded message frames, without decoding them."""
    return '{"type":"batch","messages":[' + ",".join(frames) + "]}"


def error_frame(error: str, detail: str) -> str:
    """An error reply; the connection stays open."""
    return encode({"type": "error", "error": error, "detail": detail})


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A valid ``{"type": "message", "data": ...}`` frame from a client."""

    data: Any


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """A ``{"type": "auth", "token": ...}`` frame: a fresh token for the open connection."""

    token: str


def auth_frame(expires_at: float) -> str:
    """The reply to an accepted ``auth`` frame: when the new token expires (Unix time)."""
    return encode({"type": "auth", "exp": expires_at})


class FrameError(ValueError):
    """A client frame the server cannot use; ``code`` names the problem."""

    def __init__(self, code: str, detail: str) -> None:
        """Describe the problem with a short code and a human-readable detail."""
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; other members' parsers would choke on them.
    raise ValueError(f"{name} is not valid JSON")


def parse_client_frame(text: str) -> ClientMessage | ClientAuth:
    """Parse one client text frame, or raise ``FrameError`` saying what is wrong."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise FrameError("invalid_json", "the frame is not valid JSON") from None
    except RecursionError:
        # Valid JSON nested deeper than the parser's recursion limit (about 1,000
        # levels); it used to end the connection with no close frame and no log.
        raise FrameError("invalid_json", "the frame is nested too deeply") from None
    if not isinstance(value, dict):
        raise FrameError("invalid_frame", "the frame must be a JSON object")
    kind = value.get("type")
    if kind == "auth":
        token = value.get("token")
        if not isinstance(token, str) or not token:
            raise FrameError("invalid_frame", "an auth frame needs a 'token' string")
        return ClientAuth(token)
    if kind != "message":
        raise FrameError(
            "unknown_type", f"unknown frame type {kind!r}; expected 'message' or 'auth'"
        )
    if "data" not in value:
        raise FrameError("invalid_frame", "a message frame needs a 'data' field")
    return ClientMessage(value["data"])
