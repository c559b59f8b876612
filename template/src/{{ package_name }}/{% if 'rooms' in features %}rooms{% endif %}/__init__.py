"""WebSocket rooms: ``WS /ws/{room}``, publishing over HTTP, fan-out between processes."""

from .bus import BusUnavailable
from .lifecycle import open_rooms
from .manager import InvalidRoomError, MessageTooLargeError, Rooms
from .routes import RawSendMiddleware, router

__all__ = [
    "BusUnavailable",
    "InvalidRoomError",
    "MessageTooLargeError",
    "RawSendMiddleware",
    "Rooms",
    "open_rooms",
    "router",
]
