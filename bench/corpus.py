"""The news the benchmark feeds in: Reuters-21578 TRAIN articles when the corpus sits next to
the repository, otherwise a generated newswire mix of about the same shape.

Only documents whose `LEWISSPLIT` is "TRAIN" are read: the split attribute is checked before
any text of a document is touched, so TEST and NOT-USED stay unseen for held-out work.
"""

from __future__ import annotations

import html
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: Where the shared corpus lives relative to the repository (absent on a fresh clone).
REUTERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "reuters21578"


@dataclass(frozen=True)
class Article:
    """One input item, in the JSON Lines shape the ingestor's POST /articles takes."""

    id: str
    title: str
    text: str
    published_at: str
    source: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "title": self.title, "text": self.text,
                           "published_at": self.published_at, "source": self.source,
                           "url": None}, ensure_ascii=False)

    @property
    def words(self) -> int:
        return len(self.text.split())


# --------------------------------------------------------------------------- Reuters TRAIN

_DOC = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SIGNATURE = re.compile(r"\s*\bREUTER\b\s*$", re.I)
_DATE = re.compile(r"(\d{1,2})-([A-Z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2})")
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


def _element(body: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.S)
    return match.group(1) if match else None


def _clean(text: str) -> str:
    return _CONTROL.sub("", html.unescape(text))


def reuters_date(raw: str) -> str | None:
    """`26-FEB-1987 15:01:01.79` -> `1987-02-26T15:01:01Z` (fractions and noise dropped)."""
    match = _DATE.search(raw)
    if not match or match.group(2) not in _MONTHS:
        return None
    day, month, year = int(match.group(1)), _MONTHS[match.group(2)], int(match.group(3))
    stamp = datetime(year, month, day, int(match.group(4)), int(match.group(5)),
                     int(match.group(6)), tzinfo=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_reuters_train(sgml: str) -> Iterator[Article]:
    """TRAIN documents with a title, a body and a date, in file order."""
    for match in _DOC.finditer(sgml):
        attrs = dict(_ATTR.findall(match.group(1)))
        if attrs.get("LEWISSPLIT") != "TRAIN":
            continue  # decided on the attribute alone: no TEST/NOT-USED text is read
        body = match.group(2)
        title, text, date = (_element(body, "TITLE"), _element(body, "BODY"),
                             _element(body, "DATE"))
        published = reuters_date(date or "")
        if not title or not text or not published:
            continue
        text = _SIGNATURE.sub("", _clean(text)).strip()
        if text:
            yield Article(f"reuters-{attrs.get('NEWID', '')}", _clean(title).strip(), text,
                          published, "Reuters")


def load_reuters_train(folder: Path = REUTERS_DIR) -> list[Article]:
    articles: list[Article] = []
    for path in sorted(folder.glob("reut2-*.sgm")):
        articles.extend(parse_reuters_train(path.read_text(encoding="latin-1")))
    return articles


# --------------------------------------------------------------------------- generated mix

_FIRST = ("Norvik", "Calder", "Brightmoor", "Ostrava", "Kelsey", "Marlow", "Tessaro",
          "Vantor", "Quillan", "Redfern", "Asterion", "Beaumont", "Corvane", "Delmar",
          "Everly", "Fairhaven", "Granton", "Hollis", "Ivora", "Jansen", "Kirkwall",
          "Lindqvist", "Montaro", "Nereid", "Oakhurst", "Pellworth", "Ravensby", "Sorrel",
          "Thalberg", "Umbria", "Valdane", "Westcott", "Yarrow", "Zenthe")
_SECTOR = ("Systems", "Foods", "Motors", "Pharma", "Energy", "Airlines", "Steel", "Chemicals",
           "Semiconductor", "Logistics", "Telecom", "Mining", "Bank", "Retail", "Biosciences")
_LEGAL = ("Inc", "Corp", "AG", "SA", "Ltd", "plc", "NV", "ASA", "Co")
_CITIES = ("NEW YORK", "LONDON", "TOKYO", "FRANKFURT", "PARIS", "CHICAGO", "SYDNEY", "ZURICH",
           "TORONTO", "SINGAPORE", "HOUSTON", "MILAN")
_MONTH_NAMES = ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct",
                "Nov", "Dec")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_AREAS = ("battery technology", "cloud software", "oncology drugs", "freight routes",
          "chip packaging", "hydrogen production", "payments", "satellite broadband")
_COMMODITIES = ("wheat", "copper", "cocoa", "crude oil", "sugar", "coffee", "zinc", "soybeans")

