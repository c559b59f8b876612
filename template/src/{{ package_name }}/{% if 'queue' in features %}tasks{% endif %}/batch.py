"""Batch processor: collect items, write them in bulk at a size or an age, whichever first.

One flusher task owns every flush; adding an item only signals it. No flush
ever cancels the task it runs in (a timer that cancelled its own task lost
every timed batch that way). Closing flushes what is left.

One bad item must not sink its batch: when the sink refuses the data itself
(``ItemsRejected``: PostgreSQL refusing a NUL byte, say), the batch is split in
halves and each half written again, down to the single items it refuses,
which go to the dead-letter sink. A batch whose write fails otherwise (the
database is down) is retried with backoff, and after the last try goes to the
dead-letter sink whole. Either way the processor goes on, and whoever waits
on an item (``write``) learns whether it was written: never a success for an
item that was not.
"""

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ItemsRejected(Exception):
    """The sink refused the items themselves: writing them again cannot succeed."""


class ItemNotWritten(Exception):
    """The item went to the dead-letter sink instead of the sink (the reason is the message)."""


class BatchSink(Protocol):
    """Where batches go: one call writes one whole batch, or raises."""

    async def write(self, items: Sequence[dict[str, Any]]) -> None:
        """Write ``items`` durably, all or nothing; ``ItemsRejected`` if the data is refused."""
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
        dead_letter: BatchSink | None = None,
    ) -> None:
        """Flush ``batch_size`` items, or whatever waited ``max_wait`` seconds.

        Items the sink cannot take go to ``dead_letter`` (with the reason), if given.
        """
        self.sink = sink
        self.dead_letter = dead_letter
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_pending = max_pending if max_pending is not None else batch_size * 100
        # Arrival time (the age of the oldest decides a timed flush), item, and
        # the future of whoever waits for it to be written.
        self._items: list[_Entry] = []
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        self.flushed_batches = 0
        self.flushed_items = 0
        self.failed_batches = 0
        self.failed_items = 0
        """Items not written: dead-lettered (or lost, if the dead-letter sink failed too)."""
        self.on_failed: Callable[[int], None] = _ignore
        """Called with the number of items each time some are not written (a metric)."""

    @property
    def pending(self) -> int:
        """Items waiting for a flush."""
        return len(self._items)

    def start(self) -> None:
        """Start the flusher task."""
        self._flusher = asyncio.create_task(self._run(), name="batch-flusher")

    async def add(self, item: dict[str, Any]) -> None:
        """Buffer ``item``; waits while ``max_pending`` items are already buffered."""
        await self._buffer(item, None)

    async def write(self, item: dict[str, Any]) -> None:
        """Buffer ``item`` and return once it is written; ``ItemNotWritten`` if it never is."""
        written = asyncio.get_running_loop().create_future()
        await self._buffer(item, written)
        await written

    async def _buffer(self, item: dict[str, Any], written: "asyncio.Future[None] | None") -> None:
        if self._closing:
            raise RuntimeError("the batch processor is closed")
        while len(self._items) >= self.max_pending:
            self._space.clear()
            await self._space.wait()
        self._items.append(_Entry(time.monotonic(), item, written))
        if len(self._items) == 1 or len(self._items) >= self.batch_size:
            self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._items:
                full = len(self._items) >= self.batch_size
                age = time.monotonic() - self._items[0].arrived
                if not full and not self._closing and age < self.max_wait:
                    try:
                        async with asyncio.timeout(self.max_wait - age):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                    self._wakeup.clear()
                    continue
                batch = self._items[: self.batch_size]
                del self._items[: self.batch_size]
                self._space.set()
                await self._flush(batch)
            if self._closing:
                return

    async def _flush(self, batch: list["_Entry"]) -> None:
        try:
            await self._write_retrying(batch)
        except ItemsRejected as exc:
            if len(batch) > 1:
                # Halves, not items one by one: one bad item in n costs about
                # 2 log2(n) writes, and the good items still go in bulk.
                middle = len(batch) // 2
                await self._flush(batch[:middle])
                await self._flush(batch[middle:])
            else:
                await self._not_written(batch, exc, attempts=1)
        except Exception as exc:
            await self._not_written(batch, exc, attempts=self.max_retries + 1)
        else:
            self.flushed_batches += 1
            self.flushed_items += len(batch)
            for entry in batch:
                if entry.written is not None and not entry.written.done():
                    entry.written.set_result(None)

    async def _write_retrying(self, batch: list["_Entry"]) -> None:
        """Write ``batch``, retrying failures other than ``ItemsRejected`` with backoff."""
        items = [entry.item for entry in batch]
        for attempt in range(1, self.max_retries + 2):
            try:
                await self.sink.write(items)
            except ItemsRejected:
                raise
            except Exception as exc:
                if attempt > self.max_retries:
                    raise
                delay = self.retry_backoff * 2 ** (attempt - 1)
                logger.warning(
                    "batch write failed, retrying",
                    extra={"items": len(batch), "attempt": attempt, "retry_in": delay,
                           "error": f"{type(exc).__name__}: {exc}"},
                )  # fmt: skip
                await asyncio.sleep(delay)
            else:
                return

    async def _not_written(self, batch: list["_Entry"], exc: Exception, attempts: int) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.failed_batches += 1
        self.failed_items += len(batch)
        self.on_failed(len(batch))
        where = "dropped"
        if self.dead_letter is not None:
            rejected_at = datetime.now(UTC).isoformat()
            letters = [
                {"item": entry.item, "error": reason, "rejected_at": rejected_at} for entry in batch
            ]
            try:
                await self.dead_letter.write(letters)
                where = "dead-lettered"
            except Exception as dead:
                reason += f" (and the dead-letter write failed: {type(dead).__name__}: {dead})"
        logger.error(
            f"batch items not written, {where}",
            extra={"items": len(batch), "attempts": attempts, "error": reason},
        )
        for entry in batch:
            if entry.written is not None and not entry.written.done():
                entry.written.set_exception(ItemNotWritten(f"not written ({where}): {reason}"))

    async def close(self) -> None:
        """Flush everything buffered (retries included), then stop the flusher."""
        self._closing = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher


class _Entry:
    """One buffered item."""

    __slots__ = ("arrived", "item", "written")

    def __init__(
        self, arrived: float, item: dict[str, Any], written: "asyncio.Future[None] | None"
    ) -> None:
        self.arrived = arrived
        self.item = item
        self.written = written


def _ignore(count: int) -> None:
    pass
