"""Bad input gets a clear error or a dead-letter record, and every service keeps running."""

from __future__ import annotations

import json
import subprocess

import httpx

from services.cli.stack import Stack
from shared.contracts import ArticleEvent, DeadLetter, PartnershipEvent
from tests.helpers import TopicReader, produce, valid

GOOD = {"id": "it-bad-good", "published_at": "2024-06-01T00:00:00Z",
        "text": "Toyota Motor Corp and Mazda Motor Corp are in talks to jointly develop "
                "hydrogen engines, the companies said."}


def letters(records: list) -> list[DeadLetter]:
    return [DeadLetter.from_bytes(r.value) for r in records]


async def test_non_json_and_invalid_articles_go_to_the_extractor_dlq(stack: Stack) -> None:
    await produce(stack.bootstrap, "news.articles.v1", [
        (b"junk-1", b"\x00\xffthis is not json"),
        (b"junk-2", json.dumps({"article_id": "no-text", "text": "",
                                "published_at": "2024-01-01T00:00:00Z"}).encode()),
        (b"it-dlq-ok", ArticleEvent(article_id="it-dlq-ok", text=GOOD["text"],
                                    published_at=GOOD["published_at"]).to_bytes()),
    ])
    async with TopicReader(stack.bootstrap, "news.articles.v1.dlq") as dlq:
        await dlq.wait_for(lambda rs: len({d.record_key for d in letters(rs)}
                                          & {b"junk-1", b"junk-2"}) == 2, message="2 DLQ")
    by_key = {d.record_key: d for d in letters(dlq.records)}
    assert by_key[b"junk-1"].reason == "invalid_json"
    assert by_key[b"junk-1"].record_value == b"\x00\xffthis is not json"
    assert by_key[b"junk-1"].service == "extractor"
    assert by_key[b"junk-2"].reason == "schema_violation"
    assert "text" in by_key[b"junk-2"].error
    # The valid record in the same batch was not lost, and the service is still up.
    async with TopicReader(stack.bootstrap, "alliances.partnerships.v1") as out:
        await out.wait_for(lambda rs: any(e.article_id == "it-dlq-ok"
                                          for e in valid(rs, PartnershipEvent)),
                           message="good event")
    assert stack.services["extractor"].healthy()


async def test_non_json_partnership_record_goes_to_the_aggregator_dlq(stack: Stack) -> None:
    await produce(stack.bootstrap, "alliances.partnerships.v1", [
        (b"nissan+zzz", b"{broken"),
        (b"wrong-key", PartnershipEvent(
            event_id="e-wrong", article_id="x", parties=["Acme", "Beta"], stage="talks",
            confidence=0.5, published_at="2024-01-01T00:00:00Z",
            evidence=[{"sentence": "s", "start": 0, "end": 1}]).to_bytes()),
    ])
    async with TopicReader(stack.bootstrap, "alliances.partnerships.v1.dlq") as dlq:
        await dlq.wait_for(lambda rs: len(rs) >= 2, message="aggregator DLQ")
    reasons = {d.record_key: d.reason for d in letters(dlq.records)}
    assert reasons[b"nissan+zzz"] == "invalid_json"
    assert reasons[b"wrong-key"] == "wrong_key"
    assert stack.services["aggregator"].healthy()


def test_radar_ingest_reports_bad_lines_and_publishes_good_ones(stack, cli_env, radar_bin,
                                                               tmp_path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps(GOOD | {"id": "it-mixed-1"}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "it-mixed-empty", "text": "", "published_at": "2024-01-01"}),
    ]) + "\n")
    done = subprocess.run([radar_bin, "ingest", str(path)], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "mixed.jsonl:2" in done.stderr and "malformed JSON" in done.stderr
    assert "mixed.jsonl:3" in done.stderr and "no text" in done.stderr
    assert "published 1 article(s), skipped 2" in done.stdout


def test_http_ingest_errors(stack: Stack) -> None:
    url = stack.services["ingestor"].base_url + "/articles"
    bad_json = httpx.post(url, content=b'{"id": "x", "text": ', timeout=10)
    assert bad_json.status_code == 400 and bad_json.json()["reason"] == "invalid_json"
    no_text = httpx.post(url, json={"id": "x", "text": ""}, timeout=10)
    assert no_text.status_code == 400 and no_text.json()["reason"] == "missing_text"
    mixed = httpx.post(url, json=[GOOD | {"id": "it-http-ok"}, {"id": "y"}], timeout=10)
    assert mixed.status_code == 202
    body = mixed.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["items"][1]["reason"] == "missing_text"
    huge = httpx.post(url, content=b"x" * 6_000_000, timeout=30)
    assert huge.status_code == 413
    assert stack.services["ingestor"].healthy()
