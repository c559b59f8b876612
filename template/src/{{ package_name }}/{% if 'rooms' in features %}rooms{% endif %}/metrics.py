"""Metrics of the rooms, on the app's own registry (``observability/metrics.py``).

Labels stay bounded: the eviction reason is one of a fixed set, and room names
are never labels (clients choose them).
"""

from prometheus_client import Counter, Gauge, Histogram

from ..observability.metrics import Metrics

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class RoomMetrics:
    """Connections, messages in and out, evictions and broadcast latency."""

    def __init__(self, metrics: Metrics) -> None:
        """Register the room metrics with ``metrics`` (shared files with several workers)."""
        owner = metrics.owner
        self.connections = Gauge(
            "rooms_connections",
            "WebSocket members connected now.",
            registry=owner,
            multiprocess_mode="livesum",
        )
        self.messages_in = Counter(
            "rooms_messages_received",
            "Messages accepted from clients and publishers.",
            registry=owner,
        )
        self.messages_out = Counter(
            "rooms_messages_sent", "Frames written to members.", registry=owner
        )
        self.rejected = Counter(
            "rooms_frames_rejected",
            "Client frames answered with an error frame.",
            ["reason"],
            registry=owner,
        )
        self.evictions = Counter(
            "rooms_evictions",
            "Members dropped because they did not read fast enough.",
            ["reason"],
            registry=owner,
        )
        self.broadcast_seconds = Histogram(
            "rooms_broadcast_seconds",
            "Time to hand one frame to every local member of a room.",
            buckets=_LATENCY_BUCKETS,
            registry=owner,
        )
