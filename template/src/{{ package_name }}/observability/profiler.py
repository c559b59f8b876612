"""Optional per-request profiler: ``?profile=1`` answers with pyinstrument's HTML report.

Off unless ``profiling_enabled`` is set: a report shows the service's code and
timings, which is for the people who run it. pyinstrument is an optional extra
(``pip install '.[profiling]'``) and is imported only when profiling is on.
Profiling a streaming response (an endless event stream) never finishes, so
profile ordinary requests.
"""

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings

if TYPE_CHECKING:
    from pyinstrument import Profiler

_TRUE_VALUES = frozenset({"1", "true", "yes"})


def _load_profiler() -> "type[Profiler]":
    try:
        from pyinstrument import Profiler
    except ImportError as exc:
        raise RuntimeError(
            "profiling_enabled is set but pyinstrument is not installed: "
            "install the 'profiling' extra (pip install '.[profiling]') or turn profiling off."
        ) from exc
    return Profiler


def install_profiler(app: FastAPI, settings: Settings) -> None:
    """Add the profiler middleware when profiling is enabled.

    Fails here, at startup, with a clear message when pyinstrument is missing,
    rather than on the first profiled request.
    """
    if not settings.profiling_enabled:
        return
    app.add_middleware(ProfilerMiddleware, profiler_class=_load_profiler())


def wants_profile(scope: Scope) -> bool:
    """Whether the request asks for a profile (``?profile=1``)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return any(value.lower() in _TRUE_VALUES for value in query.get("profile", []))


class ProfilerMiddleware:
    """Pure ASGI middleware that profiles requests carrying ``?profile=1``.

    The request runs normally, its response is discarded, and the profile is
    sent instead. ``async_mode="enabled"`` attributes time spent awaiting to
    the request's own code and ignores other requests running concurrently.
    """

    def __init__(self, app: ASGIApp, *, profiler_class: "type[Profiler]") -> None:
        """Wrap ``app``; ``profiler_class`` is pyinstrument's ``Profiler``."""
        self.app = app
        self.profiler_class = profiler_class

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or not wants_profile(scope):
            await self.app(scope, receive, send)
            return

        async def discard(message: Message) -> None:
            return None

        profiler = self.profiler_class(async_mode="enabled")
        profiler.start()
        try:
            await self.app(scope, receive, discard)
        finally:
            profiler.stop()
        await HTMLResponse(profiler.output_html())(scope, receive, send)
