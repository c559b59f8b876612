"""Trace context across what the instrumentations cannot see: the rooms bus, SSE, the queue.

A publish (a room message, an SSE event, a queued task) runs in a
``PRODUCER`` span; what carries the message (a Redis Stream entry, a streaq
job, an in-memory record) also carries that span's W3C ``traceparent``; each
process that handles the message runs one ``CONSUMER`` span, a child of the
publish and linked to it. One span per process and message, never one per
delivered frame: a room of a thousand members costs the same two spans as a
room of one.

Only recorded (sampled) publishes carry a ``traceparent``. An unsampled one
carries nothing, and its consumers do no tracing work at all: the sampling
decision is the publisher's, so they would have dropped their spans anyway.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

_tracer = trace.get_tracer(__name__)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)


def sampled_context() -> SpanContext | None:
    """The current span's context when it is recorded; ``None`` otherwise."""
    context = trace.get_current_span().get_span_context()
    return context if context.trace_flags.sampled else None


def format_traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` header value of ``context``."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parse_traceparent(value: str | bytes | None) -> SpanContext | None:
    """The sampled remote context in a ``traceparent``; ``None`` if absent, unsampled or malformed.

    It comes from Redis, so it is checked rather than trusted: a malformed
    value costs the message its trace, never its delivery.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    parts = value.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not (trace_id and span_id and flags & TraceFlags.SAMPLED):
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED)


def message_attributes(operation: str, destination: str) -> dict[str, str]:
    """Span attributes of a message (OpenTelemetry messaging conventions).

    ``operation`` is ``send`` (publish) or ``process`` (handle); ``destination``
    the room, the event type or the task's priority.
    """
    return {"messaging.operation.type": operation, "messaging.destination.name": destination}


@contextmanager
def publishing(name: str, attributes: dict[str, Any]) -> Iterator[SpanContext | None]:
    """Run a publish in a ``PRODUCER`` span; yield its context to carry (``None``: unsampled)."""
    with _tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
        yield sampled_context()


def handling(
    name: str, parent: SpanContext, attributes: dict[str, Any]
) -> AbstractContextManager[Span]:
    """A ``CONSUMER`` span around one process's handling; child of and linked to ``parent``.

    Callers check for ``None`` first (no ``traceparent``: nothing to do), which
    keeps the untraced path free of any tracing call.
    """
    return _tracer.start_as_current_span(
        name,
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.CONSUMER,
        links=[Link(parent)],
        attributes=attributes,
    )
