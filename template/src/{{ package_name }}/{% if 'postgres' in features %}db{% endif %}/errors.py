"""Database errors the service turns into 503s instead of 500s or hung requests."""

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from ..observability.metrics import Metrics

RETRY_AFTER_SECONDS = 1

UNAVAILABLE_REASONS: Final = ("pool_exhausted", "unavailable")
"""Label values of ``db_unavailable_total``: every connection busy, or the server not answering."""


class DatabaseUnavailableError(RuntimeError):
    """PostgreSQL cannot serve this request now (down, unreachable, or too slow)."""

    public_message = "the database is unavailable; try again shortly"


class PoolExhaustedError(DatabaseUnavailableError):
    """Every pooled connection stayed busy for the whole acquire timeout."""

    public_message = "the database is busy: no connection was free in time; try again shortly"


def database_unavailable_handler(
    metrics: Metrics,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The exception handler, counting each 503 in ``db_unavailable_total{reason}``."""
    unavailable = Counter(
        "db_unavailable",
        "Requests answered 503 because the database could not serve them, by reason.",
        ["reason"],
        registry=metrics.owner,
    )
    for reason in UNAVAILABLE_REASONS:
        unavailable.labels(reason)

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        """Answer 503 with ``Retry-After``; the body never carries DSNs or server addresses."""
        exhausted = isinstance(exc, PoolExhaustedError)
        unavailable.labels("pool_exhausted" if exhausted else "unavailable").inc()
        message = getattr(exc, "public_message", DatabaseUnavailableError.public_message)
        return JSONResponse(
            {"detail": message},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    return handler
