"""Rooms and their members: bounded outbound queues, a writer per member with a backlog, eviction.

Broadcast encodes a frame once and offers it to each member without awaiting
anyone: sent at once when the socket takes it, else queued for that member's
writer task, which sends its queue in order. A
member whose queue would exceed its bound (frames or bytes), or whose current
send has been blocked longer than the write timeout, is evicted: removed from
its room at once and closed with 4008. The others never wait for it.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Final

from .bus import Bus, MemberCounts
from .metrics import RoomMetrics
from .protocol import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, batch_frame, is_valid_room, message_frame

logger = logging.getLogger(__name__)

Message = dict[str, Any]
"""An ASGI ``websocket.send`` message; one dict per frame, shared by every member."""

Send = Callable[[Message], Coroutine[Any, Any, None]]
"""The connection's ASGI ``send``."""


def send_message(frame: str) -> Message:
    """The ASGI message that sends ``frame`` as a text frame."""
    return {"type": "websocket.send", "text": frame}


class RoomFullError(Exception):
    """The room already has its maximum number of members."""


class InvalidRoomError(ValueError):
    """The room name does not match ``[A-Za-z0-9_.-]{1,64}``."""


class MessageTooLargeError(ValueError):
    """The encoded frame is larger than a member's outbound queue may hold."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of every member and room (from the settings)."""

    max_members: int
    queue_max_messages: int
    queue_max_bytes: int
    write_timeout: float


# What ``Member.offer`` did with a frame.
SENT: Final = 1
"""Written to the connection at once."""
QUEUED: Final = 0
"""Left for the member's writer task."""
OVERFLOW: Final = -1
"""Refused: the queue would exceed its bound; the member must be evicted."""


def _ignore(count: int) -> None:
    pass


