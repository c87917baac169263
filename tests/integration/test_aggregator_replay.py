"""`radar replay` rebuilds the view from the retained partnership topic into fresh tables
(a new app id) and the rebuilt view equals the live one; the rebuild publishes nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from services.cli.stack import Stack
from shared.contracts import AllianceChange, Evidence, PartnershipEvent
from shared.settings import TopicSettings
from tests.helpers import TopicReader, publish_partnerships, valid, wait_until

PAIR, TRIO = ["Replay North", "Replay South"], ["Replay East", "Replay North", "Replay West"]


def event(article: str, parties: list[str], stage: str, published: datetime,
          confidence: float = 0.6) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=confidence, published_at=published,
        areas=[stage], source=f"src-{article}",
        evidence=[Evidence(sentence=f"{article} {stage}", start=0, end=3)])


T = datetime(2024, 3, 1, tzinfo=UTC)
# Revival, duplicates, and a 2007 article arriving after the 2024 ones.
EVENTS = [event("rp-1", PAIR, "talks", T), event("rp-2", PAIR, "failed", T + timedelta(30)),
          event("rp-1", PAIR, "talks", T), event("rp-3", PAIR, "agreed", T + timedelta(90)),
          event("rp-4", TRIO, "rumored", T, 0.3), event("rp-5", TRIO, "active", T + timedelta(5)),
          event("rp-old", PAIR, "active", datetime(2007, 5, 1, tzinfo=UTC))]


def strip(rows: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != "updated_at"} for r in rows),
                  key=lambda r: r["alliance_id"])


async def test_replay_rebuilds_a_view_equal_to_the_live_one(
        stack: Stack, cli_env: dict, tmp_path: Path) -> None:
    live = stack.services["aggregator"].base_url
    await publish_partnerships(stack.bootstrap, EVENTS)

    def settled() -> bool:
        rows = httpx.get(f"{live}/alliances", params={"company": "Replay North"}).json()
        return {r["alliance_id"]: (r["stage"], r["article_count"]) for r in rows["alliances"]} \
            == {"replay-north+replay-south": ("agreed", 4),
                "replay-east+replay-north+replay-west": ("active", 2)}

    wait_until(settled, 60, message="the replay test alliances in the live view")

    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli.replay", "--compare", "--json", "--serve",
         "--run-dir", str(tmp_path)], env=cli_env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        def serving() -> str | None:
            assert proc.poll() is None, f"replay exited {proc.returncode}: {''.join(stderr)}"
            line = next((x for x in stderr if "serving the rebuilt view at" in x), None)
            return line.split(" at ")[1].split("/alliances")[0] if line else None

        rebuilt = wait_until(serving, 120, 0.2, "the rebuilt view being served")
        log = "".join(stderr)
        assert "compared with the live view" in log and "identical" in log, log
        assert rebuilt != live

        live_rows = httpx.get(f"{live}/alliances", timeout=10).json()["alliances"]
        rebuilt_rows = httpx.get(f"{rebuilt}/alliances", timeout=10).json()["alliances"]
        assert strip(rebuilt_rows) == strip(live_rows)
        assert {"replay-north+replay-south", "replay-east+replay-north+replay-west"} <= {
            r["alliance_id"] for r in rebuilt_rows}
        for path in ("/alliances/replay-north+replay-south/history",
                     "/companies/Replay North"):
            assert httpx.get(rebuilt + path).json() == httpx.get(live + path).json(), path
        history = httpx.get(f"{rebuilt}/alliances/replay-north+replay-south/history").json()
        assert [(t["stage"], t["episode"]) for t in history["history"]] == [
            ("active", 1), ("talks", 2), ("failed", 2), ("agreed", 3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(stderr)
    assert strip(json.loads(out)) == strip(rebuilt_rows)

    # The rebuild published nothing: every change of these alliances exists once.
    async with TopicReader(stack.bootstrap, TopicSettings().changes) as changes:
        await changes.poll()
        await changes.wait_for(lambda rs: len([c for c in valid(rs, AllianceChange)
                                               if c.alliance_id.startswith("replay")]) >= 5,
                               30, message="the live changes")
    ids = [c.change_id for c in valid(changes.records, AllianceChange)
           if c.alliance_id.startswith("replay")]
    assert len(ids) == len(set(ids)) == 5
