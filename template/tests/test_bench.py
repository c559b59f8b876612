"""``bench/load.py`` (``just bench``) loads a real server and reports what it measured."""

import re
import subprocess
import sys
from pathlib import Path

LOAD = Path(__file__).resolve().parents[1] / "bench" / "load.py"


def load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOAD), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_load_reports_throughput_and_latency_of_a_real_server(base_url: str) -> None:
    done = load("--url", f"{base_url}/healthz", "--seconds", "1", "--concurrency", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    first, second, *rest = done.stdout.splitlines()
    counted = re.fullmatch(r"(\d+) requests in ([\d.]+) s: (\d+) requests/s", first)
    assert counted, first
    requests, seconds, rate = int(counted[1]), float(counted[2]), int(counted[3])
    assert requests >= 1 and 1.0 <= seconds < 5.0
    assert abs(rate - requests / seconds) <= 1 + rate / 100, "the rate is requests / seconds"
    assert re.fullmatch(r"latency ms: p50 [\d.]+, p99 [\d.]+, max [\d.]+", second), second
    assert rest == [], "no failed requests"


def test_load_counts_non_2xx_answers_as_failures(base_url: str) -> None:
    done = load("--url", f"{base_url}/no/such/path", "--seconds", "0.5", "--concurrency", "2")
    assert done.returncode == 1, "nothing succeeded"
    assert done.stdout.startswith("0 requests in ")
    assert re.search(r"^failed: \d+ x HTTP 4\d\d$", done.stdout, re.MULTILINE), done.stdout


def test_load_refuses_a_run_that_measures_nothing() -> None:
    done = load("--seconds", "0")
    assert done.returncode == 2
    assert "--seconds must be positive" in done.stderr
