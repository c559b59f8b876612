"""The message bus between processes: one interface, an in-memory and a Redis implementation.

A published frame goes to the bus; the bus hands it to the ``Deliver`` callback
of every process subscribed (in memory: only this one). Each process then fans
the frame out to its own members, so a message published on one worker reaches
members on every worker.
"""

from collections.abc import Callable
from typing import Protocol

Deliver = Callable[[str, str], None]
"""Called with ``(room, frame)`` for every frame the bus carries to this process."""


class BusUnavailable(Exception):
    """The bus cannot carry a message to every process now; nobody received it."""


class Bus(Protocol):
    """Carries encoded frames to every process that serves rooms."""

    async def publish(self, room: str, frame: str) -> None:
        """Send ``frame`` to the members of ``room`` in every process.

        ``BusUnavailable`` when it cannot reach them all: then it reached none.
        """
        ...

    async def start(self, deliver: Deliver) -> None:
        """Begin handing frames to ``deliver``."""
        ...

    async def stop(self) -> None:
        """Stop delivering and release connections."""
        ...


class MemoryBus:
    """The single-process bus: publishing delivers at once, in this process."""

    def __init__(self) -> None:
        """Create a bus that delivers nothing until started."""
        self._deliver: Deliver | None = None

    async def publish(self, room: str, frame: str) -> None:
        """Deliver ``frame`` to this process's members of ``room``."""
        if self._deliver is not None:
            self._deliver(room, frame)

    async def start(self, deliver: Deliver) -> None:
        """Deliver published frames to ``deliver`` from now on."""
        self._deliver = deliver

    async def stop(self) -> None:
        """Drop frames published from now on."""
        self._deliver = None


class MemberCounts(Protocol):
    """Member counts shared between processes (with Redis scale-out)."""

    def changed(self, room: str) -> None:
        """This process's member count of ``room`` changed; share it soon."""
        ...

    async def start(self, count_of: Callable[[str], int]) -> None:
        """Begin sharing; ``count_of(room)`` is this process's member count."""
        ...

    async def stop(self) -> None:
        """Withdraw this process's counts and stop sharing."""
        ...

    async def total(self, room: str, local: int) -> int | None:
        """Members of ``room`` on every live process; ``None`` when that cannot be known."""
        ...
