"""`ensure_topics` survives the broker going away between its readiness probe and the admin
request (the chaos suite's link cut right after an ingestor restart): it waits again."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import NodeNotReadyError

from shared import kafka as kafka_module
from shared.settings import KafkaSettings, TopicSettings


def test_a_broker_lost_after_the_probe_is_waited_for_again(monkeypatch):
    probes: list[str] = []
    attempts: list[int] = []

    async def probe(kafka, timeout):
        probes.append("probe")

    async def create(kafka, topics, names, compact):
        attempts.append(1)
        if len(attempts) == 1:
            raise NodeNotReadyError("node 111 not ready")

    monkeypatch.setattr(kafka_module, "wait_for_broker", probe)
    monkeypatch.setattr(kafka_module, "_create_missing", create)
    asyncio.run(kafka_module.ensure_topics(
        KafkaSettings.model_construct(bootstrap_servers="127.0.0.1:1"),
        TopicSettings(), ["news.articles.v1"]))
    assert len(attempts) == 2 and len(probes) == 2


def test_a_broker_that_never_comes_back_still_fails(monkeypatch):
    async def probe(kafka, timeout):
        raise TimeoutError("broker did not answer")

    monkeypatch.setattr(kafka_module, "wait_for_broker", probe)
    with pytest.raises(TimeoutError):
        asyncio.run(kafka_module.ensure_topics(
            KafkaSettings.model_construct(bootstrap_servers="127.0.0.1:1"),
            TopicSettings(), ["news.articles.v1"]))
