"""Authorization of HTTP requests: FastAPI dependencies and the operations guard.

The dependencies declare their schemes (bearer, ``X-API-Key``), so the
OpenAPI document and ``/docs`` say what each operation needs.
"""

import json
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from ..observability.profiler import wants_profile
from .policy import ACCESS_TOKEN_PARAM, Auth, Denied, Principal

OPS_PATHS: Final = frozenset(
    {"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Operational endpoints: an API key when ``ops_require_key`` is on (``/healthz`` stays open)."""

_bearer = HTTPBearer(auto_error=False, description="An API key, or a token (JWT).")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")


def auth_of(request: Request) -> Auth:
    """The app's ``Auth``."""
    auth: Auth = request.app.state.auth
    return auth


def http_error(denied: Denied) -> HTTPException:
    """The HTTP answer to a refusal (401 asks for credentials the RFC 6750 way)."""
    headers = None
    if denied.status == 401:
        error = "invalid_token" if denied.reason in ("invalid", "expired") else "invalid_request"
        headers = {"WWW-Authenticate": f'Bearer error="{error}"'}
    return HTTPException(status_code=denied.status, detail=denied.detail, headers=headers)


def _credential(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    # Authorization first: a client that sends both means its bearer credential.
    if bearer is not None:
        return bearer.credentials.strip()
    return api_key.strip() if api_key else None


async def require_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """An API key: server-side publishers and operators only."""
    try:
        return await auth_of(request).authenticate(_credential(bearer, api_key), tokens=False)
    except Denied as denied:
        raise http_error(denied) from None


async def require_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """An API key or a token; the route checks the token's grants."""
    try:
        return await auth_of(request).authenticate(_credential(bearer, api_key))
    except Denied as denied:
        raise http_error(denied) from None


async def require_browser_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """Like ``require_caller``, plus the Origin check and ``?access_token=``.

    For handshakes a browser makes itself (``EventSource``): it cannot set
    headers, and it reconnects with the same URL, so a token in the query keeps
    working across reconnects for as long as it is valid.
    """
    auth = auth_of(request)
    try:
        auth.check_origin(request.headers.get("origin"), request.headers.get("host"))
        credential = _credential(bearer, api_key) or request.query_params.get(ACCESS_TOKEN_PARAM)
        return await auth.authenticate(credential)
    except Denied as denied:
        raise http_error(denied) from None


KeyHolder = Annotated[Principal, Depends(require_key)]
KEY_REQUIRED = [Depends(require_key)]
"""``dependencies=KEY_REQUIRED`` on a route that needs an API key but not the principal."""
Caller = Annotated[Principal, Depends(require_caller)]
BrowserCaller = Annotated[Principal, Depends(require_browser_caller)]


def forbidden(request: Request, detail: str) -> HTTPException:
    """A 403 for a caller whose grants do not cover what it asked for (counted)."""
    return http_error(auth_of(request).deny("forbidden", detail))


class OpsGuard:
    """Pure ASGI middleware: the operational endpoints and ``?profile=1`` need an API key.

    ``/metrics`` shows internals, ``/docs`` and ``/openapi.json`` the whole
    API, and a profile the code itself; ``/healthz`` and ``/readyz`` stay open
    for probes.
    """

    def __init__(self, app: ASGIApp, *, auth: Auth, profiling: bool) -> None:
        """Wrap ``app``; ``profiling``: whether ``?profile=1`` is served at all."""
        self.app = app
        self.auth = auth
        self.profiling = profiling

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key of an operational request; pass everything else on."""
        if scope["type"] != "http" or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        # Whitespace around a header value is not part of it (RFC 9110), whatever
        # the server's parser leaves in.
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        credential = value.strip() if scheme.lower() == "bearer" else ""
        credential = credential or headers.get("x-api-key", "").strip()
        try:
            await self.auth.authenticate(credential, tokens=False)
        except Denied as denied:
            error = http_error(denied)
            body = json.dumps({"detail": error.detail}).encode()
            response_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()),
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": error.status_code,
                    "headers": response_headers,
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _guarded(self, scope: Scope) -> bool:
        if not self.auth.ops_require_key:
            return False
        if scope["path"] in OPS_PATHS:
            return True
        return self.profiling and wants_profile(scope)
