"""`radar backfill` on the running stack: a folder (JSONL, Reuters SGML, RSS, .gz) published
once, oldest first; a second run publishes nothing; a run stopped by a real SIGINT mid-way
resumes without publishing anything twice (and --max-lag holds it to the extractor's pace)."""

from __future__ import annotations

import gzip
import json
import random
import re
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from shared.contracts import ArticleEvent
from shared.settings import TopicSettings
from tests.helpers import TopicReader, valid

WORDS = re.findall(r"\w+", (
         "company shares market profit bank board deal plant energy oil steel trade chips "
         "quarter revenue investor merger venture factory export import billion million "
         "contract supply customer price growth loss debt bond tariff retail airline motor "
         "software network cable satellite mining copper grain cocoa sugar coffee shipping "
         "port rail truck engine battery fuel refinery pipeline drilling license patent "
         "court ruling union strike wage pension insurance loan credit fund stake offer bid "
         "tender dividend earnings forecast outlook demand output capacity order delivery "
         "aircraft vessel terminal warehouse brand store chain dealer partner agreement"))


def prose(rng: random.Random, words: int = 60) -> str:
    sentences = []
    while words > 0:
        n = rng.randint(8, 14)
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        words -= n
    return " ".join(sentences)


def sgml(run: str, rng: random.Random) -> str:
    def doc(newid: int, split: str, date: str) -> str:
        return (f'<REUTERS TOPICS="YES" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" '
                f'OLDID="1" NEWID="{newid}">\n<DATE>{date}</DATE>\n<TEXT>&#2;\n'
                f'<TITLE>{run.upper()} WIRE {newid}</TITLE>\n<BODY>{prose(rng)}\n Reuter\n'
                f'&#3;</BODY></TEXT>\n</REUTERS>\n')

    base = int(run, 16) % 10_000_000 + 90_000_000  # NEWIDs of this run only
    return ('<!DOCTYPE lewis SYSTEM "lewis.dtd">\n'
            + doc(base + 1, "TRAIN", "02-MAR-1987 10:00:00.00")
            + doc(base + 2, "TEST", "01-MAR-1987 10:00:00.00")
            + doc(base + 3, "TRAIN", "26-FEB-1987 09:00:00.00")), base


def rss(run: str, rng: random.Random) -> bytes:
    items = "".join(
        f"<item><title>{run} feed {i}</title><link>https://wire.example.com/{run}/{i}</link>"
        f"<description>{prose(rng)}</description><pubDate>{day} Jan 2024 10:00:00 GMT"
        f"</pubDate></item>" for i, day in ((1, "Tue, 02"), (2, "Mon, 01")))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Backfill Wire '
            f'{run}</title>{items}</channel></rss>').encode()


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def article(run: str, name: str, stamp: str, rng: random.Random) -> dict:
    return {"id": f"{run}-{name}", "title": f"{run} {name}", "text": prose(rng),
            "published_at": stamp}


def backfill(radar_bin: str, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([radar_bin, "backfill", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ours(records: list, run: str) -> list[tuple[int, int, int, ArticleEvent]]:
    """(partition, offset, timestamp, article) of this run's articles."""
    out = []
    for record in records:
        found = valid([record], ArticleEvent)
        if found and (found[0].article_id.startswith(run) or run in found[0].title.lower()):
            out.append((record.partition, record.offset, record.timestamp, found[0]))
    return out


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def test_a_folder_is_published_once_oldest_first(
        tmp_path: Path, radar_bin: str, cli_env: dict[str, str], stack, run_id: str) -> None:
    rng = random.Random(run_id)
    folder = tmp_path / "archive"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.jsonl").write_bytes(jsonl([
        article(run_id, "j-2024-03", "2024-03-01T08:00:00Z", rng),
        article(run_id, "j-2023-06", "2023-06-01T08:00:00Z", rng),
        {"id": f"{run_id}-empty", "title": "no text", "text": ""}]))
    (folder / "deep" / "b.jsonl.gz").write_bytes(gzip.compress(jsonl([
        article(run_id, "g-1999", "1999-05-05T08:00:00Z", rng)])))
    text, base = sgml(run_id, rng)
    (folder / "reut2-900.sgm").write_text(text, encoding="latin-1")
    (folder / "feed.rss").write_bytes(rss(run_id, rng))

    summary = backfill(radar_bin, cli_env, str(folder), "--batch", "2")
    assert (summary["read"], summary["published"], summary["duplicates"],
            summary["rejected"]) == (8, 7, 0, 1)
    assert summary["rejected_by_reason"] == {"missing_text": 1}

    async with TopicReader(stack.bootstrap, TopicSettings().articles) as reader:
        await reader.wait_for(lambda rs: len(ours(rs, run_id)) >= 7, 60,
                              message="the backfilled articles")
        got = ours(reader.records, run_id)
    ids = Counter(a.article_id for *_, a in got)
    assert len(got) == 7 and max(ids.values()) == 1
    assert f"reuters-{base + 2}" not in ids  # the TEST document is never read
    assert {f"reuters-{base + 1}", f"reuters-{base + 3}"} <= set(ids)
    # Oldest first: within a partition by offset, and across partitions by send time.
    by_partition: dict[int, list] = {}
    for partition, _offset, _, a in sorted(got, key=lambda g: (g[0], g[1])):
        by_partition.setdefault(partition, []).append(a.published_at)
    assert all(stamps == sorted(stamps) for stamps in by_partition.values())
    for _, _, ts_a, a in got:
        for _, _, ts_b, b in got:
            if ts_a < ts_b:
                assert a.published_at <= b.published_at

    again = backfill(radar_bin, cli_env, str(folder))
    assert (again["published"], again["duplicates"], again["rejected"]) == (0, 7, 1)


async def test_sigint_mid_way_then_resume_publishes_each_article_once(
        tmp_path: Path, radar_bin: str, cli_env: dict[str, str], stack, run_id: str) -> None:
    rng = random.Random(run_id)
    total = 40
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl([article(run_id, f"n{i:02d}", f"2020-01-{1 + i % 28:02d}T0{i % 10}"
                                    f":00:00Z", rng) for i in range(total)]))
    # --max-lag 0: each batch waits for the extractor to read the one before, so the run
    # is slow enough to be stopped mid-way.
    args = [radar_bin, "backfill", str(path), "--batch", "2", "--max-lag", "0", "--json"]
    first = subprocess.Popen(args, env=cli_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        async with TopicReader(stack.bootstrap, TopicSettings().articles) as reader:
            await reader.wait_for(lambda rs: len(ours(rs, run_id)) >= 6, 90,
                                  message="the first batches")
            first.send_signal(signal.SIGINT)
            stdout, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr
    stopped = json.loads(stdout)
    assert stopped["interrupted"] and 6 <= stopped["published"] < total
    assert stopped["lag_waits"] > 0

    rest = backfill(radar_bin, cli_env, str(path), "--batch", "10")
    assert rest["published"] == total - stopped["published"]
    assert rest["duplicates"] == stopped["published"]
    async with TopicReader(stack.bootstrap, TopicSettings().articles) as reader:
        await reader.wait_for(lambda rs: len(ours(rs, run_id)) >= total, 60,
                              message="every article")
        await reader.poll()
        ids = Counter(a.article_id for *_, a in ours(reader.records, run_id))
    assert len(ids) == total and set(ids.values()) == {1}
