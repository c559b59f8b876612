"""Logging for the service and uvicorn: one JSON object per line, or plain text.

The module is not called ``logging.py`` so it never shadows the standard
library. ``build_log_config`` returns a ``logging.config.dictConfig`` dict that
uvicorn applies in the supervisor and again in every worker.
"""

import logging
import re
import threading
import time
from typing import Any, Final
from urllib.parse import unquote_plus

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from .settings import Settings

# uvicorn adds a colourised copy of some messages as an extra attribute; a JSON
# line has no use for terminal escape codes.
_SKIPPED_ATTRS = [*RESERVED_ATTRS, "color_message"]

_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")

_TOKEN_IN_QUERY: Final = re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE)
# A parameter name with percent-escapes (``access%5Ftoken``): the app decodes
# names, so such a name can carry a token too.
_ENCODED_NAME: Final = re.compile(r"([^?&=\s\"']*%[^?&=\s\"']*=)([^&\s\"']+)")
REDACTED: Final = "[redacted]"


def _redact_encoded(match: re.Match[str]) -> str:
    name = unquote_plus(match.group(1)[:-1])
    return match.group(1) + REDACTED if name.lower() == "access_token" else match.group(0)


def redact(text: str) -> str:
    """``text`` with the value of every ``access_token=`` query parameter replaced."""
    if "access_token=" in text.lower():
        text = _TOKEN_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)
    if "%" in text:
        text = _ENCODED_NAME.sub(_redact_encoded, text)
    return text


class RedactSecrets(logging.Filter):
    """Keep query-string tokens out of every log line.

    uvicorn logs each request's and WebSocket handshake's path with its query
    string, where browsers' ``EventSource`` and some WebSocket clients carry
    ``?access_token=``. Headers (``Authorization``, ``X-API-Key``) are never logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message and its string arguments in place; never drop a record."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class AccessJsonFormatter(JsonFormatter):
    """JSON formatter for uvicorn's access log that keeps the request as fields.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the client, method, path,
    HTTP version and status as arguments; this turns them into named fields, so
    log queries need no text parsing.
    """

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Add the standard fields, then the access fields when the record has them."""
        super().add_fields(log_data, record, message_dict)
        if isinstance(record.args, tuple) and len(record.args) == len(_ACCESS_FIELDS):
            log_data.update(zip(_ACCESS_FIELDS, record.args, strict=True))


class ClientFaultFilter(logging.Filter):
    """At most one line per ``interval`` for errors a client causes at will.

    uvicorn logs an ERROR with a full traceback for every WebSocket text frame
    that is not valid UTF-8 (it then closes with 1007, which is right): any
    client could flood the log. Such records lose their traceback, become
    warnings, and pass once per ``interval`` seconds with the number dropped
    since the last one.
    """

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})
    """The records (by their format string) this filter governs."""

    def __init__(self, interval: float = 60.0) -> None:
        """Let one governed record through per ``interval`` seconds."""
        super().__init__()
        self.interval = interval
        self._next = 0.0
        self._dropped = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged (rewritten when governed)."""
        if record.msg not in self.MESSAGES:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._dropped += 1
                return False
            self._next = now + self.interval
            dropped, self._dropped = self._dropped, 0
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        record.msg = f"{record.msg} (closed with 1007; {dropped} more since the last report)"
        return True


def _json_formatter(factory: str) -> dict[str, Any]:
    return {
        "()": factory,
        "fmt": "%(levelname)s %(name)s %(message)s",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",
        "reserved_attrs": _SKIPPED_ATTRS,
    }


def _at_least_warning(level: str) -> str:
    return logging.getLevelName(max(logging.getLevelNamesMapping()[level], logging.WARNING))


def build_log_config(settings: Settings) -> dict[str, Any]:
    """A ``dictConfig`` dict for the app's and uvicorn's loggers."""
    level = settings.log_level.upper()
    formatters: dict[str, dict[str, Any]]
    if settings.log_json:
        formatters = {
            "default": _json_formatter("pythonjsonlogger.json.JsonFormatter"),
            "access": _json_formatter(f"{__name__}.AccessJsonFormatter"),
        }
    else:
        formatters = {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(asctime)s %(levelprefix)s %(name)s: %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(asctime)s %(levelprefix)s %(client_addr)s - "%(request_line)s" '
                "%(status_code)s",
                "use_colors": False,
            },
        }
    return {
        "version": 1,
        # Loggers created at import time (the app's modules) must keep working.
        "disable_existing_loggers": False,
        "formatters": formatters,
        "filters": {
            "redact_secrets": {"()": f"{__name__}.RedactSecrets"},
            "client_faults": {"()": f"{__name__}.ClientFaultFilter"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact_secrets"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["redact_secrets"],
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level, "filters": ["client_faults"]},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            # The queue engine's Redis client logs every reconnection attempt at INFO;
            # the worker says once that Redis is unreachable, which is enough.
            "coredis": {"level": _at_least_warning(level)},
        },
        # Everything else (this service, asyncpg, redis) goes through the root logger.
        "root": {"handlers": ["default"], "level": level},
    }
