"""Tracing with OpenTelemetry: spans for requests, queries, room messages, events and tasks.

``provider.py`` sets up this process's tracer provider and the
instrumentations from the settings and the standard ``OTEL_*`` variables
(checked by ``config.py``); ``messaging.py`` carries the trace context across
the rooms bus, the SSE stream and the task queue; ``export.py`` keeps an
unreachable collector from flooding the log or hanging shutdown.
"""

from .config import TracingConfigError
from .provider import Tracing, instrument_app, native_telemetry_off, start_tracing

__all__ = [
    "Tracing",
    "TracingConfigError",
    "instrument_app",
    "native_telemetry_off",
    "start_tracing",
]
