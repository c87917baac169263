"""SIGKILL and restart of the aggregator: the view comes back (from its tables on disk, the
default store, and the changelog after them) and no transition is emitted twice. Also
guards the one-record-per-batch workaround: with Tansu's end-offset bug, a batched changelog
restores short."""

from __future__ import annotations

import json

import httpx

from services.cli.stack import Stack
from shared.contracts import AllianceChange
from tests.helpers import TopicReader, valid, wait_until

N = 12
STAGE = "agreed"


def articles(stage_text: str, day: int) -> list[dict]:
    return [{"id": f"it-rec-{i}-{day}", "published_at": f"2024-02-{day:02d}T00:00:00Z",
             "text": f"Alpha{i} Motors Corp and Beta{i} Energy Inc {stage_text}, the "
                     "companies said."} for i in range(N)]


def ours(records: list) -> list[AllianceChange]:
    return [c for c in valid(records, AllianceChange) if c.alliance_id.startswith("alpha")]


def view(stack: Stack) -> list[dict]:
    rows = httpx.get(stack.services["aggregator"].base_url + "/alliances", timeout=10).json()
    return sorted((r for r in rows["alliances"] if r["alliance_id"].startswith("alpha")),
                  key=lambda r: r["alliance_id"])


def details(stack: Stack, rows: list[dict]) -> dict[str, dict] | None:
    """Every alliance's history and every party's company view, once the index has them."""
    api = stack.services["aggregator"].base_url
    out = {}
    for row in rows:
        history = httpx.get(f"{api}/alliances/{row['alliance_id']}/history", timeout=10)
        out[row["alliance_id"]] = history.json()
        for party in row["parties"]:
            company = httpx.get(f"{api}/companies/{party}", timeout=10)
            if company.status_code != 200 or STAGE not in company.json()["partners_by_stage"]:
                return None
            out[party] = company.json()
    return out


def strip_clock(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "updated_at"} for r in rows]


async def test_aggregator_sigkill_restart_restores_view_without_duplicate_changes(
        stack: Stack) -> None:
    url = stack.services["ingestor"].base_url + "/articles"
    # Two stories per alliance, both plain agreements to the learned extractor: the first to
    # arrive opens the alliance, the second adds an article and no change.
    body = "\n".join(json.dumps(a) for a in
                     articles("agreed to form a joint venture to build batteries", 1)
                     + articles("said they formed a joint venture to build batteries", 2))
    assert httpx.post(url, content=body, timeout=30).status_code == 202

    def all_agreed(records: list) -> bool:
        return len({c.alliance_id for c in ours(records) if c.stage == STAGE}) == N

    async with TopicReader(stack.bootstrap, "alliances.changes.v1") as changes:
        await changes.wait_for(all_agreed, 120, message=f"every alliance at {STAGE}")
        before = strip_clock(wait_until(
            lambda: (rows := view(stack)) and len(rows) == N
            and all(r["stage"] == STAGE and r["article_count"] == 2 for r in rows) and rows,
            60, message="view"))
        emitted = len(ours(changes.records))
        assert N <= emitted <= 2 * N

        details_before = wait_until(lambda: details(stack, before), 30,
                                    message="company index and histories")

        aggregator = stack.services["aggregator"]
        # the default store keeps each table partition in a RocksDB database on disk
        stored = {p.name for p in (stack.run_dir / "aggregator").rglob("*.db")}
        assert {f"alliances-{p}.db" for p in range(4)} <= stored, stored
        aggregator.kill()  # SIGKILL: no clean shutdown, no final commit
        aggregator.start()
        stack.wait_healthy(timeout=120, names=("aggregator",))
        after = strip_clock(wait_until(lambda: len(view(stack)) == N and view(stack), 60,
                                       message="restored view"))
        assert after == before
        # Both tables come back from their changelogs: histories and the company index.
        assert details(stack, before) == details_before

        # A sentinel processed after the restart proves redeliveries were handled first.
        sentinel = {"id": "it-rec-sentinel", "published_at": "2024-02-03T00:00:00Z",
                    "text": "Alpha99 Motors Corp and Beta99 Energy Inc said they formed a "
                            "joint venture to build batteries, the companies said."}
        assert httpx.post(url, json=sentinel, timeout=10).status_code == 202
        await changes.wait_for(lambda rs: any(c.article_id == "it-rec-sentinel"
                                              for c in ours(rs)), 60, message="sentinel")
        ids = [c.change_id for c in ours(changes.records) if c.article_id != "it-rec-sentinel"]
        assert len(ids) == emitted
        assert len(set(ids)) == len(ids), "a transition was emitted twice"
