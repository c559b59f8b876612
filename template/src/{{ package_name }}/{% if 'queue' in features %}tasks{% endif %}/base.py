"""What every queue engine offers the HTTP layer: enqueue, look up, list names."""

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .registry import Priority

TaskState = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]


class QueueClosedError(RuntimeError):
    """The queue is shutting down and takes no more tasks."""


class QueueUnavailableError(RuntimeError):
    """The queue's backing store (Redis) does not answer."""


class QueueFullError(RuntimeError):
    """The queue holds its maximum of unfinished tasks."""


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task's state as ``GET /tasks/{id}`` reports it."""

    id: str
    name: str
    priority: str
    state: TaskState
    attempts: int
    result: Any = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None


class TaskQueue(Protocol):
    """A queue engine: the in-process one, or streaq on Redis."""

    @property
    def names(self) -> list[str]:
        """Registered task names."""
        ...

    async def enqueue(
        self, name: str, args: list[Any], kwargs: dict[str, Any], priority: Priority
    ) -> str:
        """Queue a call of task ``name``; return its id."""
        ...

    async def get(self, task_id: str) -> TaskView | None:
        """The task's state, or ``None`` when unknown (or forgotten)."""
        ...
