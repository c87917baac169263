"""The three services end to end on the embedded broker: articles in, events, changes and
the HTTP view out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from services.cli.stack import Stack
from shared.contracts import AllianceChange, PartnershipEvent
from tests.helpers import TopicReader, produce, valid, wait_until

RUMOR = {
    "id": "it-ms-1", "title": "Mazda weighs Subaru tie-up",
    "text": "TOKYO, Jan 9 (Test Wire) - Mazda Motor Corp is considering a partnership with "
            "Subaru Corp on electric vehicle components, people familiar with the matter "
            "said. Formal talks have not begun, the people said.",
    "published_at": "2024-01-09T08:00:00Z", "source": "Test Wire",
    "url": "https://news.example.com/it-ms-1",
}
# The second story moves the alliance on; which stage the learned extractor reads from it
# is not this test's business (tests/unit/test_extraction_quality.py measures that), so the
# story is one it reads plainly: a signed agreement.
AGREED = {
    "id": "it-ms-2", "title": "Mazda, Subaru sign EV pact",
    "text": "TOKYO, March 12 (Test Wire) - Mazda Motor Corp and Subaru Corp signed an "
            "agreement to jointly develop software and batteries for electric vehicles, the "
            "two companies said on Tuesday.",
    "published_at": "2024-03-12T08:00:00Z", "source": "Test Wire",
}
# A pair no other test of the session stack writes about (the page test streams the demo
# feed, Nissan and Honda included, into the same stack).
NH = "mazda+subaru"


def nh_changes(records: list) -> list[AllianceChange]:
    return [c for c in valid(records, AllianceChange) if c.alliance_id == NH]


@pytest.fixture(scope="module")
def rumor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "rumor.jsonl"
    path.write_text(json.dumps(RUMOR) + "\n")
    return path


async def test_article_becomes_partnership_event_change_and_view(
        stack: Stack, cli_env: dict, radar_bin: str, rumor_file: Path) -> None:
    # 1. `radar ingest` publishes the rumour.
    done = subprocess.run([radar_bin, "ingest", str(rumor_file)], env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "published 1 article" in done.stdout

    # 2. The extractor publishes a PartnershipEvent keyed by alliance id, with evidence.
    async with TopicReader(stack.bootstrap, "alliances.partnerships.v1") as reader:
        records = await reader.wait_for(
            lambda rs: any(e.article_id == "it-ms-1" for e in valid(rs, PartnershipEvent)),
            message="partnership event for it-ms-1")
    [record] = [r for r in records if r.value.find(b'"article_id":"it-ms-1"') >= 0]
    event = PartnershipEvent.from_bytes(record.value)
    assert record.key == NH.encode()
    assert event.parties == ["Mazda", "Subaru"] and event.stage == "rumored"
    ev = event.evidence[0]
    assert "considering a partnership" in ev.sentence
    assert RUMOR["text"][ev.start:ev.end] == ev.sentence
    assert event.attribution.kind == "anonymous"

    # 3. The aggregator announces a new alliance.
    async with TopicReader(stack.bootstrap, "alliances.changes.v1") as changes:
        await changes.wait_for(lambda rs: len(nh_changes(rs)) >= 1, message="new alliance")
        first = nh_changes(changes.records)
        assert [(c.previous_stage, c.stage) for c in first] == [(None, "rumored")]

        # 4. A later article over HTTP moves it to agreed: exactly one change.
        ingest = stack.services["ingestor"].base_url + "/articles"
        resp = httpx.post(ingest, content=json.dumps(AGREED), timeout=10)
        assert resp.status_code == 202, resp.text
        assert resp.json()["items"][0]["article_id"] == "it-ms-2"
        await changes.wait_for(lambda rs: len(nh_changes(rs)) >= 2, message="agreed change")

        # The ingestor does not republish a story it has seen (dedup) ...
        duplicates_before = _metric(stack, "radar_duplicate_events_total")
        again = httpx.post(ingest, content=json.dumps(AGREED), timeout=10)
        assert again.status_code == 202 and again.json()["items"][0]["status"] == "duplicate"
        # ... but Kafka redelivers (at least once): the same record again must not emit the
        # transition again.
        async with TopicReader(stack.bootstrap, "news.articles.v1") as articles:
            await articles.wait_for(lambda rs: any(r.key == b"it-ms-2" for r in rs),
                                    message="it-ms-2 on news.articles.v1")
        [record] = [r for r in articles.records if r.key == b"it-ms-2"]
        await produce(stack.bootstrap, "news.articles.v1", [(record.key, record.value)])
        wait_until(lambda: _metric(stack, "radar_duplicate_events_total")
                   > duplicates_before, 60, message="duplicate event ignored")
        await changes.poll()
        moves = [c for c in nh_changes(changes.records) if c.previous_stage == "rumored"]
        assert len(moves) == 1
        assert (moves[0].stage, moves[0].article_id) == ("agreed", "it-ms-2")
        assert len(nh_changes(changes.records)) == 2

    # 5. The HTTP view answers from the table.
    api = stack.services["aggregator"].base_url
    view = httpx.get(f"{api}/alliances", params={"company": "mazda"}).json()
    row = next(a for a in view["alliances"] if a["alliance_id"] == NH)
    assert row["stage"] == "agreed" and row["article_count"] == 2
    one = httpx.get(f"{api}/alliances/{NH}").json()
    assert [t["stage"] for t in one["history"]] == ["rumored", "agreed"]
    assert httpx.get(f"{api}/alliances", params={"stage": "rumored",
                                                 "company": "Subaru"}).json()["count"] == 0

    # 6. `radar alliances` and `radar watch` show the same.
    shown = subprocess.run([radar_bin, "alliances", "--company", "Subaru", "--json"],
                           env=cli_env, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert [a["stage"] for a in json.loads(shown.stdout)
            if a["alliance_id"] == NH] == ["agreed"]
    watched = subprocess.run([radar_bin, "watch", "--json", "--from-beginning",
                              "--company", "Subaru", "--limit", "2"],
                             env=cli_env, capture_output=True, text=True, timeout=60)
    assert watched.returncode == 0, watched.stderr
    lines = [AllianceChange.model_validate_json(x) for x in watched.stdout.splitlines()]
    assert [(c.previous_stage, c.stage) for c in lines] == [(None, "rumored"),
                                                            ("rumored", "agreed")]


def test_watch_shows_changes_as_they_arrive(stack: Stack, cli_env: dict, radar_bin: str):
    proc = subprocess.Popen([radar_bin, "watch", "--json", "--limit", "1", "--company",
                             "Volkswagen"], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "watching" in proc.stderr.readline()
        article = {"id": "it-watch-1", "published_at": "2024-05-02T00:00:00Z",
                   "text": "Ford Motor Co and Volkswagen AG signed an agreement on Thursday "
                           "to build electric vans together, the companies said."}
        url = stack.services["ingestor"].base_url + "/articles"
        assert httpx.post(url, json=article, timeout=10).status_code == 202
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    change = AllianceChange.model_validate_json(out.splitlines()[0])
    assert change.parties == ["Ford", "Volkswagen"] and change.stage == "agreed"
    assert change.previous_stage is None and change.article_id == "it-watch-1"


def _metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.services["aggregator"].base_url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
