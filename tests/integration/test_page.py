"""The alliance page in a real browser: Debian's Chromium driven by Playwright, against the
real stack (ingestor, extractor, aggregator) on the embedded broker.

The demo articles go in through `radar ingest`; the alliances to expect are what the shipped
extractor reads from them (run here on the same articles: which stage the model reads is
tests/unit/test_extraction_quality.py's business, not this test's). The page must show those
companies and alliances, narrow to one company through the type-ahead filter, show an
alliance's transitions in order with the evidence and its cue highlighted when the alliance
is clicked on the canvas, and show a newly ingested article's alliance within seconds,
without a reload (the change stream). A screenshot is kept under tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.cli.stack import Stack
from services.ingestor.sources import article_from_mapping
from shared.contracts import Evidence, PartnershipEvent, alliance_id_for, company_key
from tests.helpers import produce, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "services" / "cli" / "samples" / "demo_articles.jsonl"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("RADAR_CHROMIUM", "/usr/bin/chromium")
#: A story for the live step, about a pair nothing else in the suite mentions.
LIVE = {"id": "page-live-1", "title": "Intel weighs Samsung packaging tie-up",
        "text": "SEOUL, May 2 (Test Wire) - Intel Corp is considering a chip packaging tie-up "
                "with Samsung, people familiar with the matter said.",
        "published_at": "2024-05-02T08:00:00Z", "source": "Test Wire",
        "url": "https://news.example.com/page-live-1"}
#: ...and a later one that moves it on (a signed agreement: read plainly as `agreed`).
LIVE_AGREED = {"id": "page-live-2", "title": "Intel, Samsung sign packaging deal",
               "text": "SEOUL, June 4 (Test Wire) - Intel Corp and Samsung Electronics Co "
                       "signed an agreement on Tuesday to build chip packaging lines "
                       "together.",
               "published_at": "2024-06-04T08:00:00Z", "source": "Test Wire",
               "url": "https://news.example.com/page-live-2"}
LIVE_ID = "intel+samsung-electronics"
WAIT_MS = 20_000
#: The extractor reads no three-party alliance from the demo (its consortium story is read
#: as pairs, or missed), so one is published as the extractor would, to draw as a hub.
CONSORTIUM_SENTENCE = "Pagetest Aster, Pagetest Birch and Pagetest Cedar formed a consortium."
CONSORTIUM = PartnershipEvent(
    event_id="page-consortium-1", article_id="page-consortium-1",
    parties=["Pagetest Aster", "Pagetest Birch", "Pagetest Cedar"], stage="agreed",
    confidence=0.9, published_at="2024-04-01T08:00:00Z", source="Test Wire",
    article_url="https://news.example.com/page-consortium-1",
    evidence=[Evidence(sentence=CONSORTIUM_SENTENCE, start=0, end=len(CONSORTIUM_SENTENCE),
                       cue_start=CONSORTIUM_SENTENCE.index("formed"),
                       cue_end=CONSORTIUM_SENTENCE.index("formed") + len("formed"))])


@pytest.fixture(scope="module")
def expected() -> dict[str, list[str]]:
    """alliance id -> parties the shipped extractor reads from the demo articles."""
    from services.extractor.pipeline import Extractor

    articles = [article_from_mapping(json.loads(line), where="demo", default_source="demo")
                for line in DEMO.open()]
    found = {alliance_id_for(e.parties): sorted(e.parties)
             for events in Extractor.load().extract_many(articles) for e in events}
    assert len(found) >= 5, found
    return found | {CONSORTIUM.alliance_id: CONSORTIUM.parties}


@pytest.fixture(scope="module")
def api(stack: Stack) -> str:
    return stack.services["aggregator"].base_url


@pytest.fixture(scope="module")
def demo_in(stack: Stack, cli_env: dict, radar_bin: str, api: str,
            expected: dict[str, list[str]]) -> dict[str, dict]:
    """The demo articles ingested and every alliance expected from them in the view."""
    done = subprocess.run([radar_bin, "ingest", str(DEMO)], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    asyncio.run(produce(stack.bootstrap, "alliances.partnerships.v1",
                        [(CONSORTIUM.key(), CONSORTIUM.to_bytes())]))

    def view() -> dict[str, dict] | None:
        resp = httpx.get(f"{api}/alliances", params={"limit": "1000"}, timeout=10)
        if resp.status_code != 200:
            return None
        rows = {a["alliance_id"]: a for a in resp.json()["alliances"]}
        return rows if set(expected) <= set(rows) else None

    return wait_until(view, timeout=90, interval=0.5, message="the demo alliances in the view")


@pytest.fixture(scope="module")
def page(api: str, demo_in: dict) -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make chromium` (Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(f"{api}/")
        wait_loads(pg, 1)
        yield pg
        browser.close()
        assert not errors, errors


def wait_loads(pg, n: int) -> None:
    """Until the page has finished its n-th graph load."""
    # a function, not an expression: the page's CSP forbids eval, which Playwright's
    # polling of an expression needs
    pg.wait_for_function("(n) => Number(document.body.dataset.loads || 0) >= n", arg=n,
                         timeout=WAIT_MS)


def loads(pg) -> int:
    return int(pg.evaluate("Number(document.body.dataset.loads || 0)"))


def shown(pg) -> dict:
    """What the graph holds: alliance id -> parties, company labels, hub ids."""
    return pg.evaluate("""() => ({
        alliances: Object.fromEntries([...radar.state.alliances.values()]
                                        .map(a => [a.alliance_id, a.parties])),
        companies: radar.cy.nodes('.company').map(n => n.data('label')).sort(),
        hubs: radar.cy.nodes('.hub').map(n => n.data('alliance')).sort(),
    })""")


def click_alliance(pg, alliance_id: str) -> None:
    """Click the alliance on the canvas, where a user would: its line, or its hub."""
    at = pg.evaluate("""(id) => {
        const els = radar.cy.elements(`[alliance = ${JSON.stringify(id)}]`);
        const hub = els.nodes('.hub');
        const p = hub.nonempty() ? hub.renderedPosition() : els.edges()[0].renderedMidpoint();
        const box = document.getElementById('graph').getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y};
    }""", alliance_id)
    pg.mouse.click(at["x"], at["y"])


def test_page_shows_the_demo_companies_and_alliances(page, expected, api):
    resp = httpx.get(f"{api}/", timeout=10)
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    graph = shown(page)
    assert set(expected) <= set(graph["alliances"])
    assert {p for parties in expected.values() for p in parties} <= set(graph["companies"])
    multi = {a for a, parties in expected.items() if len(parties) >= 3}
    assert multi and multi <= set(graph["hubs"]), "3+ parties make one hub node"
    listed = page.locator("#alliance-list li").evaluate_all(
        "rows => rows.map(r => r.dataset.alliance)")
    assert set(expected) <= set(listed)
    assert page.locator("#legend").inner_text().count("\n") >= 6


def test_clicking_an_alliance_shows_its_timeline_with_the_cue(page, expected, api):
    click_alliance(page, CONSORTIUM.alliance_id)     # its hub
    page.wait_for_selector(f'#alliance-title[data-alliance="{CONSORTIUM.alliance_id}"]',
                           timeout=WAIT_MS)
    assert page.locator("#alliance-title").inner_text() == " · ".join(CONSORTIUM.parties)
    assert page.locator(".timeline mark.cue").inner_text() == "formed"

    histories = {a: httpx.get(f"{api}/alliances/{a}/history", timeout=10).json()
                 for a in expected}
    alliance_id = max(histories, key=lambda a: (len(histories[a]["history"]), a))
    history = histories[alliance_id]["history"]
    assert len(history) >= 2, "the demo moves an alliance through stages"
    click_alliance(page, alliance_id)
    page.wait_for_selector(f'#alliance-title[data-alliance="{alliance_id}"]',
                           timeout=WAIT_MS)
    steps = page.locator(".timeline > li.transition")
    assert steps.evaluate_all("s => s.map(x => x.dataset.stage)") == \
        [t["stage"] for t in history]
    for i, transition in enumerate(history):
        step = steps.nth(i)
        assert transition["changed_at"][:10] in step.inner_text()
        evidence = transition["evidence"][0]
        assert evidence["sentence"] in step.locator("blockquote.evidence").first.inner_text()
        cue = evidence["sentence"][evidence["cue_start"] - evidence["start"]:
                                   evidence["cue_end"] - evidence["start"]]
        assert step.locator("mark.cue").first.inner_text() == cue
        link = step.locator(f'a[href="{transition["article_url"]}"]')
        assert link.count() == 1 and transition["article_url"].startswith("https://")
    support = page.locator("ul.support > li")
    assert support.count() == len(histories[alliance_id]["observations"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "alliance-page.png"))


def test_company_filter_with_type_ahead_narrows_the_graph(page, expected, api):
    before = shown(page)
    counts: dict[str, int] = {}
    for parties in expected.values():
        for p in parties:
            counts[p] = counts.get(p, 0) + 1
    company = max(counts, key=lambda c: (counts[c], c))
    n = loads(page)
    page.fill("#company", "")
    page.locator("#company").press_sequentially(company[:3])
    page.wait_for_selector(f'#company-options option[value="{company}"]', state="attached",
                           timeout=WAIT_MS)
    page.fill("#company", company)
    page.click("#filters button[type=submit]")
    wait_loads(page, n + 1)
    after = shown(page)
    mine = httpx.get(f"{api}/companies/{company}", timeout=10).json()
    assert set(after["alliances"]) == {a["alliance_id"] for a in mine["alliances"]}
    assert all(company_key(company) in {company_key(p) for p in parties}
               for parties in after["alliances"].values())
    assert len(after["companies"]) < len(before["companies"])
    assert f"company={company.replace(' ', '+')}" in page.url

    n = loads(page)
    page.click("#clear")
    wait_loads(page, n + 1)
    assert set(shown(page)["alliances"]) == set(before["alliances"])


def test_new_articles_appear_on_the_open_page_without_a_reload(page, stack, api):
    assert LIVE_ID not in shown(page)["alliances"]
    page.click("#back")     # from the timeline back to the list
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    page.evaluate("window.sameDocument = true")
    resp = httpx.post(stack.services["ingestor"].base_url + "/articles",
                      content=json.dumps(LIVE), timeout=10)
    assert resp.status_code == 202, resp.text
    page.wait_for_function("(id) => radar.state.alliances.has(id)", arg=LIVE_ID,
                           timeout=WAIT_MS)
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    assert {"Intel", "Samsung Electronics"} <= set(shown(page)["companies"])
    page.wait_for_selector(f'#alliance-list li[data-alliance="{LIVE_ID}"]', timeout=WAIT_MS)

    # An open timeline follows the alliance as it moves.
    click_alliance(page, LIVE_ID)
    page.wait_for_selector(f'#alliance-title[data-alliance="{LIVE_ID}"]', timeout=WAIT_MS)
    assert page.locator(".timeline > li.transition").count() == 1
    resp = httpx.post(stack.services["ingestor"].base_url + "/articles",
                      content=json.dumps(LIVE_AGREED), timeout=10)
    assert resp.status_code == 202, resp.text
    page.wait_for_function("() => document.querySelectorAll('.timeline > li.transition')"
                           ".length === 2", timeout=WAIT_MS)
    history = httpx.get(f"{api}/alliances/{LIVE_ID}/history", timeout=10).json()["history"]
    assert page.locator(".timeline > li.transition").evaluate_all(
        "s => s.map(x => x.dataset.stage)") == [t["stage"] for t in history]
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    page.screenshot(path=str(ARTIFACTS / "alliance-page-live.png"))
