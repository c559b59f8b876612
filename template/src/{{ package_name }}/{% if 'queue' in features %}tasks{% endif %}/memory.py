"""The in-process priority queue: the embedded engine when the service runs alone.

Workers wait on the queue (a future each) instead of polling it, so an idle
worker costs nothing and a new task starts as soon as a worker is free.
Priorities are strict (``urgent`` before ``high`` before ``normal`` before
``low``) and first-in first-out within one priority. A worker that has a long
run of ready tasks yields to the event loop every few milliseconds, so requests
keep being answered during a burst.
"""

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .base import QueueClosedError, QueueFullError, TaskState, TaskView
from .metrics import TaskMetrics
from .registry import (
    PRIORITY_LABELS,
    Priority,
    TaskRegistry,
    TaskSpec,
    backoff_delay,
    check_arguments,
    result_too_large,
)

logger = logging.getLogger(__name__)

_TIME_SLICE = 0.002
"""Seconds a worker runs ready tasks back to back before it lets the loop serve others.

Every worker may use one slice per turn of the event loop, so a request waits
at most about ``workers * _TIME_SLICE`` for the queue during a burst."""


class _Record:
    """One task's state; kept in the bounded store until it is forgotten."""

    __slots__ = (
        "args",
        "attempts",
        "error",
        "finished_at",
        "id",
        "kwargs",
        "priority",
        "ready_at",
        "result",
        "spec",
        "started_at",
        "state",
    )

    def __init__(
        self,
        task_id: str,
        spec: TaskSpec,
        args: list[Any],
        kwargs: dict[str, Any],
        priority: Priority,
    ) -> None:
        self.id = task_id
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        self.priority = int(priority)  # a plain int indexes faster than the enum
        self.state: TaskState = "queued"
        self.attempts = 0
        self.result: Any = None
        self.error: str | None = None
        self.ready_at = time.monotonic()  # the event loop's clock
        self.started_at: float | None = None  # Unix time, for clients
        self.finished_at: float | None = None

    def view(self) -> TaskView:
        return TaskView(
            id=self.id,
            name=self.spec.name,
            priority=PRIORITY_LABELS[self.priority],
            state=self.state,
            attempts=self.attempts,
            result=self.result,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class _Worker:
    """A worker task and the deadline of the task it runs."""

    __slots__ = ("current", "deadline", "task", "timed_out", "timer")

    def __init__(self, task: "asyncio.Task[Any] | None") -> None:
        assert task is not None
        self.task = task
        self.current: _Record | None = None
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out: _Record | None = None


@dataclass(frozen=True)
class DrainReport:
    """What shutdown finished and what it had to give up on."""

    completed: int
    unfinished: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueuePolicy:
    """Limits and defaults of the in-process queue."""

    workers: int = 4
    timeout: float = 30.0
    max_retries: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    max_pending: int = 100_000
    results_kept: int = 10_000
    max_args_bytes: int = 65_536
    max_result_bytes: int = 65_536


class MemoryTaskQueue:
    """Priority queue with worker tasks, retries, timeouts, bounded results and drain."""

    def __init__(self, registry: TaskRegistry, policy: QueuePolicy) -> None:
        """Prepare the queue; ``start`` launches the workers."""
        self._registry = registry
        self._policy = policy
        self._queues: tuple[deque[_Record], ...] = tuple(deque() for _ in Priority)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._records: dict[str, _Record] = {}
        self._finished: deque[str] = deque()
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._accepting = False
        self._completed = 0
        self.metrics = TaskMetrics(registry.names, self.depth)
        self._wait_buckets = [self.metrics.wait[label] for label in PRIORITY_LABELS]

    @property
    def names(self) -> list[str]:
        """Registered task names."""
        return self._registry.names

    def depth(self) -> dict[str, int]:
        """Tasks waiting to start, per priority label."""
        return {
            label: len(queue) for label, queue in zip(PRIORITY_LABELS, self._queues, strict=True)
        }

    def start(self) -> None:
        """Launch the worker tasks and accept tasks."""
        self._workers = [
            asyncio.create_task(self._work(), name=f"task-worker-{number}")
            for number in range(self._policy.workers)
        ]
        self._accepting = True

    async def enqueue(
        self, name: str, args: list[Any], kwargs: dict[str, Any], priority: Priority
    ) -> str:
        """Queue a call of task ``name``; return its id (see ``submit``)."""
        return self.submit(name, args, kwargs, priority)

    def submit(
        self,
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> str:
        """Queue a call without awaiting; raise if closed, full, unknown or misfitting."""
        if not self._accepting:
            raise QueueClosedError("the task queue is not accepting tasks (shutting down)")
        if self._unfinished >= self._policy.max_pending:
            raise QueueFullError(f"the task queue holds {self._unfinished} unfinished tasks")
        spec = self._registry.get(name)
        args = args if args is not None else []
        kwargs = kwargs if kwargs is not None else {}
        if args or kwargs or not spec.takes_no_arguments:
            spec.bind(args, kwargs)
            check_arguments(args, kwargs, self._policy.max_args_bytes)
        # Unguessable (128 random bits): an id is all a reader needs besides its credential.
        task_id = secrets.token_hex(16)
        record = _Record(task_id, spec, args, kwargs, priority)
        self._records[task_id] = record
        if self._unfinished == 0:
            self._idle.clear()
        self._unfinished += 1
        self._push(record)
        return task_id

    async def get(self, task_id: str) -> TaskView | None:
        """The task's state, or ``None`` when unknown or forgotten."""
        record = self._records.get(task_id)
        return record.view() if record is not None else None

    def _push(self, record: _Record) -> None:
        self._queues[record.priority].append(record)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _pop(self) -> _Record | None:
        for queue in self._queues:
            if queue:
                return queue.popleft()
        return None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time
        me = _Worker(asyncio.current_task())
        slice_started = clock()
        while True:
            record = self._pop()
            if record is None:
                waiter = loop.create_future()
                self._waiters.append(waiter)
                await waiter
                slice_started = clock()
                continue
            await self._run(record, me, loop)
            if clock() - slice_started > _TIME_SLICE:
                # Tasks that never suspend would otherwise hold the loop for the
                # whole burst; one yield lets pending requests through.
                await asyncio.sleep(0)
                slice_started = clock()

    def _arm(self, me: "_Worker", loop: asyncio.AbstractEventLoop) -> None:
        # One timer per worker, re-armed only when it fires or must fire sooner:
        # a timer per task (asyncio.timeout) would cost more than a no-op task.
        if me.timer is None or me.timer.when() > me.deadline:
            if me.timer is not None:
                me.timer.cancel()
            me.timer = loop.call_at(me.deadline, self._check_deadline, me, loop)

    def _check_deadline(self, me: "_Worker", loop: asyncio.AbstractEventLoop) -> None:
        me.timer = None
        if me.current is None:
            return
        if loop.time() >= me.deadline:
            me.timed_out = me.current
            me.task.cancel()
        else:
            self._arm(me, loop)

    async def _run(self, record: _Record, me: "_Worker", loop: asyncio.AbstractEventLoop) -> None:
        spec = record.spec
        metrics = self.metrics
        started = loop.time()
        self._wait_buckets[record.priority].observe(started - record.ready_at)
        record.state = "running"
        record.attempts += 1
        if record.started_at is None:
            record.started_at = time.time()
        timeout = spec.timeout if spec.timeout is not None else self._policy.timeout
        me.current = record
        me.deadline = started + timeout
        self._arm(me, loop)
        try:
            if spec.is_async:
                record.result = await spec.function(*record.args, **record.kwargs)
            else:
                record.result = await asyncio.to_thread(
                    spec.function, *record.args, **record.kwargs
                )
        except asyncio.CancelledError:
            if me.timed_out is not record:
                # Shutdown: the worker itself is being cancelled.
                me.current = None
                record.state = "cancelled"
                record.error = "cancelled: not finished before shutdown"
                self._finish(record)
                raise
            me.task.uncancel()
            me.timed_out = me.current = None
            metrics.run[spec.name].observe(loop.time() - started)
            record.error = f"TimeoutError: no result within {timeout:g} s"
            self._failed_attempt(record)
        except Exception as exc:
            me.current = None
            metrics.run[spec.name].observe(loop.time() - started)
            record.error = f"{type(exc).__name__}: {exc}"
            self._failed_attempt(record)
        else:
            me.current = None
            metrics.run[spec.name].observe(loop.time() - started)
            too_large = result_too_large(record.result, self._policy.max_result_bytes)
            if too_large is not None:
                # Deterministic: another attempt would return the same; not retried.
                record.result, record.error, record.state = None, too_large, "failed"
                metrics.failed[spec.name] += 1
                logger.error("task result too large", extra={"task": spec.name, "error": too_large})
            else:
                record.state = "succeeded"
                record.error = None
                metrics.succeeded[spec.name] += 1
            self._finish(record)

    def _failed_attempt(self, record: _Record) -> None:
        spec = record.spec
        max_retries = spec.max_retries if spec.max_retries is not None else self._policy.max_retries
        if record.attempts <= max_retries and self._accepting:
            record.state = "retrying"
            self.metrics.retried[spec.name] += 1
            delay = backoff_delay(
                record.attempts, self._policy.retry_backoff, self._policy.retry_backoff_max
            )
            logger.warning(
                "task attempt failed, retrying",
                extra={"task": spec.name, "task_id": record.id, "attempt": record.attempts,
                       "retry_in": delay, "error": record.error},
            )  # fmt: skip
            loop = asyncio.get_running_loop()
            timer: asyncio.TimerHandle | None = None

            def requeue() -> None:
                if timer is not None:
                    self._retry_timers.discard(timer)
                record.state = "queued"
                record.ready_at = loop.time()
                self._push(record)

            timer = loop.call_later(delay, requeue)
            self._retry_timers.add(timer)
            return
        record.state = "failed"
        self.metrics.failed[spec.name] += 1
        logger.error(
            "task failed",
            extra={"task": spec.name, "task_id": record.id, "attempts": record.attempts,
                   "error": record.error},
        )  # fmt: skip
        self._finish(record)

    def _finish(self, record: _Record) -> None:
        record.finished_at = time.time()
        self._completed += 1
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()
        # Keep results of the latest tasks only; unfinished ones are never dropped.
        self._finished.append(record.id)
        if len(self._finished) > self._policy.results_kept:
            self._records.pop(self._finished.popleft(), None)

    async def close(self, drain_timeout: float) -> DrainReport:
        """Stop intake, let queued and running tasks finish for up to ``drain_timeout`` s.

        Retries already scheduled still run if they fall due in time; a task that
        fails during the drain is not retried again. What is left is cancelled,
        marked ``cancelled`` and named in the report.
        """
        self._accepting = False
        completed_before = self._completed
        try:
            async with asyncio.timeout(drain_timeout):
                await self._idle.wait()
        except TimeoutError:
            pass
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        unfinished = [
            record.id
            for record in self._records.values()
            if record.state in ("queued", "retrying", "running", "cancelled")
        ]
        for task_id in unfinished:
            record = self._records[task_id]
            record.state = "cancelled"
            record.error = "cancelled: not finished before shutdown"
        for queue in self._queues:
            queue.clear()
        return DrainReport(completed=self._completed - completed_before, unfinished=unfinished)
