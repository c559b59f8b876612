"""The task registry: ``@task`` turns a function into a named, enqueueable task.

The same registry feeds both engines: the in-process queue runs the functions
in the server's event loop, and with Redis scale-out streaq's worker processes
run them. A task's arguments and result travel as JSON, so both engines accept
the same calls.
"""

import asyncio
import inspect
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from starlette.datastructures import State


class Priority(IntEnum):
    """Task priorities; a smaller value runs first."""

    URGENT = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @property
    def label(self) -> str:
        """The name the API uses: ``urgent``, ``high``, ``normal`` or ``low``."""
        return self.name.lower()


PRIORITY_LABELS: Final = tuple(priority.label for priority in Priority)
"""Valid priority names, most urgent first."""

TaskFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A registered task: its function and the policy it runs under.

    ``None`` for ``timeout`` or ``max_retries`` means the queue's defaults.
    """

    name: str
    function: TaskFunction
    is_async: bool
    timeout: float | None
    max_retries: int | None
    doc: str
    signature: inspect.Signature
    takes_no_arguments: bool

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` when the arguments do not fit the function's signature."""
        self.signature.bind(*args, **kwargs)

    async def call(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run the function once: async ones in the loop, sync ones in a thread."""
        if self.is_async:
            return await self.function(*args, **kwargs)
        # A sync function would block every request while it runs.
        return await asyncio.to_thread(self.function, *args, **kwargs)


class TooLargeError(ValueError):
    """A task's arguments or result are larger, as JSON, than the configured limit."""


def json_size(value: Any) -> int:
    """Bytes ``value`` takes as compact JSON (what both engines store)."""
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def check_arguments(args: list[Any], kwargs: dict[str, Any], limit: int) -> None:
    """``TooLargeError`` when the arguments take more than ``limit`` bytes as JSON."""
    if args or kwargs:
        size = json_size([args, kwargs])
        if size > limit:
            raise TooLargeError(f"the arguments are {size} bytes as JSON; at most {limit} allowed")


def result_too_large(result: Any, limit: int) -> str | None:
    """The error to store instead of ``result`` when it is over ``limit`` bytes, else ``None``.

    Results stay in memory (or Redis) until they expire: an unbounded one is
    unbounded memory.
    """
    size = json_size(result)
    if size <= limit:
        return None
    return f"TooLargeError: the result is {size} bytes as JSON; at most {limit} are kept"


class UnknownTaskError(LookupError):
    """No task is registered under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        """Name the unknown task and the known ones."""
        self.name = name
        self.known = known
        super().__init__(f"unknown task {name!r}; known tasks: {', '.join(known) or 'none'}")


class TaskRegistry:
    """Tasks by name, registered with the ``task`` decorator."""

    def __init__(self) -> None:
        """Create an empty registry."""
        self._specs: dict[str, TaskSpec] = {}

    def task(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Register the decorated function (sync or async) under ``name``.

        The function is returned unchanged, so it can still be called directly.
        """

        def register(function: TaskFunction) -> TaskFunction:
            task_name = name or function.__name__
            signature = inspect.signature(function)
            if task_name in self._specs:
                raise ValueError(f"task {task_name!r} is already registered")
            self._specs[task_name] = TaskSpec(
                name=task_name,
                function=function,
                is_async=inspect.iscoroutinefunction(function),
                timeout=timeout,
                max_retries=max_retries,
                doc=inspect.getdoc(function) or "",
                signature=signature,
                takes_no_arguments=_binds(signature),
            )
            return function

        return register

    def get(self, name: str) -> TaskSpec:
        """The task named ``name``; ``UnknownTaskError`` names the known ones."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownTaskError(name, self.names) from None

    @property
    def names(self) -> list[str]:
        """Registered task names, sorted."""
        return sorted(self._specs)

    def __iter__(self) -> Iterator[TaskSpec]:
        """The registered tasks, in name order."""
        return iter(self._specs[name] for name in self.names)


def _binds(signature: inspect.Signature) -> bool:
    try:
        signature.bind()
    except TypeError:
        return False
    return True


registry = TaskRegistry()
"""The service's tasks; ``examples.py`` registers into it."""

task = registry.task
"""Decorator registering a function in the service's registry: ``@task()``."""

_app_state: ContextVar[State] = ContextVar("app_state")


def app_state() -> State:
    """The running app's ``state`` (its components), inside a running task."""
    try:
        return _app_state.get()
    except LookupError:
        raise RuntimeError("app_state() is only available inside a running task") from None


def set_app_state(state: State) -> None:
    """Make ``state`` visible to tasks started from the current context."""
    _app_state.set(state)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): ``base * 2**(attempt-1)``, capped."""
    delay: float = min(cap, base * 2 ** (attempt - 1))
    return delay
