"""WebSocket rooms: ``WS /ws/{room}``, publishing over HTTP, fan-out between processes."""

from .lifecycle import open_rooms
from .manager import InvalidRoomError, MessageTooLargeError, Rooms
from .routes import RawSendMiddleware, router

__all__ = [
    "InvalidRoomError",
    "MessageTooLargeError",
    "RawSendMiddleware",
    "Rooms",
    "open_rooms",
    "router",
]
