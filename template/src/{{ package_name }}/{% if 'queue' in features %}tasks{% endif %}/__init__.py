"""Priority task queue and batch processor.

Register tasks with ``@task()`` (see ``examples.py``); enqueue them with
``POST /tasks`` or ``app.state.tasks.enqueue(...)``; read their state with
``GET /tasks/{id}``.
"""

from .component import open_tasks
from .registry import Priority, app_state, registry, task
from .routes import router

__all__ = ["Priority", "app_state", "open_tasks", "registry", "router", "task"]
