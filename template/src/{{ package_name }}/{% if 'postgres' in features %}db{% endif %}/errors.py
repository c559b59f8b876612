"""Database errors the service turns into 503s instead of 500s or hung requests."""

from fastapi import Request
from fastapi.responses import JSONResponse

RETRY_AFTER_SECONDS = 1


class DatabaseUnavailableError(RuntimeError):
    """PostgreSQL cannot serve this request now (down, unreachable, or too slow)."""

    public_message = "the database is unavailable; try again shortly"


class PoolExhaustedError(DatabaseUnavailableError):
    """Every pooled connection stayed busy for the whole acquire timeout."""

    public_message = "the database is busy: no connection was free in time; try again shortly"


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer 503 with ``Retry-After``; the body never carries DSNs or server addresses."""
    message = getattr(exc, "public_message", DatabaseUnavailableError.public_message)
    return JSONResponse(
        {"detail": message},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
