"""Queue metrics: depth per priority, wait and run time, retries and failures.

With Redis scale-out the two halves live in different processes: the web
processes report the depth (read from Redis, ``QueueDepth``), each worker
process the work it did (``TaskMetrics`` without depth) on its own port.

A custom collector rather than prometheus-client's ``Histogram``: observing
into a ``Histogram`` takes a lock and costs about a microsecond, several per
task, which would cap the in-process queue well below the throughput it is
measured against (see docs/queue.md). Here a task adds to plain counters and
the collector turns them into the same exposition format at scrape time. The
labels are bounded: ``priority`` has four values and ``task`` only the
registered names.
"""

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .registry import PRIORITY_LABELS

BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip


class _Buckets:
    """Counts of observations per histogram bucket, and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def exposition(self) -> tuple[list[tuple[str, float]], float]:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return cumulative, self.total


def depth_family(depth: Mapping[str, int]) -> GaugeMetricFamily:
    """``tasks_queued{priority}``; no samples when ``depth`` is empty (not known now)."""
    family = GaugeMetricFamily(
        "tasks_queued", "Tasks waiting to start, per priority.", labels=["priority"]
    )
    for label, count in depth.items():
        family.add_metric([label], count)
    return family


class QueueDepth(Collector):
    """Only ``tasks_queued``: what a web process reports of a queue workers elsewhere run."""

    def __init__(self, depth: Callable[[], Mapping[str, int]]) -> None:
        """``depth`` is called at scrape time; an empty mapping means unknown."""
        self._depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The depth family read now; none at all when it is not known."""
        depth = self._depth()
        if depth:
            yield depth_family(depth)


class TaskMetrics(Collector):
    """Counters the queue updates per task, exposed as Prometheus metrics."""

    def __init__(
        self, task_names: list[str], depth: Callable[[], Mapping[str, int]] | None = None
    ) -> None:
        """Track ``task_names``; ``depth`` (if any) gives the queued count per priority."""
        self._depth = depth
        self.wait = {label: _Buckets() for label in PRIORITY_LABELS}
        self.run = {name: _Buckets() for name in task_names}
        self.succeeded = dict.fromkeys(task_names, 0)
        self.failed = dict.fromkeys(task_names, 0)
        self.retried = dict.fromkeys(task_names, 0)

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily | CounterMetricFamily]:
        """The metric families, read from the counters now."""
        if self._depth is not None:
            yield depth_family(self._depth())
        wait = HistogramMetricFamily(
            "tasks_wait_seconds",
            "Time from enqueue (or a retry falling due) to start, per priority.",
            labels=["priority"],
        )
        for label, buckets in self.wait.items():
            wait.add_metric([label], *buckets.exposition())
        yield wait
        run = HistogramMetricFamily(
            "tasks_run_seconds", "Time one attempt of a task ran.", labels=["task"]
        )
        for name, buckets in self.run.items():
            run.add_metric([name], *buckets.exposition())
        yield run
        for metric, help_text, values in (
            ("tasks_succeeded", "Tasks that finished successfully.", self.succeeded),
            ("tasks_failed", "Tasks that failed after their last attempt.", self.failed),
            ("tasks_retried", "Attempts that failed and were scheduled again.", self.retried),
        ):
            family = CounterMetricFamily(metric, help_text, labels=["task"])
            for name, count in values.items():
                family.add_metric([name], count)
            yield family
