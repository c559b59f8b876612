"""Prometheus metrics of the event stream, on the app's own registry.

With several workers (prometheus-client multiprocess mode) the values go to the
shared files instead and ``/metrics`` adds up every worker; the client gauge
then sums live workers only.
"""

from prometheus_client import Counter, Gauge

from ..observability.metrics import Metrics


class EventMetrics:
    """Connected clients, events published and delivered, evictions, replays, resyncs."""

    def __init__(self, metrics: Metrics) -> None:
        """Create the metrics in ``metrics``' registry (or its shared files)."""
        registry = metrics.owner
        self.bus_connected = metrics.bus_connected
        """``redis_bus_connected{bus}``: a Redis hub sets its ``sse`` child."""
        self.clients = Gauge(
            "sse_clients",
            "SSE clients connected now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.published = Counter(
            "sse_events_published", "Events published (by this worker).", registry=registry
        )
        self.delivered = Counter(
            "sse_events_delivered",
            "Events written to clients, replayed ones included.",
            registry=registry,
        )
        self.evictions = Counter(
            "sse_evictions",
            "Clients disconnected because their queue overflowed.",
            registry=registry,
        )
        self.replays = Counter(
            "sse_replays", "Reconnections served from history.", registry=registry
        )
        self.resyncs = Counter(
            "sse_resyncs",
            "Reconnections whose id history no longer reaches (sent a resync event).",
            registry=registry,
        )
