"""Shared test helpers: wait on conditions with deadlines, read topics from the start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from services.cli.stack import ServiceProcess
from shared.contracts import Contract, PartnershipEvent
from shared.kafka import Rejected, consumer_options, decode, producer_options
from shared.settings import KafkaSettings, TopicSettings
from shared.waiting import wait_until as shared_wait_until
from shared.waiting import wait_until_blocking

T = TypeVar("T")
M = TypeVar("M", bound=Contract)


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1,
               message: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    try:
        return wait_until_blocking(predicate, timeout=timeout, interval=interval,
                                   message=_timed_out(timeout, message))
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


async def async_wait_until(predicate: Callable[[], Awaitable[T]], timeout: float = 30.0,
                           interval: float = 0.1, message: str = "condition") -> T:
    try:
        return await shared_wait_until(predicate, timeout=timeout, interval=interval,
                                       message=_timed_out(timeout, message))
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def _timed_out(timeout: float, message: str) -> Callable[[object], str]:
    """The helpers' failure text (a test fails with an AssertionError, not a time-out)."""
    return lambda last: f"timed out after {timeout}s waiting for {message}; last={last!r}"


@contextmanager
def running_ingestor(env: dict[str, str]) -> Iterator[ServiceProcess]:
    """An ingestor process with `env` (its port in RADAR_INGESTOR_PORT, its log in RUN_DIR),
    healthy, stopped at the end."""
    svc = ServiceProcess("ingestor", int(env["RADAR_INGESTOR_PORT"]), "127.0.0.1",
                         Path(env["RUN_DIR"]) / "ingestor.log", env)
    svc.start()
    try:
        wait_until(lambda: alive_and_healthy(svc), 60, 0.1, "ingestor ready")
        yield svc
    finally:
        svc.stop()


def alive_and_healthy(svc: ServiceProcess) -> bool:
    assert svc.alive(), svc.tail()
    return svc.healthy()


def kafka_settings(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, profile="embedded")


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(**producer_options(kafka_settings(bootstrap)))
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


class TopicReader:
    """Reads every partition of a topic from the beginning, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        opts = consumer_options(kafka_settings(bootstrap))
        self.topic = topic
        self.consumer = AIOKafkaConsumer(**opts)
        self.records: list = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()

        async def partitions():
            await self.consumer.topics()
            return self.consumer.partitions_for_topic(self.topic)

        parts = await async_wait_until(partitions, 30, 0.2, f"topic {self.topic}")
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> list:
        batches = await self.consumer.getmany(timeout_ms=200)
        for recs in batches.values():
            self.records.extend(recs)
        return self.records

    async def wait_for(self, predicate: Callable[[list], bool], timeout: float = 60.0,
                       message: str = "records") -> list:
        async def check():
            records = await self.poll()
            return records if predicate(records) else None

        return await async_wait_until(check, timeout, 0.05, message)


async def publish_partnerships(bootstrap: str, events: Iterable[PartnershipEvent]) -> None:
    """Put partnership events straight on their topic, keyed as the extractor keys them (a
    test of the aggregator that needs no extraction)."""
    await produce(bootstrap, TopicSettings().partnerships,
                  [(e.key(), e.to_bytes()) for e in events])


def valid(records: list, model: type[M]) -> list[M]:
    """The records that decode as `model` (topics shared by tests also hold junk on purpose)."""
    out = []
    for record in records:
        result = decode(model, record.value)
        if not isinstance(result, Rejected):
            out.append(result)
    return out


def load_dashboard_generator():
    """deploy/grafana/generate.py is a script, not a package: load it by path (once)."""
    import importlib.util
    import sys
    from pathlib import Path

    if "radar_dashboards" in sys.modules:
        return sys.modules["radar_dashboards"]
    path = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("radar_dashboards", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def partnership(article: str, parties: list[str], stage: str, published_at,
                source: str = "Test Wire", confidence: float = 0.7):
    """A partnership event as the extractor would publish it (evidence names the parties)."""
    from shared.contracts import Evidence, PartnershipEvent

    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=confidence, source=source,
        published_at=published_at,
        evidence=[Evidence(sentence=f"{' and '.join(parties)} {stage}", start=0, end=7)])
