"""The library comparison of bench/sse.py: one generator, three ways to stream it.

Every client gets an unbounded ``asyncio.Queue`` (registered by a dependency,
before the response starts); ``POST /publish`` puts one ``(id, type, data)``
tuple, and the frame encoded once, in every queue. The same generator body is
served by:

- ``/fastapi``: FastAPI's own ``fastapi.sse.EventSourceResponse``, yielding
  ``fastapi.sse.ServerSentEvent(raw_data=..., id=..., event=...)``;
- ``/starlette``: sse-starlette's ``EventSourceResponse``, yielding its
  ``ServerSentEvent(data=..., id=..., event=...)``;
- ``/starlette-bytes``: sse-starlette yielding the frame encoded once at
  publish (what the template does).

    python -m uvicorn sse_libraries:app --app-dir bench
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI
from fastapi.sse import EventSourceResponse as FastAPIEventSourceResponse
from fastapi.sse import ServerSentEvent as FastAPIEvent
from sse_starlette import EventSourceResponse, ServerSentEvent

app = FastAPI()

Item = tuple[str, str, str, bytes]
queues: set[asyncio.Queue[Item]] = set()
published = 0


async def subscription() -> AsyncIterator[asyncio.Queue[Item]]:
    queue: asyncio.Queue[Item] = asyncio.Queue()
    queues.add(queue)
    try:
        yield queue
    finally:
        queues.discard(queue)


Subscription = Annotated[asyncio.Queue[Item], Depends(subscription)]


@app.get("/fastapi", response_class=FastAPIEventSourceResponse)
async def fastapi_stream(queue: Subscription) -> AsyncIterator[FastAPIEvent]:
    while True:
        event_id, event_type, data, _ = await queue.get()
        yield FastAPIEvent(raw_data=data, id=event_id, event=event_type)


@app.get("/starlette")
async def starlette_stream(queue: Subscription) -> EventSourceResponse:
    async def events() -> AsyncIterator[ServerSentEvent]:
        while True:
            event_id, event_type, data, _ = await queue.get()
            yield ServerSentEvent(data=data, id=event_id, event=event_type)

    return EventSourceResponse(events(), sep="\n")


@app.get("/starlette-bytes")
async def starlette_bytes_stream(queue: Subscription) -> EventSourceResponse:
    async def frames() -> AsyncIterator[bytes]:
        while True:
            _, _, _, frame = await queue.get()
            yield frame

    return EventSourceResponse(frames(), sep="\n")


@app.post("/publish", status_code=202)
async def publish(event: Annotated[dict[str, Any], Body()]) -> dict[str, str]:
    global published
    published += 1
    event_id, event_type = f"bench.{published}", str(event["type"])
    data = json.dumps(event["data"], separators=(",", ":"))
    frame = f"id: {event_id}\nevent: {event_type}\ndata: {data}\n\n".encode()
    for queue in queues:
        queue.put_nowait((event_id, event_type, data, frame))
    return {"id": event_id}


@app.get("/clients")
async def clients() -> dict[str, int]:
    """For the benchmark: clients registered now."""
    return {"clients": len(queues)}
