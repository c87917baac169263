"""A Faust app's Kafka clients started while the broker is briefly unreachable wait for it
instead of ending the worker (found by the chaos suite's short form: an aggregator restarted
during a broker outage exited with "Unable to bootstrap")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chaos.proxy import FaultyProxy
from shared.broker import EmbeddedBroker, free_port
from shared.faust_app import make_app
from shared.settings import KafkaSettings, TopicSettings

REFUSED_S = 3.0


@pytest.mark.asyncio
async def test_producer_started_during_a_broker_outage_waits_for_the_broker(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    proxy = FaultyProxy(target_port=broker.port, listen_port=free_port()).start()
    try:
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{proxy.listen_port}")
        app = make_app("it-outage-start", kafka=kafka, topics=TopicSettings(),
                       host="127.0.0.1", port=free_port(), data_dir=tmp_path)
        proxy.refuse(REFUSED_S)
        started = time.monotonic()
        await app.producer.start()
        try:
            waited = time.monotonic() - started
            # It got through only once the proxy let it: it waited rather than raising.
            assert waited >= REFUSED_S - 0.5
            sent = await (await app.producer.send(
                "it-outage-start", key=b"k", value=b"v", partition=None, timestamp=None,
                headers=None))
            assert sent.offset >= 0
        finally:
            await app.producer.stop()
    finally:
        proxy.stop()