# Partnership stories by stage: (headline, lead sentence, follow-up sentence).
_PARTNERSHIP = {
    "rumored": ("{a} and {b} weigh {area} partnership, sources say",
                "{A} and {B} are exploring a possible partnership in {area}, people familiar "
                "with the matter said on {day}.",
                "{a} and {b} may team up, but no formal talks are under way, the sources "
                "said."),
    "talks": ("{a} and {b} in talks on {area} joint venture",
              "{A} and {B} are in talks over a joint venture in {area}, the two companies "
              "said on {day}.",
              "{a} and {b} are negotiating how to share costs and revenue."),
    "agreed": ("{a} and {b} sign {area} agreement",
               "{A} and {B} signed an agreement on {day} to jointly develop {area}.",
               "Under the deal, {a} and {b} will share engineering and production."),
    "active": ("{a} ships first products made with partner {b}",
               "{A} said on {day} it has begun shipping {area} products built with its "
               "partner {B} under their joint venture.",
               "The partnership between {a} and {b} now covers design and manufacturing."),
    "failed": ("{a} and {b} call off {area} venture talks",
               "{A} and {B} called off their talks on a joint venture in {area} on {day} "
               "after failing to agree on terms.",
               "{a} said the negotiations with {b} had ended without a deal."),
    "ended": ("{a} and {b} dissolve {area} joint venture",
              "{A} and {B} said on {day} they have dissolved their joint venture in {area}.",
              "{a} will take full ownership of the business."),
}

_OTHER = (
    ("{a} quarterly profit {updown} {pct} pct",
     "{A} said on {day} its quarterly net profit {updown} {pct} pct to {amount} mln dlrs, "
     "on sales of {amount2} mln dlrs. The company said demand in its main markets was {mood}. "
     "Analysts had expected earnings of {cents} cts a share. Shares of {a} closed at "
     "{price} dlrs."),
    ("{commodity} prices {updown} on {mood} demand",
     "{Commodity} futures {updown} {pct} pct on {day} as traders reacted to {mood} demand and "
     "changes in stocks. Dealers said shipments for the coming month were {mood} and that "
     "buying interest from importers was limited. Prices ended the session at {price} dlrs."),
    ("{a} to acquire {b} for {amount} mln dlrs",
     "{A} agreed to acquire {B} for {amount} mln dlrs in cash, the companies said on {day}. "
     "{a} will pay {price} dlrs a share, a premium of {pct} pct. The acquisition is subject "
     "to regulatory approval and is expected to close next quarter."),
    ("{a} names new chief executive",
     "{A} said on {day} it has named a new chief executive, effective next month. The board "
     "said the appointment follows a review of the company's strategy. {a} also said it "
     "expects {mood} results for the full year."),
    ("{a} wins {amount} mln dlr contract",
     "{A} said on {day} it won a {amount} mln dlr contract to supply equipment to a utility. "
     "Deliveries will begin next year. The company said the order would lift its backlog "
     "to {amount2} mln dlrs."),
    ("Central bank leaves rates unchanged",
     "The central bank left its key interest rate unchanged on {day}, citing {mood} growth and "
     "stable inflation. Economists had expected no change. The currency {updown} {pct} pct "
     "against the dollar after the announcement."),
)


