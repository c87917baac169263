"""Per-profile client options: the fetch wait of news-path and background consumers."""

import asyncio

from shared.kafka import BACKGROUND_FETCH_MAX_WAIT_MS, consumer_options, make_consumer
from shared.settings import KafkaSettings, Profile


def waits(kafka: KafkaSettings) -> tuple[int, int]:
    """(news-path, background) fetch wait of consumers built as the services build them."""
    async def build() -> tuple[int, int]:
        news = make_consumer(kafka, "t", group_id=None, client_id="c")
        background = make_consumer(kafka, "t", group_id=None, client_id="c", background=True)
        return news._fetch_max_wait_ms, background._fetch_max_wait_ms

    return asyncio.run(build())


def test_embedded_news_path_fetch_wait_is_short_and_background_consumers_keep_theirs():
    embedded = KafkaSettings(profile=Profile.EMBEDDED)
    # Tansu answers an empty fetch only when the wait runs out: the wait is a hop's latency.
    assert consumer_options(embedded)["fetch_max_wait_ms"] == 20
    assert waits(embedded) == (20, BACKGROUND_FETCH_MAX_WAIT_MS)


def test_background_never_shortens_a_longer_configured_wait():
    kafka = KafkaSettings(profile=Profile.KAFKA)
    assert consumer_options(kafka)["fetch_max_wait_ms"] == 500
    assert waits(kafka) == (500, 500)
    assert waits(KafkaSettings(profile=Profile.EMBEDDED, fetch_max_wait_ms=300)) == (300, 300)
