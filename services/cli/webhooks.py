"""`radar webhooks add|list|remove`: webhook subscriptions on the compacted topic
`webhooks.subscriptions.v1`, which the aggregator's dispatcher follows.

The signing secret is shown once, by `add` (generated unless `--secret` gives one), and kept
on the topic for the dispatcher; `list` never prints it. Protect the topic as a credential
store: on a shared Kafka, grant read on it only to the aggregator's principal and to whoever
runs `radar webhooks`.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer
from aiokafka.structs import TopicPartition
from rich.table import Table

from services.cli.console import fail, out
from shared.addresses import AddressRefused, checked_target
from shared.contracts import Stage, WebhookSubscription
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.settings import KafkaSettings, TopicSettings, WebhookSettings, kafka, load, topics

webhooks_app = typer.Typer(help="Webhooks: changes of a company POSTed, signed, to your URL.",
                           no_args_is_help=True)


async def read_subscriptions(k: KafkaSettings, t: TopicSettings) -> dict[str, WebhookSubscription]:
    """The current subscriptions: the topic read from the start to its end."""
    from services.aggregator.webhooks import Subscriptions, caught_up

    await ensure_topics(k, t, [t.webhooks])
    consumer = make_consumer(k, group_id=None, client_id="radar-webhooks-cli")
    await consumer.start()
    try:
        tps = [TopicPartition(t.webhooks, p) for p in range(t.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        subs = Subscriptions()
        while not await caught_up(consumer, ends):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    subs.apply(record.key, record.value)
        return subs.by_id
    finally:
        await consumer.stop()


async def write(k: KafkaSettings, t: TopicSettings, key: bytes, value: bytes | None) -> None:
    await ensure_topics(k, t, [t.webhooks])
    producer = make_producer(k, client_id="radar-webhooks-cli")
    await producer.start()
    try:
        await producer.send_and_wait(t.webhooks, value, key=key)
    finally:
        await producer.stop()


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL to POST the changes to.")],
    company: Annotated[str, typer.Option(help="Company whose changes are delivered.")],
    stage: Annotated[Stage | None, typer.Option(help="Only changes to this stage.")] = None,
    secret: Annotated[str | None, typer.Option(help="Signing secret (default: a random one, "
                                               "printed once).")] = None,
) -> None:
    """Subscribe URL to the changes of a company; prints the id and the signing secret."""
    policy = load(WebhookSettings)
    try:
        asyncio.run(checked_target(url, policy.allowed_networks))
    except AddressRefused as exc:
        raise fail(f"{url}: {exc.message} (RADAR_WEBHOOKS_ALLOW_NETWORKS allows private "
                   "networks)") from None
    if secret is not None and len(secret) < 16:
        raise fail("use a secret of 16 characters or more")
    try:
        sub = WebhookSubscription(subscription_id=f"wh-{secrets.token_hex(6)}", url=url,
                                  company=company, stage=stage,
                                  secret=secret or secrets.token_urlsafe(32))
    except ValueError as exc:
        raise fail(str(exc)) from None
    asyncio.run(write(kafka(), topics(), sub.key(), sub.to_bytes()))
    out.print(f"subscription [bold]{sub.subscription_id}[/bold]: changes of {company}"
              f"{f' to {stage.value}' if stage else ''} -> {url}")
    out.print(f"signing secret (shown once): {sub.secret}", soft_wrap=True)


@webhooks_app.command("list")
def list_() -> None:
    """The subscriptions (without their secrets)."""
    subs = asyncio.run(read_subscriptions(kafka(), topics()))
    table = Table("id", "company", "stage", "url", "created")
    for sub in sorted(subs.values(), key=lambda s: s.created_at):
        table.add_row(sub.subscription_id, sub.company, sub.stage.value if sub.stage else "any",
                      sub.url, sub.created_at.isoformat(timespec="seconds"))
    out.print(table)


@webhooks_app.command("remove")
def remove(subscription_id: Annotated[str, typer.Argument(help="Id from `add` or `list`.")]
           ) -> None:
    """Remove a subscription: nothing more is delivered to it."""
    k, t = kafka(), topics()
    if subscription_id not in asyncio.run(read_subscriptions(k, t)):
        raise fail(f"no subscription {subscription_id!r} (see `radar webhooks list`)")
    asyncio.run(write(k, t, subscription_id.encode(), None))
    out.print(f"removed {subscription_id}")
