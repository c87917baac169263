"""Time travel on the running stack: `as_of` on every read endpoint and `radar alliances
--as-of`, for an alliance that went talks -> agreed -> ended, fed to the aggregator's input
topic on the embedded broker."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import httpx
import pytest

from services.cli.stack import Stack
from shared.contracts import Evidence, PartnershipEvent
from tests.helpers import publish_partnerships, wait_until

PAIR = ["Timetravel Orion", "Timetravel Vega"]
OTHER = ["Timetravel Orion", "Timetravel Lyra"]
AID = "timetravel-orion+timetravel-vega"


def event(article: str, parties: list[str], stage: str, when: datetime) -> PartnershipEvent:
    return PartnershipEvent(
        event_id=PartnershipEvent.make_event_id(article, parties), article_id=article,
        parties=parties, stage=stage, confidence=0.8, source="Time Wire", published_at=when,
        evidence=[Evidence(sentence=f"{' and '.join(parties)} {stage}", start=0, end=9)])


EVENTS = [  # arrival order is not publication order: the fold sorts by publication
    event("tt-3", PAIR, "ended", datetime(2007, 11, 20, 9, tzinfo=UTC)),
    event("tt-1", PAIR, "talks", datetime(2005, 3, 1, 9, tzinfo=UTC)),
    event("tt-2", PAIR, "agreed", datetime(2006, 6, 15, 9, tzinfo=UTC)),
    event("tt-4", OTHER, "rumored", datetime(2006, 1, 10, 9, tzinfo=UTC)),
]


@pytest.fixture(scope="module")
async def api(stack: Stack) -> str:
    await publish_partnerships(stack.bootstrap, EVENTS)
    base = stack.services["aggregator"].base_url

    def settled() -> bool:
        resp = httpx.get(f"{base}/alliances/{AID}")
        return resp.status_code == 200 and resp.json()["article_count"] == 3

    wait_until(settled, 60, message="the time-travel alliance with its three reports")
    return base


def stage_of(base: str, when: str) -> tuple[int, str | None]:
    resp = httpx.get(f"{base}/alliances/{AID}", params={"as_of": when})
    return resp.status_code, resp.json().get("stage")


def test_one_alliance_answers_each_stage_inside_each_period(api: str) -> None:
    assert stage_of(api, "2005-02-28") == (404, None)  # before its first news
    assert stage_of(api, "2005-03-01T08:59:59Z") == (404, None)
    assert stage_of(api, "2005-03-01") == (200, "talks")  # a date is the end of that day
    assert stage_of(api, "2006-01-01") == (200, "talks")
    assert stage_of(api, "2006-06-15T09:00:00Z") == (200, "agreed")
    assert stage_of(api, "2007-11-19") == (200, "agreed")
    assert stage_of(api, "2007-12-31") == (200, "ended")
    assert httpx.get(f"{api}/alliances/{AID}").json()["stage"] == "ended"
    history = httpx.get(f"{api}/alliances/{AID}/history", params={"as_of": "2006-12-31"})
    assert history.status_code == 200
    body = history.json()
    assert [t["stage"] for t in body["history"]] == ["talks", "agreed"]
    assert [o["article_id"] for o in body["observations"]] == ["tt-1", "tt-2"]
    assert httpx.get(f"{api}/alliances/{AID}/history",
                     params={"as_of": "2004-01-01"}).status_code == 404
    bad = httpx.get(f"{api}/alliances/{AID}", params={"as_of": "last year"})
    assert bad.status_code == 400 and "as_of must be an ISO date" in bad.json()["error"]


def test_lists_companies_and_graph_as_of(api: str) -> None:
    def listed(when: str) -> dict[str, str]:
        resp = httpx.get(f"{api}/alliances", params={"company": "Timetravel Orion",
                                                      "as_of": when})
        assert resp.status_code == 200, resp.text
        return {a["alliance_id"]: a["stage"] for a in resp.json()["alliances"]}

    assert listed("2005-12-31") == {AID: "talks"}
    assert listed("2006-12-31") == {AID: "agreed", "timetravel-lyra+timetravel-orion":
                                    "rumored"}
    assert listed("2004-12-31") == {}
    company = httpx.get(f"{api}/companies/timetravel-orion", params={"as_of": "2006-03-01"})
    assert company.status_code == 200, company.text
    assert company.json()["partners_by_stage"] == {"talks": ["Timetravel Vega"],
                                                   "rumored": ["Timetravel Lyra"]}
    today = httpx.get(f"{api}/companies/timetravel-orion").json()["partners_by_stage"]
    assert today == {"rumored": ["Timetravel Lyra"], "ended": ["Timetravel Vega"]}
    assert httpx.get(f"{api}/companies/timetravel-orion",
                     params={"as_of": "2004-12-31"}).status_code == 404
    graph = httpx.get(f"{api}/graph", params={"company": "timetravel-vega",
                                              "as_of": "2006-07-01"}).json()
    assert [(e["source"], e["target"], e["stage"]) for e in graph["edges"]] == [
        ("timetravel-orion", "timetravel-vega", "agreed")]


def test_cli_alliances_as_of(api: str, radar_bin: str, cli_env: dict[str, str]) -> None:
    run = subprocess.run([radar_bin, "alliances", "--company", "Timetravel Vega", "--as-of",
                          "2006-07-01", "--json"], env=cli_env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [(a["alliance_id"], a["stage"]) for a in json.loads(run.stdout)] == [
        (AID, "agreed")]
    bad = subprocess.run([radar_bin, "alliances", "--as-of", "someday"], env=cli_env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "as_of must be an ISO date" in bad.stdout + bad.stderr
