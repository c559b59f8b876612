"""Load a running service with concurrent HTTP requests and report its throughput.

Start the service first (``just serve``), then::

    uv run python bench/load.py --url http://127.0.0.1:8000/healthz --seconds 10 --concurrency 32

Each of ``--concurrency`` clients sends one request after the other on its own
keep-alive connection for ``--seconds``; the report gives requests per second,
latency percentiles (monotonic clock) and the responses that were not 2xx.
Point it only at services you run yourself.
"""

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    """What the clients saw: one latency per 2xx response, and the failures."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def client(http: httpx.AsyncClient, url: str, deadline: float, tally: Tally) -> None:
    """Send requests one after the other until the deadline."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = await http.get(url)
        except httpx.HTTPError as error:
            tally.fail(type(error).__name__)
            continue
        if response.is_success:
            tally.latencies.append(time.monotonic() - started)
        else:
            tally.fail(f"HTTP {response.status_code}")


async def run(url: str, seconds: float, concurrency: int) -> tuple[Tally, float]:
    """Run the clients; return the tally and the elapsed seconds.

    One connection pool with a keep-alive connection per client, created
    before the clock starts, so setting it up is not measured.
    """
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(client(http, url, deadline, tally) for _ in range(concurrency)))
        return tally, time.monotonic() - started


def report(tally: Tally, elapsed: float) -> str:
    """A short human report of one run."""
    done = len(tally.latencies)
    lines = [f"{done} requests in {elapsed:.2f} s: {done / elapsed:.0f} requests/s"]
    if done >= 2:
        cuts = statistics.quantiles(tally.latencies, n=100)
        lines.append(
            f"latency ms: p50 {cuts[49] * 1000:.1f}, p99 {cuts[98] * 1000:.1f}, "
            f"max {max(tally.latencies) * 1000:.1f}"
        )
    for reason, count in sorted(tally.failures.items()):
        lines.append(f"failed: {count} x {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the load, print the report; 1 when nothing succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8000/healthz")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be positive and --concurrency at least 1")
    tally, elapsed = asyncio.run(run(args.url, args.seconds, args.concurrency))
    print(report(tally, elapsed))
    return 0 if tally.latencies else 1


if __name__ == "__main__":
    sys.exit(main())
