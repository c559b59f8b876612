"""Batch processor: collect items, write them in bulk at a size or an age, whichever first.

One flusher task owns every flush; adding an item only signals it. No flush
ever cancels the task it runs in (the seed's timed batches were lost that
way). A batch whose write fails is retried with backoff; after the last try
it is reported (logged with its size and counted) and the processor goes on.
Closing flushes what is left.
"""

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class BatchSink(Protocol):
    """Where batches go: one call writes one whole batch, or raises."""

    async def write(self, items: Sequence[dict[str, Any]]) -> None:
        """Write ``items`` durably, all or nothing."""
        ...


class JsonLinesSink:
    """Appends each batch to a JSON-lines file, one write and one fsync per batch."""

    def __init__(self, path: Path) -> None:
        """Write to ``path`` (created with its folder on first write)."""
        self.path = path

    async def write(self, items: Sequence[dict[str, Any]]) -> None:
        """Append the batch in a thread, so the event loop never waits on the disk."""
        text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
        await asyncio.to_thread(self._append, text)

    def _append(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())


class BatchProcessor:
    """Buffers items and flushes them to a sink by size, by age and on close."""

    def __init__(
        self,
        sink: BatchSink,
        *,
        batch_size: int,
        max_wait: float,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        max_pending: int | None = None,
    ) -> None:
        """Flush ``batch_size`` items, or whatever waited ``max_wait`` seconds."""
        self.sink = sink
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_pending = max_pending if max_pending is not None else batch_size * 100
        # (arrival time, item): the age of the oldest one decides a timed flush.
        self._items: list[tuple[float, dict[str, Any]]] = []
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        self.flushed_batches = 0
        self.flushed_items = 0
        self.failed_batches = 0
        self.failed_items = 0

    @property
    def pending(self) -> int:
        """Items waiting for a flush."""
        return len(self._items)

    def start(self) -> None:
        """Start the flusher task."""
        self._flusher = asyncio.create_task(self._run(), name="batch-flusher")

    async def add(self, item: dict[str, Any]) -> None:
        """Buffer ``item``; waits while ``max_pending`` items are already buffered."""
        if self._closing:
            raise RuntimeError("the batch processor is closed")
        while len(self._items) >= self.max_pending:
            self._space.clear()
            await self._space.wait()
        self._items.append((time.monotonic(), item))
        if len(self._items) == 1 or len(self._items) >= self.batch_size:
            self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._items:
                full = len(self._items) >= self.batch_size
                age = time.monotonic() - self._items[0][0]
                if not full and not self._closing and age < self.max_wait:
                    try:
                        async with asyncio.timeout(self.max_wait - age):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                    self._wakeup.clear()
                    continue
                batch = [item for _, item in self._items[: self.batch_size]]
                del self._items[: self.batch_size]
                self._space.set()
                await self._flush(batch)
            if self._closing:
                return

    async def _flush(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(1, self.max_retries + 2):
            try:
                await self.sink.write(batch)
            except Exception as exc:
                if attempt > self.max_retries:
                    self.failed_batches += 1
                    self.failed_items += len(batch)
                    logger.error(
                        "batch write failed, batch dropped after retries",
                        extra={"items": len(batch), "attempts": attempt,
                               "error": f"{type(exc).__name__}: {exc}"},
                    )  # fmt: skip
                    return
                delay = self.retry_backoff * 2 ** (attempt - 1)
                logger.warning(
                    "batch write failed, retrying",
                    extra={"items": len(batch), "attempt": attempt, "retry_in": delay,
                           "error": f"{type(exc).__name__}: {exc}"},
                )  # fmt: skip
                await asyncio.sleep(delay)
            else:
                self.flushed_batches += 1
                self.flushed_items += len(batch)
                return

    async def close(self) -> None:
        """Flush everything buffered (retries included), then stop the flusher."""
        self._closing = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher
