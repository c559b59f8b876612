"""Limits on what a request may carry, enforced before it can cost a 500 or memory.

The body limit is FastAPI's own (``FastAPI(max_body_size=...)``, Starlette's
``RequestBodyLimitMiddleware``): it counts the body while it streams in and
answers 413 as soon as it passes the limit (at once when ``Content-Length``
says so), before anything is buffered. Only nginx limited sizes before, and
``docker run -p 8000:8000`` bypasses nginx: 8 concurrent 64 MiB bodies grew
the process from 167 to 854 MB before the route's own 413.

``HeaderLimitMiddleware`` answers 431 when the request's headers together
are larger than ``http_max_header_bytes`` (uvicorn's httptools parser has no
limit of its own: a 64 MiB header was answered 200).

``validation_error_handler`` answers every request validation error with a 422
whose body is ASCII JSON: FastAPI's own handler echoes the offending input, and
a lone surrogate (``"\\ud800"``, valid in JSON, not in UTF-8) in that input made
it fail to encode its own answer, a 500.
"""

import json

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """422 with FastAPI's usual body, encoded so that any input it echoes fits."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body = json.dumps({"detail": jsonable_encoder(errors)}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


class HeaderLimitMiddleware:
    """431 for HTTP requests (403 for WebSocket handshakes) whose headers are too large.

    Pure ASGI: it looks at the scope only and passes everything else through.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Refuse requests whose header names and values total more than ``max_bytes``."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it before the app sees it."""
        if scope["type"] in ("http", "websocket"):
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                if scope["type"] == "websocket":
                    # A close before accept is a 403 at the handshake.
                    await send({"type": "websocket.close", "code": 1008, "reason": ""})
                    return
                detail = f"the request headers are {size} bytes; at most {self.max_bytes} allowed"
                response = JSONResponse({"detail": detail}, status_code=431)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