class Member:
    """One WebSocket connection in one room, with its bounded outbound queue.

    An idle member has no task of its own: ``offer`` starts the send itself,
    and an ASGI send to a connection whose socket accepts the bytes completes
    without suspending, so most frames go out with no task switch and no
    writer (``bench/rooms.py``: about a third less server CPU per delivery;
    ``bench/scale.py``: a task per member was a tenth of its memory). A send
    that has to wait (the client is not reading) is handed over, suspended as
    it is, to a writer task started for it, which finishes it and sends what
    queued meanwhile, in order, then ends. The broadcaster never waits.

    ``stop`` wakes the task serving the connection (``wake_on_stop``) by
    cancelling it; that task tells this cancellation from any other with
    ``woken`` and ``Task.uncancel``.
    """

    __slots__ = (
        "_bytes",
        "_handed_over",
        "_limits",
        "_queue",
        "_send",
        "_sent",
        "_wake",
        "close_code",
        "close_reason",
        "room",
        "send_started",
        "stopped",
        "woken",
        "writer",
    )

    def __init__(
        self, room: str, send: Send, limits: Limits, on_sent: Callable[[int], None] = _ignore
    ) -> None:
        """A member of ``room`` whose frames go out through ``send``; ``on_sent`` counts them."""
        self.room = room
        self._send = send
        self._limits = limits
        self._sent = on_sent
        # Created with the first backlog: an empty deque alone is 600 bytes.
        self._queue: deque[Message] | None = None
        self._bytes = 0
        self._handed_over: _Resume | None = None
        self._wake: asyncio.Task[Any] | None = None
        self.writer: asyncio.Task[None] | None = None
        """The task sending a backlog; ``None`` while nothing waits."""
        self.send_started: float | None = None
        """Monotonic time the send in progress began; ``None`` while idle."""
        self.stopped = False
        self.woken = False
        """``stop`` cancelled the task given to ``wake_on_stop``."""
        self.close_code: int | None = None
        self.close_reason = ""

    def offer(self, message: Message) -> int:
        """Send or queue ``message`` without waiting: ``SENT``, ``QUEUED`` or ``OVERFLOW``."""
        if self.stopped:
            return QUEUED
        if self.writer is None:
            coroutine = self._send(message)
            try:
                waiting_on = coroutine.send(None)
            except StopIteration:
                return SENT
            except Exception as error:
                # The connection is gone (or the server refused the frame).
                self._failed(error)
                return QUEUED
            self._handed_over = _Resume(coroutine, waiting_on)
            self.send_started = time.monotonic()
            self.writer = asyncio.create_task(self._write_loop(), name=f"room-writer-{self.room}")
            return QUEUED
        size = len(message["text"])
        limits = self._limits
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= limits.queue_max_messages or self._bytes + size > limits.queue_max_bytes:
            return OVERFLOW
        queue.append(message)
        self._bytes += size
        return QUEUED

    def wake_on_stop(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` (once) when something else stops the member; at once if it has."""
        self._wake = task
        if self.stopped:
            self._wake_task()

    def _wake_task(self) -> None:
        task, self._wake = self._wake, None
        # The task itself stopping its member (its read loop, its cleanup) needs
        # no wake-up: it checks ``stopped`` and goes on to close.
        if task is not None and task is not asyncio.current_task():
            self.woken = True
            task.cancel()

    def stop(self, code: int | None, reason: str = "") -> None:
        """Stop writing (also mid-send) and remember how the connection should close.

        ``code`` ``None``: the connection failed, no close frame is due.
        """
        if self.close_code is None and code is not None:
            self.close_code = code
            self.close_reason = reason
        self.stopped = True
        self._queue = None
        self._bytes = 0
        if self.writer is not None:
            self.writer.cancel()
        self._wake_task()

    def _failed(self, error: Exception) -> None:
        if not isinstance(error, OSError):
            # A bug, not a client: say so instead of closing without a word.
            logger.error(
                "room send failed", extra={"room": self.room}, exc_info=(type(error), error, None)
            )
        self.stop(None)

    async def _write_loop(self) -> None:
        send = self._send
        try:
            handed_over = self._handed_over
            if handed_over is not None:
                self._handed_over = None
                await handed_over
                self._sent(1)
            while (queue := self._queue) is not None and queue:
                count = 0
                # Drain what is queued in one go: one wake-up for many frames.
                while queue:
                    message = queue.popleft()
                    self._bytes -= len(message["text"])
                    self.send_started = time.monotonic()
                    await send(message)
                    count += 1
                self._sent(count)
        except Exception as error:
            self._failed(error)
        finally:
            self.send_started = None
            self.writer = None
            self._queue = None
            if self._handed_over is not None:
                self._handed_over.close()
                self._handed_over = None


class _Resume:
    """Await a coroutine that was started elsewhere and suspended on ``waiting_on``.

    ``yield from`` for a coroutine past its first step: every value the task
    sends or throws in goes on to the coroutine, so cancellation and timeouts
    reach the suspended send as usual.
    """

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any]:
        coroutine, value = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    value = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration:
                    return

    def close(self) -> None:
        """Abandon the send (the writer is stopping before it awaited it)."""
        self._coroutine.close()


class Batcher:
    """Per-room batches, flushed at ``size`` frames or after ``max_wait`` seconds.

    The timed flush is a timer callback, not a task, so flushing never cancels
    the code that runs it (a batcher whose timer cancels its own task loses every
    timed batch).
    """

    def __init__(self, size: int, max_wait: float, flush: Callable[[str, str], None]) -> None:
        """Batch frames per room and hand each batch frame to ``flush(room, frame)``."""
        self._size = size
        self._max_wait = max_wait
        self._flush = flush
        self._pending: dict[str, list[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, room: str, frame: str) -> None:
        """Add one message frame to the room's batch."""
        pending = self._pending.setdefault(room, [])
        pending.append(frame)
        if len(pending) >= self._size:
            self.flush(room)
        elif room not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[room] = loop.call_later(self._max_wait, self.flush, room)

    def flush(self, room: str) -> None:
        """Send the room's batch now (nothing if it is empty)."""
        timer = self._timers.pop(room, None)
        if timer is not None:
            timer.cancel()
        frames = self._pending.pop(room, None)
        if frames:
            self._flush(room, batch_frame(frames))

    def flush_all(self) -> None:
        """Send every pending batch (on shutdown)."""
        for room in list(self._pending):
            self.flush(room)


class Rooms:
    """The rooms of this process; ``app.state.rooms``.

    ``publish`` is the one way in: WebSocket members, ``POST
    /rooms/{room}/messages`` and server-side code (a task) all call it, and
    with Redis scale-out it reaches the members on every worker.
    """

    def __init__(
        self,
        bus: Bus,
        limits: Limits,
        metrics: RoomMetrics,
        *,
        batching: tuple[int, float] | None = None,
        counts: MemberCounts | None = None,
    ) -> None:
        """Rooms that publish through ``bus``; ``batching`` is ``(size, max_wait)`` or off.

        ``counts`` shares the member counts with the other processes (Redis).
        """
        self._bus = bus
        self.counts = counts
        self.limits = limits
        self._metrics = metrics
        self._members: dict[str, set[Member]] = {}
        self._batcher = Batcher(*batching, self._fan_out) if batching is not None else None
        self._sweeper: asyncio.Task[None] | None = None
        self._going_away = False
        self._closing: set[Member] = set()
        self._all_closed = asyncio.Event()

    # Lifecycle

    async def start(self) -> None:
        """Subscribe to the bus and start watching for stuck writes."""
        await self._bus.start(self._deliver)
        if self.counts is not None:
            await self.counts.start(self.count)
        self._sweeper = asyncio.create_task(self._sweep(), name="rooms-write-timeouts")

    async def stop(self) -> None:
        """Flush batches, stop every writer and the bus."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._batcher is not None:
            self._batcher.flush_all()
        if self.counts is not None:
            await self.counts.stop()
        await self._bus.stop()

    async def go_away(self) -> None:
        """Close every member with 1001 (server shutting down); return once they are closed.

        A member joining from now on is closed the same way at once.
        """
        self._going_away = True
        members = [member for members in self._members.values() for member in members]
        for member in members:
            member.stop(CLOSE_GOING_AWAY, "Server shutting down")
        self._closing.update(members)
        logger.info("closing room members", extra={"members": len(members)})
        if self._closing:
            await self._all_closed.wait()

    def closed(self, member: Member) -> None:
        """The connection's handler is done with ``member`` (its close frame is out)."""
        if member in self._closing:
            self._closing.discard(member)
            if not self._closing:
                self._all_closed.set()

    # Membership

    def count(self, room: str) -> int:
        """Members of ``room`` connected to this process."""
        return len(self._members.get(room, ()))

    async def count_everywhere(self, room: str) -> tuple[int, bool]:
        """Members of ``room`` on every worker and ``True``; or only here and ``False``.

        Without shared counts (in memory), or while Redis does not answer, the
        count is this process's alone.
        """
        local = self.count(room)
        if self.counts is None:
            return local, False
        total = await self.counts.total(room, local)
        if total is None:
            return local, False
        return total, True

    def join(self, room: str, send: Send) -> Member:
        """Add a member to ``room`` (``RoomFullError`` at capacity)."""
        members = self._members.setdefault(room, set())
        if len(members) >= self.limits.max_members:
            if not members:
                del self._members[room]
            raise RoomFullError(room)
        member = Member(room, send, self.limits, self._metrics.messages_out.inc)
        members.add(member)
        if self.counts is not None:
            self.counts.changed(room)
        self._metrics.connections.inc()
        if self._going_away:
            member.stop(CLOSE_GOING_AWAY, "Server shutting down")
        return member

    def leave(self, member: Member) -> None:
        """Remove ``member`` (idempotent); an empty room is forgotten."""
        members = self._members.get(member.room)
        if members is None or member not in members:
            return
        members.discard(member)
        if not members:
            del self._members[member.room]
        if self.counts is not None:
            self.counts.changed(member.room)
        self._metrics.connections.dec()

    def evict(self, member: Member, reason: str) -> None:
        """Drop a member that does not keep up: out of its room now, closed with 4008."""
        if member.close_code is not None:
            return
        logger.warning("evicting a room member", extra={"room": member.room, "reason": reason})
        self._metrics.evictions.labels(reason).inc()
        self.leave(member)
        member.stop(CLOSE_TOO_SLOW, "Too slow: " + reason.replace("_", " "))

    # Messages

    async def publish(self, room: str, data: Any) -> None:
        """Send ``data`` to every member of ``room``, on every worker.

        Raises ``InvalidRoomError`` for a bad room name, ``TypeError`` or
        ``ValueError`` for data JSON cannot carry, ``MessageTooLargeError``
        when the frame could never fit a member's queue, ``BusUnavailable``
        when the bus (Redis) cannot carry it to every process: then no member
        anywhere received it, and the caller should refuse the message.
        """
        if not is_valid_room(room):
            raise InvalidRoomError(room)
        frame = message_frame(room, data)
        if len(frame) > self.limits.queue_max_bytes:
            raise MessageTooLargeError(
                f"the message is {len(frame)} bytes encoded; at most "
                f"{self.limits.queue_max_bytes} fit a member's queue"
            )
        self._metrics.messages_in.inc()
        await self._bus.publish(room, frame)

    def _deliver(self, room: str, frame: str) -> None:
        # Called by the bus for every frame that reaches this process.
        if room not in self._members:
            return
        if self._batcher is not None:
            self._batcher.add(room, frame)
        else:
            self._fan_out(room, frame)

    def _fan_out(self, room: str, frame: str) -> None:
        members = self._members.get(room)
        if not members:
            return
        started = time.perf_counter()
        sent = 0
        message = send_message(frame)
        # A copy: evicting changes the set while we walk it.
        for member in tuple(members):
            outcome = member.offer(message)
            if outcome == SENT:
                sent += 1
            elif outcome == OVERFLOW:
                self.evict(member, "queue_full")
        if sent:
            self._metrics.messages_out.inc(sent)
        self._metrics.broadcast_seconds.observe(time.perf_counter() - started)

    async def _sweep(self) -> None:
        # One task for all members, instead of a timer around every send.
        timeout = self.limits.write_timeout
        while True:
            await asyncio.sleep(min(timeout / 4, 1.0))
            deadline = time.monotonic() - timeout
            for members in list(self._members.values()):
                for member in tuple(members):
                    started = member.send_started
                    if started is not None and started < deadline:
                        self.evict(member, "write_timeout")
