"""The Origin check of browser handshakes (WebSocket and SSE).

Browsers send ``Origin`` on every WebSocket handshake and on cross-origin
requests; a page on another site must not open a connection in its visitor's
name (cross-site WebSocket hijacking), and CORS does not cover WebSockets.
Allowed: the service's own origin (``Origin`` matching ``Host``) and the
origins listed in the CORS setting. No ``Origin`` at all is a non-browser
client: it passes on to the token check.
"""

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped."""
    parts = urlsplit(origin.strip().lower())
    if not parts.scheme or not parts.hostname:
        return origin.strip().lower()
    port = parts.port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class OriginPolicy:
    """Which browser origins may open connections."""

    __slots__ = ("_allowed",)

    def __init__(self, allowed: Iterable[str]) -> None:
        """``allowed``: full origins such as ``https://app.example.com``."""
        self._allowed = frozenset(normalize_origin(origin) for origin in allowed)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Whether a handshake with this ``Origin`` and ``Host`` header may go on."""
        if origin is None:
            return True
        normalized = normalize_origin(origin)
        if normalized in self._allowed:
            return True
        if host is None:
            return False
        try:
            parts = urlsplit(normalized)
            own = urlsplit(f"{parts.scheme}://{host.strip().lower()}")
            own_port = own.port or _DEFAULT_PORTS.get(parts.scheme)
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        return bool(parts.hostname) and (parts.hostname, origin_port) == (own.hostname, own_port)
