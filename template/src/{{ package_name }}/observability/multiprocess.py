"""Shared metric files for several uvicorn workers (prometheus-client multiprocess mode).

Each worker is its own process with its own counters; a scrape reaches one of
them. prometheus-client solves this with memory-mapped files in a directory
named by ``PROMETHEUS_MULTIPROC_DIR``: every worker writes its samples there and
``/metrics`` merges them. prometheus-client reads the variable once, when it is
first imported, so the supervisor must set it before it starts the workers.
This module deliberately does not import prometheus_client.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory when multiprocess mode is on, else ``None``.

    This reads the environment, like prometheus-client itself does, so both
    always agree on the mode.
    """
    return os.environ.get(MULTIPROC_DIR_ENV) or None


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[str | None]:
    """Set up a fresh, private metrics directory for ``workers`` > 1 and remove it after.

    With one worker there is nothing to share: an inherited variable (say from
    a shell that ran another service) is dropped so it cannot point this one at
    stale files.
    """
    previous = os.environ.pop(MULTIPROC_DIR_ENV, None)
    path = tempfile.mkdtemp(prefix="metrics-") if workers > 1 else None
    if path is not None:
        os.environ[MULTIPROC_DIR_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        if previous is not None:
            os.environ[MULTIPROC_DIR_ENV] = previous
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
