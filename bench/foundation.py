"""Render time of the all-features project and run time of the default suite.

Targets (issue "Foundation"): render under 2 s; the default project's own test
suite under 60 s on a 2-core machine. Printed as measured values and as ratios
against those budgets (below 1.0 is within budget). Run:

    .venv/bin/python bench/foundation.py [--renders 5] [--suite-runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avanzada.checks import render, run_suite
from avanzada.combinations import supported
from avanzada.store import TemplateStore

RENDER_BUDGET_S = 2.0
SUITE_BUDGET_S = 60.0


def time_renders(answers: dict[str, object], runs: int, work: Path) -> list[float]:
    """Seconds per render, as `avanzada new` does it: from the store at its tag."""
    store = TemplateStore(work / "home" / "template")
    tag = store.sync()
    seconds = []
    for run in range(runs):
        started = time.perf_counter()
        render(answers, work / f"render-{run}", store=store, vcs_ref=tag)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_suite(runs: int, work: Path) -> tuple[float, list[float]]:
    """Install time once, then seconds per run of the default project's pytest."""
    project = render(supported()["default"], work / "default")
    prepared = run_suite(project)  # creates .venv, installs, runs once (warm-up)
    if not prepared.ok:
        sys.exit(f"default suite failed:\n{prepared.output}")
    python = project / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        seconds.append(time.perf_counter() - started)
    return prepared.seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--suite-runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="avanzada-bench-") as tmp:
        work = Path(tmp)
        os.environ["AVANZADA_HOME"] = str(work / "home")
        renders = time_renders(supported()["all-redis"], args.renders, work)
        first_suite, suites = time_suite(args.suite_runs, work)
    render_median = statistics.median(renders)
    suite_median = statistics.median(suites)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"render all-redis (all features): median {render_median:.2f} s "
        f"over {len(renders)} (min {min(renders):.2f}, max {max(renders):.2f}); "
        f"ratio to the {RENDER_BUDGET_S:.0f} s budget: {render_median / RENDER_BUDGET_S:.2f}"
    )
    print(
        f"default project's suite: median {suite_median:.1f} s over {len(suites)} "
        f"(first run incl. venv + install: {first_suite:.1f} s); "
        f"ratio to the {SUITE_BUDGET_S:.0f} s budget: {suite_median / SUITE_BUDGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
