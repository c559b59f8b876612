"""Limits on what a request may carry, enforced before it can cost a 500 or memory.

``validation_error_handler`` answers every request validation error with a 422
whose body is ASCII JSON: FastAPI's own handler echoes the offending input, and
a lone surrogate (``"\\ud800"``, valid in JSON, not in UTF-8) in that input made
it fail to encode its own answer, a 500.
"""

import json

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """422 with FastAPI's usual body, encoded so that any input it echoes fits."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body = json.dumps({"detail": jsonable_encoder(errors)}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")
