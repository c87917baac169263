"""GET /changes/stream on the real broker, against the session stack's aggregator: changes
arrive as Server-Sent Events, filtered; after a disconnect, a reconnect with Last-Event-ID
gets exactly the changes it missed (nothing lost, nothing twice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.cli.stack import Stack
from shared.contracts import AllianceChange, Evidence, PartnershipEvent
from shared.settings import TopicSettings
from tests.helpers import produce

ALPHA, BETA, GAMMA, DELTA, EPSILON = (f"Ssetest {n}" for n in
                                      ("Alpha", "Beta", "Gamma", "Delta", "Epsilon"))


def event(article: str, parties: list[str], stage: str, day: int) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.7, source="SSE Wire",
        published_at=datetime(2024, 2, day, tzinfo=UTC),
        evidence=[Evidence(sentence=f"{' and '.join(parties)} {stage}", start=0, end=7)])


class EventStream:
    """One SSE connection, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.heartbeats = 0

    async def next(self, timeout: float = 30) -> dict[str, str]:
        async def read() -> dict[str, str]:
            fields: dict[str, str] = {}
            async for line in self.lines:
                if not line:
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    self.heartbeats += 1
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def changes(self, n: int, timeout: float = 30) -> list[tuple[str, AllianceChange]]:
        out = []
        for _ in range(n):
            fields = await self.next(timeout)
            assert fields["event"] == "change", fields
            out.append((fields["id"], AllianceChange.model_validate_json(fields["data"])))
        return out


@asynccontextmanager
async def connect(api: str, last_id: str | None = None, **params: str
                  ) -> AsyncIterator[EventStream]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as client, \
            client.stream("GET", f"{api}/changes/stream", params=params,
                          headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


def seen(changes: list[tuple[str, AllianceChange]]) -> list[tuple[str, str]]:
    return [(c.alliance_id, c.stage) for _, c in changes]


def metric(api: str, name: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name)


AB = "ssetest-alpha+ssetest-beta"
AE = "ssetest-alpha+ssetest-epsilon"
GD = "ssetest-delta+ssetest-gamma"


async def test_stream_filters_and_resumes_after_a_disconnect_without_loss_or_repeat(
        stack: Stack) -> None:
    api = stack.services["aggregator"].base_url
    partnerships = TopicSettings().partnerships

    async def send(*events: PartnershipEvent) -> None:
        await produce(stack.bootstrap, partnerships, [(e.key(), e.to_bytes()) for e in events])

    async with connect(api, company="Ssetest Alpha") as alpha:
        ready = await alpha.next()
        assert ready["event"] == "ready"
        start = ready["id"]
        assert len(start.split(",")) == TopicSettings().partitions
        assert metric(api, "radar_sse_clients") >= 1
        await send(event("sse-1", [ALPHA, BETA], "rumored", 1),
                   event("sse-2", [GAMMA, DELTA], "talks", 2),  # another company's
                   event("sse-3", [ALPHA, BETA], "talks", 3))
        first = await alpha.changes(2)
        assert seen(first) == [(AB, "rumored"), (AB, "talks")]
    last_id = first[-1][0]

    # disconnected: two more changes of Alpha (and one of another company) happen
    await send(event("sse-4", [ALPHA, BETA], "agreed", 4),
               event("sse-5", [GAMMA, DELTA], "agreed", 5),
               event("sse-6", [ALPHA, EPSILON], "active", 6))
    async with connect(api, last_id=last_id, company="ssetest-alpha") as again:
        assert (await again.next())["id"] == last_id  # ready: resuming where it was
        missed = await again.changes(2)
        # two alliances, two partitions: no order between them
        assert sorted(seen(missed)) == [(AB, "agreed"), (AE, "active")]
        # nothing twice: the next change to arrive is a new one
        await send(event("sse-7", [ALPHA, EPSILON], "ended", 7))
        assert seen(await again.changes(1)) == [(AE, "ended")]
    every = first + missed
    assert len({c.change_id for _, c in every}) == len(every)

    # a stage filter, from the first position: only the agreed changes, of anyone
    async with connect(api, last_id=start, stage="agreed") as agreed:
        await agreed.next()
        assert sorted(seen(await agreed.changes(2))) == [(AB, "agreed"), (GD, "agreed")]
    assert metric(api, "radar_sse_events_total") >= 7

    for params, headers in [({"stage": "merged"}, {}), ({"x": "1"}, {}),
                            ({}, {"Last-Event-ID": "9:1"})]:
        resp = httpx.get(f"{api}/changes/stream", params=params, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"], (params, headers)
