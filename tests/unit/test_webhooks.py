"""Webhook delivery's pure parts (`services/aggregator/webhooks.py`) and the README's
signature check, without Kafka."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.aggregator.webhooks import (
    OffsetTracker,
    Subscriptions,
    backoff_delay,
    sign,
)
from shared.contracts import AllianceChange, WebhookSubscription

README = Path(__file__).resolve().parents[2] / "README.md"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def readme_verify():
    """The `verify` function of the README's webhook section, as printed there."""
    text = README.read_text()
    block = re.search(r"<!-- webhook-verify -->\n```python\n(.*?)```", text, re.S)
    assert block, "the README's verification snippet is missing"
    assert len(block.group(1).strip().splitlines()) <= 5, "the snippet stays five lines"
    namespace: dict = {}
    exec(block.group(1), namespace)
    return namespace["verify"]


def test_readme_snippet_verifies_our_signature_and_rejects_tampering():
    verify = readme_verify()
    body = b'{"change_id":"c1","stage":"agreed"}'
    now = int(time.time())
    header = sign("s3cret-s3cret-s3cret", body, now)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify("s3cret-s3cret-s3cret", body, header)
    assert not verify("another-secret-xxxx", body, header)
    assert not verify("s3cret-s3cret-s3cret", body + b" ", header)
    assert not verify("s3cret-s3cret-s3cret", body, sign("s3cret-s3cret-s3cret", body,
                                                         now - 3600))  # replayed late
    forged = header.replace(f"t={now}", f"t={now + 1}")
    assert not verify("s3cret-s3cret-s3cret", body, forged)


def test_backoff_is_exponential_with_full_jitter_and_capped():
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (8, 10.0)):
        waits = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.8 * ceiling and min(waits) < 0.2 * ceiling  # full jitter


def test_offsets_commit_up_to_the_first_change_not_done():
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.add(0, offset)
    tracker.add(1, 0)
    tracker.done(1, 0)
    tracker.done(0, 6)
    assert tracker.committable() == {0: 5, 1: 1}
    tracker.done(0, 5)
    assert tracker.committable() == {0: 7, 1: 1}
    tracker.done(0, 7)
    assert tracker.committable() == {0: 8, 1: 1}
    tracker.forget([0])
    assert tracker.committable() == {1: 1}


def change(parties, stage, emitted_at=T0 + timedelta(days=1)) -> AllianceChange:
    return AllianceChange(change_id="c", alliance_id="+".join(p.lower() for p in parties),
                          parties=parties, previous_stage=None, stage=stage, changed_at=T0,
                          event_id="e", article_id="a", emitted_at=emitted_at)


def subscription(sid, company, stage=None) -> WebhookSubscription:
    return WebhookSubscription(subscription_id=sid, url="https://example.com/hook",
                               company=company, stage=stage, secret="x" * 20, created_at=T0)


def test_subscriptions_follow_the_compacted_topic_and_match_changes():
    subs = Subscriptions()
    nissan = subscription("wh-1", "Nissan")
    agreed = subscription("wh-2", "honda", stage="agreed")
    subs.apply(b"wh-1", nissan.to_bytes())
    subs.apply(b"wh-2", agreed.to_bytes())
    subs.apply(b"wh-3", b"junk")  # ignored, logged
    talks = change(["Honda", "Nissan"], "talks")
    assert [s.subscription_id for s in subs.matching(talks)] == ["wh-1"]
    assert [s.subscription_id for s in subs.matching(change(["Honda", "Nissan"], "agreed"))
            ] == ["wh-1", "wh-2"]
    assert subs.matching(change(["Honda", "Nissan"], "talks", emitted_at=T0 - timedelta(1))
                         ) == []  # emitted before the subscription existed
    assert subs.current(nissan)
    subs.apply(b"wh-1", None)  # tombstone: removed
    assert not subs.current(nissan) and subs.matching(talks) == []
    with pytest.raises(ValueError):
        subscription("wh-4", "???")
