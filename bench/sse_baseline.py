"""The naive baseline of bench/sse.py: an SSE server shaped like the seed's SSEManager.

Written for the benchmark after the seed's design (performance-tips.md), not
copied from it: one ``asyncio.Queue(maxsize=100)`` per client, a new client
gets the whole buffer queued (no ids, so a reconnect replays everything it
already had), a client whose queue is full is dropped from the broadcast, the
heartbeat is a ``data:`` event, and a ``StreamingResponse`` generator asks
``request.is_disconnected()`` before every event. Served by the same uvicorn
as the rendered service:

    python -m uvicorn sse_baseline:app --app-dir bench
"""

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


class SeedShapedManager:
    """Clients' queues and a buffer of every recent event, as the seed keeps them."""

    def __init__(self, buffer_size: int = 1000) -> None:
        self.clients: dict[str, asyncio.Queue[str]] = {}
        self.event_buffer: deque[str] = deque(maxlen=buffer_size)

    async def add_client(self, client_id: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        self.clients[client_id] = queue
        for event in self.event_buffer:  # the whole buffer, again
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
        return queue

    def remove_client(self, client_id: str) -> None:
        self.clients.pop(client_id, None)

    async def broadcast_event(self, event_data: dict[str, Any]) -> None:
        event_json = json.dumps(event_data)
        self.event_buffer.append(event_json)
        dead = []
        for client_id, queue in self.clients.items():
            try:
                queue.put_nowait(event_json)
            except asyncio.QueueFull:
                dead.append(client_id)
        for client_id in dead:
            self.remove_client(client_id)


manager = SeedShapedManager()


@app.get("/sse/stream")
async def sse_stream(request: Request) -> StreamingResponse:
    client_id = str(uuid.uuid4())
    queue = await manager.add_client(client_id)

    async def event_generator() -> AsyncIterator[str]:
        try:
            while True:
                if await request.is_disconnected():
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=30)
                    yield f"data: {event}\n\n"
                except TimeoutError:
                    yield f"data: {json.dumps({'type': 'heartbeat'})}\n\n"
        finally:
            manager.remove_client(client_id)

    return StreamingResponse(
        event_generator(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "X-Accel-Buffering": "no",
        },
    )


@app.post("/sse/events", status_code=202)
async def publish(event: Annotated[dict[str, Any], Body()]) -> dict[str, bool]:
    await manager.broadcast_event(event)
    return {"ok": True}


@app.get("/clients")
async def clients() -> dict[str, int]:
    """For the benchmark: clients registered now."""
    return {"clients": len(manager.clients)}