class _Names:
    """Distinct generated company names, short forms first word plus sector."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def new(self) -> tuple[str, str]:
        while True:
            first, sector = self.rng.choice(_FIRST), self.rng.choice(_SECTOR)
            suffix = f" {self.rng.randint(2, 99)}" if len(self.used) > 300 else ""
            short = f"{first} {sector}{suffix}"
            if short not in self.used:
                self.used.add(short)
                return f"{short} {self.rng.choice(_LEGAL)}", short


def synthetic_articles(count: int, seed: int = 1987, partnership_share: float = 0.1,
                       id_prefix: str = "synthetic") -> list[Article]:
    """Varied generated newswire (earnings, commodities, acquisitions, appointments,
    contracts, rates) with about `partnership_share` partnership stories at every stage,
    each between two companies not used before (so each opens a new alliance)."""
    rng = random.Random(seed)
    names = _Names(rng)
    start = datetime(2024, 1, 2, 8, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        (a_full, a), (b_full, b) = names.new(), names.new()
        fields = {"A": a_full, "B": b_full, "a": a, "b": b, "day": rng.choice(_DAYS),
                  "area": rng.choice(_AREAS), "pct": rng.randint(2, 40),
                  "amount": rng.randint(20, 900), "amount2": rng.randint(900, 9000),
                  "cents": rng.randint(5, 99), "price": rng.randint(5, 120),
                  "updown": rng.choice(("rose", "fell")),
                  "mood": rng.choice(("weak", "firm", "steady", "strong", "uneven")),
                  "commodity": rng.choice(_COMMODITIES)}
        fields["Commodity"] = fields["commodity"].capitalize()
        if rng.random() < partnership_share:
            headline, lead, follow = _PARTNERSHIP[rng.choice(tuple(_PARTNERSHIP))]
            body = f"{lead} {follow}"
            filler = rng.choice(_OTHER)[1]
            body = f"{body} In other news, {filler[0].lower()}{filler[1:]}"
        else:
            headline, body = rng.choice(_OTHER)
        when = start + timedelta(minutes=7 * i)
        dateline = (f"{rng.choice(_CITIES)}, {_MONTH_NAMES[when.month - 1]} {when.day} - ")
        out.append(Article(f"{id_prefix}-{seed}-{i:06d}",
                           headline.format(**fields), dateline + body.format(**fields),
                           when.strftime("%Y-%m-%dT%H:%M:%SZ"), "Synthetic Wire"))
    return out


def news_mix(count: int, seed: int = 1987, reuters_dir: Path = REUTERS_DIR,
             ) -> tuple[list[Article], str]:
    """`count` articles and the name of their origin: Reuters TRAIN (shuffled with `seed`,
    repeated with new ids if too few) when the corpus exists, else the generated mix."""
    if reuters_dir.is_dir() and any(reuters_dir.glob("reut2-*.sgm")):
        pool = load_reuters_train(reuters_dir)
        random.Random(seed).shuffle(pool)
        out = [a if n == 0 else Article(f"{a.id}-r{n}", a.title, a.text, a.published_at,
                                        a.source)
               for n in range(count // max(len(pool), 1) + 1) for a in pool][:count]
        return out, f"Reuters-21578 TRAIN ({len(pool)} documents)"
    return synthetic_articles(count, seed), "generated newswire (~10% partnerships)"


#: Stage walks of one alliance's news, oldest first (revivals and dead ends included).
_STAGE_WALKS = (
    ("rumored", "talks", "agreed", "active"),
    ("talks", "agreed", "active", "ended"),
    ("rumored", "talks", "failed"),
    ("talks", "failed", "talks", "agreed"),
    ("agreed", "active", "ended", "rumored"),
    ("rumored", "agreed", "talks", "active"),
)


def alliance_stories(count: int, alliances: int, seed: int = 1987,
                     id_prefix: str = "story") -> list[Article]:
    """`count` partnership stories about `alliances` company pairs, each pair's news walking
    through stages (so later stories move, or do not move, an existing alliance). Mostly in
    publication order, with about one in eight stories published earlier than the one
    before it (a late report), so that arrival order and publication order differ."""
    rng = random.Random(seed)
    names = _Names(rng)
    pairs = [(names.new(), names.new(), rng.choice(_STAGE_WALKS), rng.choice(_AREAS))
             for _ in range(alliances)]
    progress = [0] * alliances
    start = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        n = rng.randrange(alliances)
        (a_full, a), (b_full, b), walk, area = pairs[n]
        stage = walk[progress[n] % len(walk)]
        step = progress[n]
        progress[n] += 1
        late = rng.random() < 0.125 and step > 0
        when = start + timedelta(days=30 * (step - (2 if late else 0)) + n % 28,
                                 minutes=rng.randint(0, 600))
        headline, lead, follow = _PARTNERSHIP[stage]
        (c_full, c), (d_full, d) = names.new(), names.new()
        fields = {"A": a_full, "B": b_full, "a": a, "b": b, "area": area,
                  "day": _DAYS[when.weekday() % len(_DAYS)], "pct": rng.randint(2, 40),
                  "amount": rng.randint(20, 900), "amount2": rng.randint(900, 9000),
                  "cents": rng.randint(5, 99), "price": rng.randint(5, 120),
                  "updown": rng.choice(("rose", "fell")), "commodity": "copper",
                  "Commodity": "Copper",
                  "mood": rng.choice(("weak", "firm", "steady", "strong", "uneven"))}
        # Other news in the same wire item, about a third company: no two stories of one
        # pair read alike, so none is dropped as a near duplicate of another.
        filler = rng.choice(_OTHER)[1].format(**fields | {"A": c_full, "a": c, "B": d_full, "b": d})
        dateline = f"{rng.choice(_CITIES)}, {_MONTH_NAMES[when.month - 1]} {when.day} - "
        body = f"{lead} {follow}".format(**fields) + f" In other news, {filler}"
        out.append(Article(f"{id_prefix}-{seed}-{i:06d}", headline.format(**fields),
                           dateline + body, when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "Synthetic Wire"))
    return out
