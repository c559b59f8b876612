"""Export that a missing collector cannot turn into a flood of log lines or a hung shutdown.

The batch processor (the SDK's) keeps at most ``OTEL_BSP_MAX_QUEUE_SIZE``
finished spans (2048 by default) and drops new ones while the queue is full,
so memory stays bounded whatever the collector does. What the SDK does not
bound is its voice: the OTLP exporter logs every failed batch and every retry.
``ReportingExporter`` says it once, when exporting starts failing, and once
again when the collector answers, with how many spans were dropped between
(``log_config.py`` keeps the SDK's own loggers to critical messages).

``abort`` gives up at once: the export in progress stops retrying, and every
later batch is dropped without a network call; shutdown calls it when its time
for the last spans runs out.
"""

import logging
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)


class ReportingExporter(SpanExporter):
    """Wraps an exporter: one warning when export fails, one line when it works again."""

    def __init__(self, exporter: SpanExporter, destination: str) -> None:
        """Export through ``exporter``; ``destination`` names the collector in the log."""
        self._exporter = exporter
        self._destination = destination
        self._lock = threading.Lock()
        self._failing = False
        self._dropped = 0
        self._aborted = threading.Event()

    @property
    def failing(self) -> bool:
        """Whether the last export failed (the collector did not take the spans)."""
        return self._failing

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans``; report the first failure and the recovery, nothing in between."""
        if self._aborted.is_set():
            return SpanExportResult.FAILURE
        try:
            result = self._exporter.export(spans)
        except Exception as exc:  # An exporter bug must not kill the export thread.
            logger.debug("span export raised", exc_info=exc)
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                if self._failing:
                    logger.info(
                        "tracing: the collector takes spans again",
                        extra={"collector": self._destination, "dropped_spans": self._dropped},
                    )
                self._failing, self._dropped = False, 0
            else:
                if not self._failing:
                    logger.warning(
                        "tracing: the collector does not take spans; they are dropped "
                        "(at most OTEL_BSP_MAX_QUEUE_SIZE wait) until it does",
                        extra={"collector": self._destination},
                    )
                self._failing = True
                self._dropped += len(spans)
        return result

    def abort(self) -> None:
        """Stop exporting now: the retry in progress ends, later batches are dropped."""
        self._aborted.set()
        self._exporter.shutdown()

    def shutdown(self) -> None:
        """Shut the wrapped exporter down (once)."""
        if not self._aborted.is_set():
            self._aborted.set()
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return self._exporter.force_flush(timeout_millis)
