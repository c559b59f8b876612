"""Baseline: the seed's PriorityTaskManager (performance-tips.md), kept as written.

Only what stops it from running is fixed: ``time`` is imported and ``logger``
defined. Its workers poll the heap with ``sleep(0.1)`` and drain it without
yielding while it is not empty.
"""

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

logger = logging.getLogger(__name__)


class Priority(IntEnum):
    LOW = 3
    NORMAL = 2
    HIGH = 1
    URGENT = 0


@dataclass
class Task:
    priority: Priority
    func: Callable[..., Any]
    args: tuple[Any, ...] = field(default_factory=tuple)
    kwargs: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def __lt__(self, other: "Task") -> bool:
        return (self.priority, self.created_at) < (other.priority, other.created_at)


class PriorityTaskManager:
    def __init__(self, max_workers: int = 10) -> None:
        self.task_queue: list[Task] = []
        self.max_workers = max_workers
        self.workers: list[asyncio.Task[None]] = []
        self.running = False

    async def add_task(
        self,
        func: Callable[..., Any],
        priority: Priority = Priority.NORMAL,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        task = Task(priority=priority, func=func, args=args, kwargs=kwargs)
        heapq.heappush(self.task_queue, task)

    async def start_workers(self) -> None:
        self.running = True
        self.workers = [
            asyncio.create_task(self._worker(f"worker-{i}")) for i in range(self.max_workers)
        ]

    async def _worker(self, name: str) -> None:
        while self.running:
            if self.task_queue:
                task = heapq.heappop(self.task_queue)
                try:
                    if asyncio.iscoroutinefunction(task.func):
                        await task.func(*task.args, **task.kwargs)
                    else:
                        task.func(*task.args, **task.kwargs)
                except Exception as e:
                    logger.error(f"Task failed in {name}: {e}")
            else:
                await asyncio.sleep(0.1)
