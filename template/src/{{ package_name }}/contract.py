"""Keep the OpenAPI document true to what the service answers.

FastAPI documents what a route declares; some answers come from elsewhere:
the authorization checks (401), the body parser (400 for a body that is not
JSON), the operational endpoints' guard, and Starlette's 405, whose ``Allow``
header names only the first route that matched the path. Clients and
contract testers (schemathesis) rely on the document, so it says all of it.
"""

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from .auth.http import OPS_PATHS

_SECURITY_SCHEMES = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, or a token (JWT).",
    },
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_KEY_OR_TOKEN: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


def install_contract(app: FastAPI, *, ops_require_key: bool) -> None:
    """Complete ``app``'s OpenAPI document and its 405 answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _complete(schema, ops_require_key=ops_require_key)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(405, _method_not_allowed)


def _complete(schema: dict[str, Any], *, ops_require_key: bool) -> None:
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if ops_require_key and path in OPS_PATHS:
                operation["security"] = _KEY_OR_TOKEN
            if operation.get("security"):
                responses.setdefault("401", {"description": "No valid API key or token."})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "The body is not valid JSON."})
    if any(
        operation.get("security")
        for operations in schema.get("paths", {}).values()
        for operation in operations.values()
    ):
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for name, scheme in _SECURITY_SCHEMES.items():
            schemes.setdefault(name, scheme)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    # Every route on this path counts, not only the first one that matched.
    allowed: set[str] = set()
    probe = {**request.scope, "method": ""}
    for route in request.app.router.routes:
        match, _ = route.matches(probe)
        methods = getattr(route, "methods", None)
        if match is Match.PARTIAL and methods:
            allowed |= methods
    detail = exc.detail if isinstance(exc, HTTPException) else "Method Not Allowed"
    return JSONResponse(
        {"detail": detail}, status_code=405, headers={"Allow": ", ".join(sorted(allowed))}
    )
