"""Webhooks end to end on the real broker, against the session stack's aggregator:
subscriptions made with `radar webhooks`, receivers on 127.0.0.1 (allowed by
RADAR_WEBHOOKS_ALLOW_NETWORKS in the stack's environment). A receiver that fails twice then
succeeds gets each change once by change_id, signed; one that always fails ends in the dead
letters after the attempts; a removed subscription gets nothing more."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from services.cli.stack import Stack
from shared.broker import free_port
from shared.contracts import AllianceChange, DeadLetter, PartnershipEvent
from tests.helpers import (
    TopicReader,
    async_wait_until,
    partnership,
    publish_partnerships,
    valid,
)
from tests.integration.conftest import WEBHOOK_TEST_ENV
from tests.unit.test_webhooks import readme_verify

ALPHA, BETA, GAMMA = "Whtest Alpha", "Whtest Beta", "Whtest Gamma"
AB, AG = "whtest-alpha+whtest-beta", "whtest-alpha+whtest-gamma"
SECRET = "flaky-receiver-secret-0123456789"


def event(article: str, parties: list[str], stage: str, day: int) -> PartnershipEvent:
    return partnership(article, parties, stage, datetime(2024, 3, day, tzinfo=UTC),
                       source="Hook Wire")


class Receiver:
    """Answers 500 to the first `failures` attempts of each change, then 200; records all."""

    def __init__(self, failures: int, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.attempts: Counter[str] = Counter()
        self.accepted: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        # A slow subscriber, on purpose: the delay is what the tests put the sender through.
        await asyncio.sleep(self.delay_s)
        change_id = request.headers.get("X-Radar-Change-Id", "")
        self.attempts[change_id] += 1
        if self.attempts[change_id] <= self.failures:
            return web.Response(status=500, text="not now")
        self.accepted.append((dict(request.headers), body))
        return web.Response(status=204)


async def radar(cli_env: dict[str, str], radar_bin: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        radar_bin, "webhooks", *args, env=cli_env | WEBHOOK_TEST_ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode()
    assert proc.returncode == 0, text
    return text


def metric(api: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


async def test_webhooks_deliver_signed_once_dead_letter_and_stop_after_remove(
        stack: Stack, cli_env: dict[str, str], radar_bin: str) -> None:
    api = stack.services["aggregator"].base_url
    flaky, dead, control = Receiver(failures=2), Receiver(failures=10**6), Receiver(0)
    slow = Receiver(0, delay_s=4)
    app = web.Application()
    for path, receiver in (("/flaky", flaky), ("/dead", dead), ("/control", control),
                           ("/slow", slow)):
        app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        before = metric(api, "radar_webhook_subscriptions")
        added = await radar(cli_env, radar_bin, "add", f"{base}/flaky", "--company", ALPHA,
                            "--secret", SECRET)
        flaky_id = re.search(r"subscription (wh-[0-9a-f]{12})", added).group(1)
        dead_id = re.search(r"(wh-[0-9a-f]{12})", await radar(
            cli_env, radar_bin, "add", f"{base}/dead", "--company", "whtest-alpha",
            "--stage", "agreed")).group(1)
        control_id = re.search(r"(wh-[0-9a-f]{12})", await radar(
            cli_env, radar_bin, "add", f"{base}/control", "--company", "WHTEST ALPHA")).group(1)
        slow_id = re.search(r"(wh-[0-9a-f]{12})", await radar(
            cli_env, radar_bin, "add", f"{base}/slow", "--company", ALPHA)).group(1)
        listed = await radar(cli_env, radar_bin, "list")
        assert {flaky_id, dead_id, control_id} <= set(re.findall(r"wh-[0-9a-f]{12}", listed))
        assert SECRET not in listed
        refused = await asyncio.create_subprocess_exec(
            radar_bin, "webhooks", "add", "http://10.0.0.1/hook", "--company", ALPHA,
            env=cli_env | WEBHOOK_TEST_ENV, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await refused.communicate()
        assert refused.returncode != 0 and b"private address" in out

        async def known() -> bool:
            return metric(api, "radar_webhook_subscriptions") >= before + 4

        await async_wait_until(known, 30, 0.2, "the dispatcher knowing the subscriptions")
        await publish_partnerships(stack.bootstrap, [event("wh-1", [ALPHA, BETA], "talks", 1),
                                                     event("wh-2", [BETA, GAMMA], "talks", 2),
                                                     event("wh-3", [ALPHA, BETA], "agreed", 3)])

        async def flaky_got_both() -> bool:
            return len({h["X-Radar-Change-Id"] for h, _ in flaky.accepted}) >= 2

        async def control_got_both() -> bool:
            return len(control.accepted) >= 2

        # a receiver taking 4 s an answer holds up nobody else: its own lane waits
        await async_wait_until(control_got_both, 30, 0.1, "both changes at the control")
        assert len(slow.accepted) == 0, "the control waited for the slow receiver"
        await async_wait_until(flaky_got_both, 60, 0.1, "both changes at the flaky receiver")
        verify = readme_verify()
        changes = [AllianceChange.model_validate_json(body) for _, body in flaky.accepted]
        assert sorted((c.alliance_id, c.stage) for c in changes) == [(AB, "agreed"),
                                                                      (AB, "talks")]
        for headers, body in flaky.accepted:
            assert verify(SECRET, body, headers["X-Radar-Signature"])
            assert headers["X-Radar-Subscription"] == flaky_id
            assert headers["X-Radar-Change-Id"] == AllianceChange.model_validate_json(
                body).change_id
        assert all(flaky.attempts[c.change_id] == 3 for c in changes)

        # the always-failing receiver: 4 attempts, then the dead letter
        async with TopicReader(stack.bootstrap, "alliances.changes.v1.dlq") as reader:
            letters = await reader.wait_for(lambda rs: any(
                d.subscription_id == dead_id for d in valid(rs, DeadLetter)), 60,
                "the dead letter of the failing subscription")
        ours = [d for d in valid(letters, DeadLetter) if d.subscription_id == dead_id]
        assert len(ours) == 1 and ours[0].attempts == 4
        assert ours[0].reason == "webhook_undeliverable" and "HTTP 500" in ours[0].error
        lost = AllianceChange.model_validate_json(ours[0].record_value)
        assert (lost.alliance_id, lost.stage) == (AB, "agreed")
        assert dead.attempts[lost.change_id] == 4 and len(dead.attempts) == 1

        # removed: nothing more for flaky; control (same company) shows the change went out
        await radar(cli_env, radar_bin, "remove", flaky_id)

        async def forgotten() -> bool:
            return metric(api, "radar_webhook_subscriptions") <= before + 3

        await async_wait_until(forgotten, 30, 0.2, "the dispatcher dropping the removed one")
        attempts_before = sum(flaky.attempts.values())
        await publish_partnerships(stack.bootstrap, [event("wh-4", [ALPHA, GAMMA], "active", 4)])

        async def control_got_it() -> bool:
            return any(AllianceChange.model_validate_json(b).alliance_id == AG
                       for _, b in control.accepted)

        await async_wait_until(control_got_it, 30, 0.1, "the new change at the control")
        assert sum(flaky.attempts.values()) == attempts_before
        assert len(control.accepted) == 3
        assert metric(api, "radar_webhook_deliveries_total", subscription=flaky_id,
                      result="delivered") == 2
        assert metric(api, "radar_webhook_deliveries_total", subscription=dead_id,
                      result="dead_lettered") == 1
        for sid in (dead_id, control_id, slow_id):
            await radar(cli_env, radar_bin, "remove", sid)
    finally:
        await runner.cleanup()
