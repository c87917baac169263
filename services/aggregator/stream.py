"""`GET /changes/stream?company=&stage=`: the change topic as Server-Sent Events.

Any worker serves any client, whichever partitions it owns: each connection reads the change
topic with its own aiokafka consumer (no group, every partition assigned), from the
positions of `Last-Event-ID` or, without one, from the end. Each event's `id` is the
position after it (`0:12,1:5,2:0,3:7`: per partition, the next offset to read), so a client
that reconnects with the last id it saw gets exactly what it missed: nothing lost, nothing
twice. A first `ready` event carries the starting position, so a client that disconnects
before any change still resumes where it was.

The consumer fills a bounded queue and never waits for the client: a client too slow to take
`RADAR_AGGREGATOR_SSE_QUEUE` events is disconnected (logged, counted), and resumes from its
last id when it reconnects. `: heartbeat` comments every `RADAR_AGGREGATOR_SSE_HEARTBEAT_S`
keep proxies from closing a quiet stream and reveal a client that has gone.

One consumer per client is the simple, exact way to let every client start anywhere; it
suits tens of open pages per worker (each costs a fetch loop), not thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.web import Request

from services.aggregator import metrics as agg_metrics
from services.aggregator.queries import QueryError, parse_company, parse_stage, reject_unknown
from services.aggregator.wiring import Aggregator
from shared.contracts import AllianceChange, Stage, company_key
from shared.kafka import Rejected, decode, make_consumer

log = logging.getLogger(__name__)

STREAM_PARAMS = ("company", "stage")


# ------------------------------------------------------------------ pure parts


def format_position(position: Mapping[int, int]) -> str:
    """`0:12,1:5`: per partition, the next offset to read."""
    return ",".join(f"{p}:{position[p]}" for p in sorted(position))


def parse_position(text: str, partitions: int) -> dict[int, int]:
    """A `Last-Event-ID` back into positions; `QueryError` when it is not one of ours."""
    position: dict[int, int] = {}
    try:
        for part in text.split(","):
            partition, offset = part.strip().split(":")
            p, o = int(partition), int(offset)
            if not 0 <= p < partitions or o < 0 or p in position:
                raise ValueError
            position[p] = o
    except ValueError:
        raise QueryError(f"Last-Event-ID {text[:100]!r} is not a stream position (like "
                         f"0:12,1:5: partition:next offset, partitions 0 to "
                         f"{partitions - 1})") from None
    return position


@dataclass(frozen=True)
class ChangeFilter:
    company: str | None = None
    stage: Stage | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ChangeFilter:
        reject_unknown(query, STREAM_PARAMS)
        return cls(parse_company(query.get("company")), parse_stage(query.get("stage")))

    def admits(self, change: AllianceChange) -> bool:
        if self.stage is not None and change.stage != self.stage:
            return False
        return self.company is None or any(company_key(p) == self.company
                                           for p in change.parties)


def sse_event(event: str, data: str, event_id: str | None = None) -> bytes:
    """One event in the text/event-stream format (`data` is one line of JSON)."""
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()


HEARTBEAT = b": heartbeat\n\n"


def enqueue(partition: int, records: Iterable[Any], position: dict[int, int],
            changes: ChangeFilter, queue: asyncio.Queue[tuple[str, str]]) -> None:
    """Records of one partition into a client's queue (the matching changes, each with the
    position after it); `SlowClient` when the queue is full: never wait for the client."""
    for record in records:
        position[partition] = record.offset + 1
        change = decode(AllianceChange, record.value)
        if isinstance(change, Rejected):
            log.warning("change stream: skipping an unreadable record at %s[%s]@%s: %s",
                        record.topic, partition, record.offset, change.error)
            continue
        if not changes.admits(change):
            continue
        try:
            queue.put_nowait((format_position(position), change.model_dump_json()))
        except asyncio.QueueFull:
            raise SlowClient from None


async def pump(write: Callable[[bytes], Awaitable[Any]], queue: asyncio.Queue[tuple[str, str]],
               heartbeat_s: float, start: str) -> None:
    """The `ready` event, then queued changes to the client, and a heartbeat whenever it
    has been quiet for `heartbeat_s`; ends when a write fails (the client left)."""
    await write(sse_event("ready", json.dumps({"position": start}), start))
    while True:
        try:
            event_id, data = await asyncio.wait_for(queue.get(), heartbeat_s)
        except TimeoutError:
            await write(HEARTBEAT)
            continue
        await write(sse_event("change", data, event_id))
        agg_metrics.SSE_EVENTS.inc()


class SlowClient(Exception):
    """The client did not keep up: its queue is full."""


# ------------------------------------------------------------------ one connection


class ChangeStream:
    """One client's stream: a consumer feeding a bounded queue, the response draining it."""

    def __init__(self, agg: Aggregator, changes: ChangeFilter,
                 start: dict[int, int] | None) -> None:
        self.agg = agg
        self.filter = changes
        self.start = start
        settings = agg.settings
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(settings.sse_queue)
        self.heartbeat_s = settings.sse_heartbeat_s
        self.topic = agg.topics.changes
        self.position: dict[int, int] = {}
        self.consumer: AIOKafkaConsumer = make_consumer(
            agg.kafka, group_id=None, client_id=f"radar-sse-{uuid.uuid4().hex[:8]}")

    async def open(self) -> None:
        """Assign every partition and seek to the start (before the response begins, so
        a broker problem is a 503, not a stream that never speaks)."""
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.agg.topics.partitions)]
        self.consumer.assign(tps)
        if self.start is None:
            await self.consumer.seek_to_end(*tps)
        else:
            for tp in tps:
                if tp.partition in self.start:
                    self.consumer.seek(tp, self.start[tp.partition])
                else:  # a partition the client has not seen: all of it
                    await self.consumer.seek_to_beginning(tp)
        self.position = {tp.partition: await self.consumer.position(tp) for tp in tps}

    async def read(self) -> None:
        """Records into the queue, never waiting for the client."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=1000)
            for tp, records in sorted(batches.items()):
                enqueue(tp.partition, records, self.position, self.filter, self.queue)

    async def write(self, response: web.StreamResponse) -> None:
        await pump(response.write, self.queue, self.heartbeat_s,
                   format_position(self.position))

    async def close(self) -> None:
        await self.consumer.stop()


async def serve(agg: Aggregator, request: Request) -> web.StreamResponse:
    """The whole exchange with one client, until it leaves or falls behind."""
    try:
        changes = ChangeFilter.from_query(request.query)
        last = request.headers.get("Last-Event-ID")
        start = parse_position(last, agg.topics.partitions) if last else None
    except QueryError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    stream = ChangeStream(agg, changes, start)
    try:
        await stream.open()
    except Exception as exc:  # the broker is away: say so, the client retries
        await stream.close()
        log.warning("change stream: cannot read %s: %r", stream.topic, exc)
        return web.json_response({"error": f"cannot read the change topic now ({exc!r}); "
                                  "retry"}, status=503)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        "X-Radar-Worker": str(agg.app.conf.canonical_url)})
    agg_metrics.SSE_CLIENTS.inc()
    reader = writer = None
    try:
        await response.prepare(request)
        reader = asyncio.create_task(stream.read(), name="sse-read")
        writer = asyncio.create_task(stream.write(response), name="sse-write")
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, SlowClient):
                agg_metrics.SSE_DISCONNECTS.labels("slow").inc()
                log.warning("change stream: client %s fell %d events behind; disconnected "
                            "(it resumes from its Last-Event-ID)", request.remote,
                            stream.queue.maxsize)
            elif isinstance(exc, ConnectionError | RuntimeError):
                agg_metrics.SSE_DISCONNECTS.labels("gone").inc()
            elif exc is not None:
                agg_metrics.SSE_DISCONNECTS.labels("error").inc()
                log.warning("change stream failed: %r", exc)
    except (ConnectionError, RuntimeError):
        agg_metrics.SSE_DISCONNECTS.labels("gone").inc()
    finally:
        tasks = [t for t in (reader, writer) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await stream.close()
        agg_metrics.SSE_CLIENTS.dec()
    return response
