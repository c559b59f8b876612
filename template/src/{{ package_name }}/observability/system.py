"""Process and system gauges from psutil, computed when Prometheus scrapes.

CPU percentages need two readings: psutil's first ``cpu_percent()`` call has no
previous reading and returns a meaningless 0.0. This collector takes its first
reading when it is created (at startup) and from then on reports the CPU used
since the previous scrape. It keeps its own previous readings instead of
psutil's module-level ones, which any other caller (or another thread) would
reset.

With several uvicorn workers the process figures cover the whole service: the
supervisor and all its child processes (the workers and multiprocessing's
resource tracker). A scrape reaches one worker, and reporting only that one
would make the numbers jump between scrapes.
"""

import multiprocessing
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric

from ..resources import open_file_limit


@dataclass(slots=True)
class _CpuReading:
    create_time: float
    cpu_seconds: float
    at: float


class SystemCollector:
    """Prometheus collector for psutil process and system gauges (see module doc)."""

    def __init__(self, *, worker_group: bool = False) -> None:
        """Prime the CPU readings now, so the first scrape reports a real percentage.

        ``worker_group``: this process is one of several uvicorn workers; report
        the supervisor and all its workers together.
        """
        self._worker_group = worker_group
        # A scrape may run in any thread of the server's pool; readings are shared.
        self._lock = threading.Lock()
        self._own = psutil.Process()
        self._readings: dict[int, _CpuReading] = {}
        self._system_previous = _system_cpu_times()
        with self._lock:
            self._cpu_percent(self._own)

    def describe(self) -> Iterable[Metric]:
        """Name the metrics without reading them, so registering keeps the priming intact."""
        return [GaugeMetricFamily(name, text) for name, text in self._help().items()]

    def collect(self) -> Iterable[Metric]:
        """Read psutil now and return the gauges."""
        with self._lock:
            values = self._process_values()
            values["service_system_cpu_percent"] = self._system_cpu_percent()
        memory = psutil.virtual_memory()
        values["service_system_memory_used_bytes"] = float(memory.used)
        values["service_system_memory_percent"] = float(memory.percent)
        return [
            GaugeMetricFamily(name, text, value=values[name]) for name, text in self._help().items()
        ]

    def _process_values(self) -> dict[str, float]:
        cpu = rss = threads = fds = 0.0
        count = 0
        processes = self._processes()
        for process in processes:
            try:
                with process.oneshot():
                    cpu += self._cpu_percent(process)
                    rss += process.memory_info().rss
                    threads += process.num_threads()
                    fds += _open_fds(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                # A worker that exits between listing and reading is simply gone.
                continue
            count += 1
        live = {process.pid for process in processes}
        for pid in [pid for pid in self._readings if pid not in live]:
            del self._readings[pid]
        return {
            "service_process_cpu_percent": cpu,
            "service_process_resident_memory_bytes": rss,
            "service_process_threads": threads,
            "service_process_open_fds": fds,
            "service_process_max_fds": float(open_file_limit()),
            "service_processes": float(count),
        }

    def _help(self) -> dict[str, str]:
        scope = "the service's processes" if self._worker_group else "the process"
        return {
            "service_process_cpu_percent": (
                f"CPU used by {scope} since the previous scrape, in percent of one core."
            ),
            "service_process_resident_memory_bytes": f"Resident memory of {scope}, in bytes.",
            "service_process_threads": f"Threads of {scope}.",
            "service_process_open_fds": f"Open file descriptors of {scope}.",
            "service_process_max_fds": "Soft open-file limit of one process of the service.",
            "service_processes": "Processes of the service: 1, or the supervisor and its children.",
            "service_system_cpu_percent": (
                "CPU busy on the machine since the previous scrape, in percent of all cores."
            ),
            "service_system_memory_used_bytes": "Memory used on the machine, in bytes.",
            "service_system_memory_percent": "Memory used on the machine, in percent.",
        }

    def _processes(self) -> list[psutil.Process]:
        supervisor = multiprocessing.parent_process()
        if not self._worker_group or supervisor is None or supervisor.pid is None:
            return [self._own]
        try:
            parent = psutil.Process(supervisor.pid)
            return [parent, *parent.children()]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return [self._own]

    def _cpu_percent(self, process: psutil.Process) -> float:
        times = process.cpu_times()
        cpu_seconds = times.user + times.system
        now = time.monotonic()
        create_time = process.create_time()
        previous = self._readings.get(process.pid)
        self._readings[process.pid] = _CpuReading(create_time, cpu_seconds, now)
        if previous is None or previous.create_time != create_time:
            # First sight of this process (a worker that started after us): the
            # average over its life is the only honest figure available.
            lifetime = max(time.time() - create_time, 1e-6)
            return 100.0 * cpu_seconds / lifetime
        elapsed = now - previous.at
        if elapsed <= 0:
            return 0.0
        return max(0.0, 100.0 * (cpu_seconds - previous.cpu_seconds) / elapsed)

    def _system_cpu_percent(self) -> float:
        current = _system_cpu_times()
        busy = current[0] - self._system_previous[0]
        total = current[1] - self._system_previous[1]
        self._system_previous = current
        if total <= 0:
            return 0.0
        return min(100.0, max(0.0, 100.0 * busy / total))


def _system_cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine, counted the way psutil does."""
    times = psutil.cpu_times()
    total = sum(times)
    # On Linux guest time is already part of user and nice time.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _open_fds(process: psutil.Process) -> int:
    if sys.platform == "win32":
        return process.num_handles()
    return process.num_fds()
