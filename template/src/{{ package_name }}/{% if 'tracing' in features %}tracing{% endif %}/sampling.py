"""Which traces are recorded: ``ParentBased(TraceIdRatio)``, without background polls.

A span with a parent follows the parent's decision, so a trace is recorded
whole or not at all, across processes too (the decision travels in the
``traceparent`` flags). A new trace is recorded for the configured share of
trace ids, except one whose first span is a client call (Redis, Postgres)
made outside any request, message or task: those are the bus readers'
blocking reads and the heartbeats, a span every second per process that
nobody follows.
"""

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class NewTraces(Sampler):
    """The root sampler: ``ratio`` of new traces, none started by a bare client call."""

    def __init__(self, ratio: float) -> None:
        """Record ``ratio`` (0 to 1) of new traces."""
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a root client span; otherwise decide by trace id."""
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """How this sampler shows in the SDK's diagnostics."""
        return "NewTraces(" + self._ratio.get_description() + ")"


def sampler(ratio: float) -> Sampler:
    """``ParentBased`` on ``NewTraces(ratio)``."""
    return ParentBased(root=NewTraces(ratio))
