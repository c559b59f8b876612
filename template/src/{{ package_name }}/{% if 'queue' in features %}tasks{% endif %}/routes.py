"""HTTP API of the queue: list task names, enqueue a task, read its state."""

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ..auth.http import Caller, forbidden
from ..auth.policy import Principal
from .base import QueueClosedError, QueueFullError, QueueUnavailableError, TaskQueue, TaskState
from .registry import Priority, TooLargeError, UnknownTaskError, registry
from .schema import describe_tasks

router = APIRouter(tags=["tasks"])

PriorityName = Literal["urgent", "high", "normal", "low"]


class TaskRequest(BaseModel):
    """A call to enqueue: a registered task name, its arguments and a priority."""

    # The schema is completed when it is built, after every task module
    # registered its tasks: the valid names, and the arguments each one takes.
    model_config = ConfigDict(json_schema_extra=partial(describe_tasks, registry))

    name: str = Field(min_length=1, max_length=200)
    args: list[Any] | dict[str, Any] = Field(
        default_factory=list,
        description="Positional arguments (a list) or keyword arguments (an object).",
    )
    priority: PriorityName = "normal"


class TaskAccepted(BaseModel):
    """The id to poll ``GET /tasks/{id}`` with."""

    id: str


class TaskStatus(BaseModel):
    """A task's state and, once finished, its result or error."""

    id: str
    name: str
    priority: PriorityName
    state: TaskState
    attempts: int
    result: Any = None
    error: str | None = None
    started_at: float | None = Field(default=None, description="Unix time of the first start.")
    finished_at: float | None = Field(default=None, description="Unix time it finished.")
    worker: str | None = Field(default=None, description="Worker process that ran it (Redis).")


class TaskNames(BaseModel):
    """Registered task names."""

    tasks: list[str]


def owned_id(caller: Principal, queue_id: str) -> str:
    """The id a caller gets: the queue's id behind a tag of the caller who queued it."""
    return f"{caller.owner_tag}-{queue_id}"


def queue_id_for(caller: Principal, task_id: str) -> str | None:
    """The queue's id inside ``task_id`` if ``caller`` queued it, else ``None``."""
    tag, _, queue_id = task_id.partition("-")
    return queue_id if tag == caller.owner_tag and queue_id else None


def _queue(request: Request) -> TaskQueue:
    queue: TaskQueue = request.app.state.tasks
    return queue


def _unprocessable(field: str, message: str) -> HTTPException:
    # The shape FastAPI uses for its own validation errors.
    return HTTPException(
        status_code=422, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}]
    )


_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key or token."}
}


@router.get("/tasks", summary="Registered task names", responses=_UNAUTHORIZED)
async def list_tasks(request: Request, _caller: Caller) -> TaskNames:
    """The names ``POST /tasks`` accepts."""
    return TaskNames(tasks=_queue(request).names)


@router.post(
    "/tasks",
    status_code=202,
    summary="Enqueue a task",
    responses={
        **_UNAUTHORIZED,
        403: {"description": "The token does not grant this priority."},
        413: {"description": "The arguments are larger than the configured limit."},
        503: {"description": "The queue is full, shutting down or unreachable."},
    },
)
async def enqueue_task(body: TaskRequest, request: Request, caller: Caller) -> TaskAccepted:
    """Queue ``name(*args)`` (or ``name(**args)``) at ``priority``.

    An API key may use every priority; a token those its ``enqueue`` grant lists.
    Only the caller who queued a task can read it back.
    """
    if body.priority not in caller.grants.enqueue:
        raise forbidden(request, f"the token does not grant priority {body.priority!r}")
    queue = _queue(request)
    args, kwargs = (body.args, {}) if isinstance(body.args, list) else ([], body.args)
    try:
        task_id = await queue.enqueue(body.name, args, kwargs, Priority[body.priority.upper()])
    except UnknownTaskError as exc:
        raise _unprocessable("name", str(exc)) from None
    except TooLargeError as exc:
        raise HTTPException(status_code=413, detail=str(exc)) from None
    except TypeError as exc:
        raise _unprocessable("args", f"arguments do not fit task {body.name!r}: {exc}") from None
    except (QueueClosedError, QueueFullError, QueueUnavailableError) as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return TaskAccepted(id=owned_id(caller, task_id))


@router.get(
    "/tasks/{task_id}",
    summary="A task's state",
    responses={
        **_UNAUTHORIZED,
        404: {"description": "No task with this id queued by this caller."},
        503: {"description": "The queue is unreachable."},
    },
)
async def get_task(
    task_id: Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")],
    request: Request,
    caller: Caller,
) -> TaskStatus:
    """State (``queued``, ``running``, ``retrying``, ``succeeded``, ``failed``, ``cancelled``).

    Someone else's task is a 404, exactly like an unknown id.
    """
    queue_id = queue_id_for(caller, task_id)
    try:
        view = None if queue_id is None else await _queue(request).get(queue_id)
    except QueueUnavailableError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    if view is None:
        raise HTTPException(
            status_code=404, detail=f"no task with id {task_id!r} (unknown or expired)"
        )
    return TaskStatus(
        id=task_id,
        name=view.name,
        priority=view.priority,
        state=view.state,
        attempts=view.attempts,
        result=view.result,
        error=view.error,
        started_at=view.started_at,
        finished_at=view.finished_at,
        worker=view.worker,
    )
