# prometheus_client.multiprocess has no type annotations yet.
# mypy: disable-error-code="no-untyped-call"
"""HTTP request metrics (a pure ASGI middleware) and the ``/metrics`` endpoint.

Label values are bounded so a client cannot grow the number of time series:
the route label is the route's *template* (``/things/{thing_id}``, never the raw
path), unmatched paths share one label, and unusual HTTP methods share
``OTHER``. Durations come from ``time.perf_counter()``, a monotonic clock, so a
wall-clock adjustment cannot produce negative or inflated timings.

Every app gets its own ``CollectorRegistry``, so several apps in one process
(tests) never collide. With several workers (``PROMETHEUS_MULTIPROC_DIR`` set,
see ``multiprocess.py``) the counters live in shared files and ``/metrics``
merges the samples of every worker.
"""

import glob
import os
import time
from typing import Final

import psutil
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .multiprocess import multiprocess_dir
from .system import SystemCollector

UNMATCHED_ROUTE: Final = "<unmatched>"
"""Route label of requests that matched no route (404s): one series, not one per path."""

OTHER_METHOD: Final = "OTHER"

_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


class Metrics:
    """The metric objects of one app and the registry ``/metrics`` exposes."""

    def __init__(self) -> None:
        """Create the metrics; file-backed and merged when several workers share them."""
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry()
        if self.multiprocess_dir is None:
            self.owner: CollectorRegistry | None = self.registry
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        else:
            # In multiprocess mode the values go to the shared files whatever the
            # registry; /metrics reads all workers' files through the collector.
            # Every metric, the features' too, registers on ``owner``.
            self.owner = None
            _remove_files_of_dead_processes(self.multiprocess_dir)
            multiprocess.MultiProcessCollector(self.registry, path=self.multiprocess_dir)
            # ProcessCollector and GCCollector would describe only the worker that
            # happens to answer the scrape; SystemCollector covers the group.
        PlatformCollector(registry=self.registry)
        self.system = SystemCollector(worker_group=self.multiprocess_dir is not None)
        self.registry.register(self.system)

        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests", "HTTP requests handled.", labels, registry=self.owner
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to the end of its response.",
            labels,
            registry=self.owner,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled now.",
            registry=self.owner,
            # Sum over live workers: a dead worker's requests are no longer in progress.
            multiprocess_mode="livesum",
        )
        # Children only where a Redis bus runs ("rooms", "sse"): in memory there is
        # no bus to lose, and a 0 would read as "disconnected".
        self.bus_connected = Gauge(
            "redis_bus_connected",
            "1 while this process's Redis subscription of the bus answers, else 0.",
            ["bus"],
            registry=self.owner,
            # The lowest of the live workers: one disconnected worker is enough to alert.
            multiprocess_mode="livemin",
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Exposition body and content type, negotiated from the Accept header."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def close(self) -> None:
        """Drop this worker's live gauges from the shared files on shutdown."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)


def _remove_files_of_dead_processes(path: str) -> None:
    # A worker that crashed never ran close(); its "live" gauge files would keep
    # counting its in-progress requests. The supervisor restarts it with a new
    # pid, and that new worker cleans up here.
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = os.path.basename(file).rsplit("_", 1)[-1].removesuffix(".db")
        if pid_text.isdigit() and not psutil.pid_exists(int(pid_text)):
            multiprocess.mark_process_dead(int(pid_text), path)


def method_label(method: str) -> str:
    """The request method, or ``OTHER`` for anything outside the standard set."""
    return method if method in _KNOWN_METHODS else OTHER_METHOD


def route_label(scope: Scope) -> str:
    """The matched route's template (set by the router in ``scope["route"]``)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware that counts and times HTTP requests.

    Pure ASGI rather than ``BaseHTTPMiddleware``: it passes messages straight
    through, so streaming responses stay streaming and nothing is buffered.
    WebSocket and lifespan traffic pass untouched.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        """Wrap ``app``, recording into ``metrics``."""
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # If the app raises before it starts a response, the server answers 500.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.in_progress.dec()
            # The router wrote the matched route into this same scope dict.
            self.metrics.observe(method_label(scope["method"]), route_label(scope), status, elapsed)


router = APIRouter(tags=["observability"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format (or OpenMetrics when the scraper asks for it)."""
    # A plain ``def``: FastAPI runs it in a worker thread, so reading the shared
    # metric files of several workers never blocks the event loop.
    metrics: Metrics = request.app.state.metrics
    body, content_type = metrics.render(request.headers.get("accept", ""))
    return Response(content=body, headers={"Content-Type": content_type})
