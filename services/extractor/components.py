"""spaCy components of the extractor, registered so a pipeline config can name them.

- `radar_companies`: company mentions beyond the statistical NER: names followed by a
  corporate designator ("Halvorsen Pharma AG", "Aurora Airlines"), wire-copy forms
  ("Chrysler Corp <C>", "<Automobili Lamborghini SpA>"), later short references to a name
  seen in full ("Halvorsen"); drops datelines, outlets, bodies and acronyms.
- `radar_relations`: per sentence, the party sets the text says cooperate: a cooperation
  cue, companies syntactically linked to it, rejections (acquisitions, loans, rivals, the
  venture itself), possessive partners ("its French partner Renault").
- `radar_stage`: the stage each relation's sentence reports (tense, modality, negation).

Patterns and word lists live in data/companies.json and data/lexicon.json.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

from services.extractor.companies import CompanyRegistry, default_registry, lexicon
from shared.contracts import Stage

#: Words that end a company name ("... Pharma AG", "... Airlines").
DESIGNATORS = (
    "Inc", "Corp", "Corporation", "Co", "Company", "Ltd", "Limited", "LLC", "LP", "AG",
    "SA", "SE", "NV", "BV", "plc", "PLC", "SpA", "GmbH", "Group", "Holdings", "Holding",
    "Airlines", "Airways", "Air", "Motors", "Motor", "Automotive", "Pharma",
    "Pharmaceuticals", "Biosciences", "Biotech", "Therapeutics", "Semiconductor",
    "Semiconductors", "Electronics", "Devices", "Technologies", "Technology", "Systems",
    "Software", "Networks", "Foundry", "Energy", "Power", "Grid", "Hydrogen", "Oil", "Gas",
    "Petroleum", "Mining", "Steel", "Chemicals", "Chemical", "Logistics", "Markets", "Stores",
    "Retail", "Foods", "Capital", "Industries", "Manufacturing", "Labs", "Laboratories",
    "Telecom", "Communications", "Media", "Entertainment", "Aerospace", "Shipping",
    "Batteries", "Solar", "Robotics", "Analytics", "Insurance", "Resources", "Bancorp",
    "Enterprises", "Instruments", "Computer", "Computers", "Engineering", "Corp.", "Co.",
    "Creamery", "Dairy", "Dairies", "Brewery", "Breweries", "Bakery", "Mills", "Works",
    "Inc.", "Ltd.",
)
_DESIGNATOR_RE = "|".join(sorted(map(re.escape, DESIGNATORS), key=len, reverse=True))
# A name word; a "." only inside it ("U.S."), never the sentence's full stop.
_NAME_WORD = r"(?:[A-Z](?:[A-Za-z0-9&'-]|\.(?=\S))*|[A-Z]{2,})"
COMPANY_RE = re.compile(
    rf"(?<![\w])((?:{_NAME_WORD} ){{1,3}}(?:{_DESIGNATOR_RE})\.?)(?![\w])"
    r"|<([A-Z][^<>]{1,60})>"  # <Automobili Lamborghini SpA>
)
TICKER_AFTER_RE = re.compile(r"^\s*<[A-Z0-9.]{1,10}>")
#: "TEKELEC <TKLC> SETS PACT", "Chrysler Corp <C>": a name with a stock ticker is a company.
TICKER_NAME_RE = re.compile(r"([A-Za-z][\w&'.-]*(?: [A-Za-z][\w&'.-]*){0,3}) <[A-Z0-9.]{1,10}>")
_TITLE_STOP = {"SETS", "SET", "IN", "AND", "TO", "FORM", "FORMS", "WITH", "SIGN", "SIGNS",
               "UNIT", "THE", "SAYS", "SAID", "PACT", "AGREEMENT", "VENTURE", "JOINT"}
DATELINE_RE = re.compile(
    r"^\s*(?:[A-Z][A-Z .'-]+(?:,[^-\n]{0,40}?)?\s*(?:\([^)]{1,60}\))?|\([^)]{1,40}\))\s*-+\s")
NOT_COMPANIES = {"EV", "EVs", "AI", "CEO", "CFO", "IPO", "GDP", "U.S.", "US", "UK", "EU",
                 "R&D", "OEM", "LNG", "SUV", "SUVs", "Co", "Corp", "Inc", "Ltd"}
#: Words that make an ORG a public body, union, party or market, not a company.
BODY_WORDS = re.compile(
    r"\b(Government|Ministry|Minister|Community|Commission|Council|Unions|Workers|"
    r"(?:Justice|State|Defen[cs]e|Commerce|Energy|Treasury|Labor|Transportation) Department|"
    r"Department of|"
    r"(?:Labor|Labour|Trade|Credit|European|Soviet|Customs|Monetary) Union|"
    r"Party|Labour|Labor|Congress|Senate|Parliament|Agency|Authority|Treasury|"
    r"Court|Federal Reserve|Central Bank|Bank of (?:Japan|England|France|Canada)|Bundesbank|"
    r"Administration|Board|Locals?|Association|Federation|Committee|Organisation|"
    r"Organization|Exchange Commission|OPEC|GATT|EC|GCC|NATO|IMF|Cabinet|"
    r"Conservatives|Democrats|Republicans|Alliance Party|University|Institute|College|School|"
    r"Hospital|Foundation|Academy|Navy|Army|Air Force|Defen[cs]e)\b")
_START_WORDS = {"The", "A", "An", "Under", "Shares", "Analysts", "In", "On", "At", "But",
                "And", "While", "After", "Its", "Their", "Both", "Any", "Demand", "Financial",
                "Meanwhile", "Also", "Last", "This", "That", "Earlier"}

if not Doc.has_extension("relations"):
    Doc.set_extension("relations", default=None)


def _strip_leading(words: list[str]) -> int:
    """How many leading words of a matched name are sentence words or a possessor
    ("Taiwan's Lunaris Memory Corp"), not name words."""
    n = 0
    while n < len(words) - 1 and (words[n] in _START_WORDS or words[n].endswith(("'s", "’s"))):
        n += 1
    return n


def full_company_names(text: str, start: int = 0) -> dict[str, str]:
    """First word -> full name, for names written in full with a designator ("Halvorsen" ->
    "Halvorsen Pharma AG"), so later short references resolve to one company."""
    names: dict[str, str] = {}
    for match in COMPANY_RE.finditer(text):
        if match.start() < start or not match.group(1):
            continue
        words = match.group(1).split(" ")
        words = words[_strip_leading(words):]
        if len(words) > 1 and words[0] not in DESIGNATORS and words[0] not in _START_WORDS:
            names.setdefault(words[0], " ".join(words))
    return names


class CompanyFinder:
    def __init__(self, registry: CompanyRegistry) -> None:
        self.registry = registry

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text
        dateline = DATELINE_RE.match(text)
        dateline_end = dateline.end() if dateline else 0
        spans: list[Span] = []
        for ent in doc.ents:
            if ent.label_ != "ORG" or ent.end_char <= dateline_end:
                continue
            if ent.text in NOT_COMPANIES or self.registry.is_non_party(ent.text):
                continue
            spans.append(ent)
        for match in COMPANY_RE.finditer(text):
            start, end = match.span(1) if match.group(1) else match.span(2)
            words = text[start:end].split(" ")
            start += sum(len(w) + 1 for w in words[:_strip_leading(words)])
            if start < dateline_end:
                continue
            span = doc.char_span(start, end, label="ORG", alignment_mode="expand")
            if span is None or self.registry.is_non_party(span.text):
                continue
            spans.append(span)
        spans.extend(self.ticker_named(doc, dateline_end))
        full_names = doc.user_data.setdefault("company_full_names", {})
        for first, name in full_company_names(text, dateline_end).items():
            full_names.setdefault(first, name)
        for token in doc:
            if token.text in full_names and token.idx >= dateline_end:
                spans.append(Span(doc, token.i, token.i + 1, label="ORG"))
        kept = [s for s in spans if s.text not in NOT_COMPANIES]
        others = [s for s in doc.ents if s.label_ != "ORG"
                  and not any(s.start < k.end and k.start < s.end for k in kept)]
        doc.ents = filter_spans([*others, *kept])
        return doc


    @staticmethod
    def ticker_named(doc: Doc, dateline_end: int) -> list[Span]:
        """Mentions of names that carry a ticker anywhere in the article or its headline."""
        names = doc.user_data.get("ticker_names", set())
        if not names:
            return []
        out = []
        upper = [t.text.upper() for t in doc]
        for i, token in enumerate(doc):
            if token.idx < dateline_end or not token.text[:1].isupper():
                continue
            for name in names:
                n = len(name)
                if tuple(upper[i:i + n]) == name:
                    out.append(Span(doc, i, i + n, label="ORG"))
        return out


def ticker_names(*texts: str) -> set[tuple[str, ...]]:
    """Upper-cased word tuples of names written with a ticker ("TEKELEC <TKLC>")."""
    names: set[tuple[str, ...]] = set()
    for text in texts:
        for match in TICKER_NAME_RE.finditer(text):
            words = [w for w in match.group(1).upper().split() if w not in _TITLE_STOP]
            # keep the name part nearest the ticker: "HITECH <THEX>", "ADOBE SYSTEMS <ADBE>"
            tail: list[str] = []
            for w in reversed(words):
                if w in _TITLE_STOP:
                    break
                tail.insert(0, w)
            if tail:
                names.add(tuple(tail[-3:]))
                names.add(tuple(tail[:1]))
    return names


@Language.factory("radar_companies", default_config={})
def make_company_finder(nlp: Language, name: str) -> CompanyFinder:
    return CompanyFinder(default_registry())


# --------------------------------------------------------------------------- relations


@dataclass(frozen=True)
class Mention:
    name: str  # canonical company name
    start: int  # char offsets in the doc
    end: int
    known: bool  # registry company, or written with a designator or ticker
    root: int | None  # token index of the mention's syntactic head (None: pronoun proxy)
    reference: bool = False  # resolved from "the two companies", "the Japanese automaker"


@dataclass
class Relation:
    """A party set one sentence says cooperates, with the cue that says so."""

    parties: tuple[str, ...]
    sentence: Span
    cue: str
    stage: Stage | None = None
    explicit: bool = False
    known: int = 0
    fixed_stage: Stage | None = None
    via_reference: bool = False  # a party came from "the two companies" or similar
    sentences: list[Span] = field(default_factory=list)


class Lexicon:
    """The cue lexicon from data/lexicon.json, compiled once."""

    def __init__(self, data: dict) -> None:
        def rx(key: str) -> re.Pattern[str]:
            return re.compile(data[key], re.I)

        self.strong = rx("strong")
        self.weak = rx("weak")
        self.topic = rx("topic")
        self.anchors = rx("anchors")
        self.not_cooperation = rx("not_cooperation")
        self.rival_context = rx("rival_context")
        self.comparison = rx("comparison")
        self.multi_party = rx("multi_party")
        self.possessive_partner = rx("possessive_partner")
        self.pronoun_subject = re.compile(data["pronoun_subject"])
        self.headline = rx("headline")
        self.pair_reference = rx("pair_reference")
        self.one_reference = re.compile(data["one_reference"])
        self.headline_not_cooperation = rx("headline_not_cooperation")
        self.stages = [(Stage(name), re.compile(p, re.I)) for name, p in data["stages"]]
        self.attribution = {k: (re.compile(v, re.I) if k != "outlet" else re.compile(v))
                            for k, v in data["attribution"].items()}
        self.areas = {k: re.compile(v, re.I) for k, v in data["areas"].items()}

    def is_candidate(self, sentence: str, topic: bool = False) -> bool:
        """Cheap test on raw text: can this sentence report cooperation at all? `topic`: the
        headline already names cooperation ("... SETS PACT WITH IBM"), so a weak cue will do."""
        if self.strong.search(sentence):
            return True
        return bool(self.weak.search(sentence) and (topic or self.topic.search(sentence))
                    and not self.not_cooperation.search(sentence))

    def headline_topic(self, title: str) -> bool:
        return bool(title and self.headline.search(title)
                    and not self.headline_not_cooperation.search(title))

    def headline_is_not_cooperation(self, title: str) -> bool:
        """"HECLA BUYS STAKE IN ... VENTURE", "LOMAK, STRATA IN MERGER PACT": the story is a
        transaction; only strong cues in the body may still report cooperation."""
        return bool(title and self.headline_not_cooperation.search(title))

    def stage_of(self, text: str) -> tuple[Stage, bool]:
        """Stage a sentence reports, and whether a stage cue was explicit."""
        for stage, pattern in self.stages:
            if pattern.search(text):
                return stage, True
        # No hedge, talks, failure or ending cue: newswire states cooperation as done
        # ("X said it will jointly make ...", "X and Y formed ...").
        return Stage.AGREED, False


VENTURE_VERBS = {"own", "owns", "owned", "run", "runs", "operate", "operates", "form", "formed",
                 "forms", "create", "created", "establish", "established", "launch",
                 "launched", "set", "found", "founded", "call", "called", "name", "named"}
#: Named groupings ("Star Alliance", "Europrop International consortium") are the
#: cooperation itself; their members are the parties.
GROUPING_NAME = re.compile(
    r"\b(?:Alliance|Consortium|Venture|Ventures|JV|Partnership|Program|Programme|Project|"
    r"Center|Centre|Initiative|System)$")


def masked_text(sent: Span) -> str:
    """Sentence text with ORG entities blanked out, offsets kept."""
    text = sent.text
    for ent in sent.ents:
        if ent.label_ == "ORG":
            a, b = ent.start_char - sent.start_char, ent.end_char - sent.start_char
            text = text[:a] + "X" * (b - a) + text[b:]
    return text


_BETWEEN_COORDINATED = re.compile(
    r"^(?:\s|,|\.|Inc|Corp|Co|Ltd|Plc|PLC|SA|AG|ASA|NV|SpA|GmbH|SE|AB|LLC)*(?:,|and|&)\s*"
    r"(?:[A-Z][\w.-]*(?:'s|’s)\s+)?$")


def coordinated(doc: Doc, mentions: list[Mention]) -> int:
    """Size of the largest set of mentions joined by coordination ("X, Y and Z"): by the
    dependency parse, or by the text between consecutive names being only ", " or "and"."""
    ordered = sorted((m for m in mentions if not m.reference), key=lambda m: m.start)
    run = best_run = 1 if ordered else 0
    for a, b in itertools.pairwise(ordered):
        between = doc.text[a.end:b.start]
        run = run + 1 if _BETWEEN_COORDINATED.match(between) else 1
        best_run = max(best_run, run)
    return max(best_run, _coordinated_by_parse(doc, mentions))


def _coordinated_by_parse(doc: Doc, mentions: list[Mention]) -> int:
    roots = {m.root for m in mentions if m.root is not None}
    best = 0
    for m in mentions:
        if m.root is None:
            continue
        group = {m.root}
        frontier = [doc[m.root]]
        while frontier:
            tok = frontier.pop()
            for nxt in [*tok.conjuncts, *(c for c in tok.children if c.dep_ == "conj")]:
                if nxt.i in roots and nxt.i not in group:
                    group.add(nxt.i)
                    frontier.append(nxt)
        best = max(best, len(group))
    return best


def one_per_group(names: list[str]) -> list[str]:
    """Names sharing their first word ("Ecolab", "Ecolab Chemical Industrial") are one
    company and its unit, or one group: a company does not partner with itself."""
    seen: set[str] = set()
    out = []
    for name in names:
        first = name.split()[0].lower().rstrip("'s")
        if first not in seen:
            seen.add(first)
            out.append(name)
    return out


def _distances(token: Token) -> list[tuple[Token, int]]:
    """The token and its ancestors with their distance; a step out of a coordination
    ("A, B, C and D": D is conj of C ...) is free, so every member is as close as the first."""
    out = [(token, 0)]
    hops = 0
    current = token
    while current.head.i != current.i:
        hops += 0 if current.dep_ == "conj" else 1
        current = current.head
        out.append((current, hops))
    return out


def linked(token: Token, anchor: Token, max_hops: int = 5) -> bool:
    """Is `token` syntactically close to `anchor` (through their lowest common ancestor)?"""
    ancestors = {t.i: n for t, n in _distances(anchor)}
    for t, n in _distances(token):
        if t.i in ancestors:
            return n + ancestors[t.i] <= max_hops and ancestors[t.i] <= 3
    return False


class RelationFinder:
    def __init__(self, registry: CompanyRegistry, lex: Lexicon) -> None:
        self.registry = registry
        self.lex = lex

    def __call__(self, doc: Doc) -> Doc:
        relations: list[Relation] = []
        previous: list[Mention] = []
        focus: list[tuple[int, int]] | None = doc.user_data.get("candidate_ranges")
        # Companies named earlier in the article (before this window), most recent last.
        self.history: list[str] = list(doc.user_data.get("prior_companies", []))
        for sent in doc.sents:
            mentions = self.mentions(sent)
            in_focus = focus is None or any(sent.start_char < e and s < sent.end_char
                                            for s, e in focus)
            if in_focus and self.lex.is_candidate(sent.text, doc.user_data.get("topic", False)):
                relations.extend(self.sentence_relations(sent, mentions, previous))
            if mentions:
                previous = mentions
                self.history.extend(m.name for m in mentions)
        doc._.relations = relations
        return doc

    def references(self, sent: Span, mentions: list[Mention]) -> list[Mention]:
        """"the two companies" -> the last two companies named; "the Anglo-Dutch company" ->
        the last company named that this sentence does not name itself."""
        out: list[Mention] = []
        here = {m.name for m in mentions}
        recent = list(dict.fromkeys(reversed(self.history)))
        pair = self.lex.pair_reference.search(sent.text)
        count = {"three": 3, "3": 3, "four": 4, "4": 4, "five": 5, "5": 5}.get(
            (pair.group(1) or "").lower(), 2) if pair else 2
        if pair and len(recent) >= count and not (len(here) >= 2):
            token = sent.doc.char_span(sent.start_char + pair.start(),
                                       sent.start_char + pair.end(), alignment_mode="expand")
            if token is not None:
                for name in recent[:count]:
                    out.append(Mention(name, token.start_char, token.end_char, True,
                                       token.root.i, reference=True))
        for token in sent:
            if token.lower_ in ("its", "their") and token.dep_ == "poss" and \
                    self.lex.anchors.match(token.head.lower_):
                before = [m for m in mentions if m.end <= token.idx]
                owner = before[0].name if before else (recent[0] if recent else None)
                if owner:
                    out.append(Mention(owner, token.idx, token.idx + len(token), True,
                                       token.i, reference=not before))
        one = self.lex.one_reference.search(sent.text)
        if one and not out:
            # The most talked-about company so far is the likeliest antecedent of "the
            # Anglo-Dutch company" (ties: the one named first, the story's protagonist).
            salience = {n: self.history.count(n) for n in recent}
            others = sorted((n for n in recent if n not in here),
                            key=lambda n: (-salience[n], self.history.index(n)))
            token = sent.doc.char_span(sent.start_char + one.start(),
                                       sent.start_char + one.end(), alignment_mode="expand")
            if others and token is not None:
                out.append(Mention(others[0], token.start_char, token.end_char, True,
                                   token.root.i, reference=True))
        return out

    # -- mentions

    def mentions(self, sent: Span) -> list[Mention]:
        doc = sent.doc
        full_names: dict[str, str] = doc.user_data.get("company_full_names", {})
        out: list[Mention] = []
        for ent in sent.ents:
            if ent.label_ != "ORG" or BODY_WORDS.search(ent.text):
                continue
            owner = self._owner_from_context(ent) or self._owner_from_unit(ent, out)
            full = self._full_name(ent.text, full_names)
            name = owner or self.registry.canonicalize(full)
            if name is None or len(name) < 2 or BODY_WORDS.search(name):
                continue
            known = (owner is not None or self.registry.is_known(full)
                     or tuple(ent.text.upper().split()) in doc.user_data.get("ticker_names", ())
                     or bool(COMPANY_RE.fullmatch(full.strip()))
                     or bool(TICKER_AFTER_RE.match(doc.text[ent.end_char:ent.end_char + 14]))
                     or ent.text in full_names)
            if not known and len(name.split()) == 1:
                continue  # a lone unknown word ("Macklin", "Dub") is too often not a company
            out.append(Mention(name, ent.start_char, ent.end_char, known, ent.root.i))
        return out

    @staticmethod
    def _full_name(text: str, full_names: dict[str, str]) -> str:
        """The article's full form of a name: "AW Computer" -> "AW Computer Systems Inc"."""
        first = text.split(" ")[0]
        full = full_names.get(first)
        if full and full.startswith(text) and len(full) > len(text):
            return full
        return full_names.get(text, text)

    def _owner_from_unit(self, ent: Span, earlier: list[Mention]) -> str | None:
        """"Coca-Cola Co's Entertainment ... unit", "its <Air Europe> subsidiary", "through
        its subsidiary, Westlink Inc": a unit resolves to its parent."""
        if "'s " in ent.text:
            possessor = ent.text.split("'s ")[0]
            owner = self.registry.canonicalize(possessor)
            if owner and not self.registry.is_non_party(possessor):
                return owner
        doc = ent.doc
        after = doc[ent.end:ent.end + 1].text.lower()
        before = doc[max(ent.start - 3, 0):ent.start].text.lower()
        unit_words = ("unit", "subsidiary", "division", "affiliate", "arm", "brand")
        if earlier and (("its" in before.split() and after in unit_words)
                        or any(before.rstrip(", ").endswith(f"its {w}") for w in unit_words)):
            return earlier[-1].name
        return None

    def _owner_from_context(self, ent: Span) -> str | None:
        """A brand or unit resolves to its owner: "Chrysler's Dodge brand", "a Thyssen unit"."""
        owner = self.registry.brand_owner(ent.text)
        if owner:
            return owner
        before = ent.doc[max(ent.start - 3, 0):ent.start]
        if len(before) >= 2 and before[-1].text in ("'s", "’s") and before[-2].ent_type_:
            after = ent.doc[ent.end:ent.end + 1]
            if after.text.lower() in ("brand", "unit", "subsidiary", "division", "label"):
                return self.registry.canonicalize(ent.doc[before[-2].i:before[-1].i].text)
        return None

    # -- relations

    def sentence_relations(self, sent: Span, mentions: list[Mention],
                           previous: list[Mention]) -> list[Relation]:
        doc = sent.doc
        # Cue words inside company names ("Sun Alliance", "Joint Venture Leasing") are names.
        text = masked_text(sent)
        out: list[Relation] = []
        if previous and self.lex.pronoun_subject.match(text.strip()):
            # "It recently worked out a deal with Chery": "It" is the last sentence's subject.
            first = next(t for t in sent if not t.is_space)
            mentions = [Mention(previous[0].name, first.idx, first.idx, previous[0].known,
                                first.i), *mentions]
        mentions = [*mentions, *self.references(sent, mentions)]
        # "Vale, the biggest producer ahead of Rio Tinto and BHP, ...": compared companies.
        for comparison in self.lex.comparison.finditer(text):
            lo = sent.start_char + comparison.end()
            mentions = [m for m in mentions if not lo <= m.start <= lo + 60]
        rival = self.lex.rival_context.search(text)
        first_cue = self.lex.strong.search(text) or self.lex.weak.search(text)
        if rival and first_cue and first_cue.start() < rival.start():
            # "a partnership with Honda ... competition from the likes of BYD": rivals named
            # after the cooperation are not parties ("Rivals include X and Y, which are
            # jointly developing ..." keeps X and Y).
            cut = sent.start_char + rival.start()
            mentions = [m for m in mentions if m.start < cut]
        partner = self.lex.possessive_partner.search(text)
        appositive = [m for m in mentions if partner and
                      0 <= sent.start_char + partner.start() - m.end <= 3]
        if partner and appositive and mentions[0].name != appositive[0].name:
            pair = tuple(sorted({mentions[0].name, appositive[0].name}))
            out.append(Relation(pair, sent, "partner", fixed_stage=Stage.ACTIVE,
                                explicit=True, known=mentions[0].known + appositive[0].known))
        elif partner:
            at = sent.start_char + partner.end()
            after = [m for m in mentions if m.start >= at - 1]
            before = [m for m in mentions if m.start < at]
            if after and before and before[-1].name != after[0].name:
                pair = tuple(sorted({before[-1].name, after[0].name}))
                out.append(Relation(pair, sent, "partner", fixed_stage=Stage.ACTIVE,
                                    explicit=True, known=before[-1].known + after[0].known))
        # A cue inside a non-cooperation phrase ("general partnership", "merger agreement")
        # does not count; a strong cue elsewhere in the sentence still does.
        strong = self.lex.strong.search(self.lex.not_cooperation.sub(" ", text))
        if not strong and (self.lex.not_cooperation.search(text)
                           or doc.user_data.get("transaction_story", False)):
            return out
        anchors = [t for t in sent if self.lex.anchors.match(t.lower_) and t.ent_type_ != "ORG"]
        if not anchors:
            return out
        cue = strong or self.lex.weak.search(text)
        if cue is None:  # the only cue was part of a company name
            return out
        candidates = [m for m in mentions if m.root is not None
                      and not self._named_after_parties(m, mentions)
                      and not self._is_the_venture(doc, m, anchors)
                      and not (GROUPING_NAME.search(m.name)
                               and not self.registry.is_known(m.name))
                      and not self._appositive_name(doc, m, mentions)]
        linked_mentions = [m for m in candidates if any(linked(doc[m.root], a)
                                                        for a in anchors)]
        names = one_per_group(list(dict.fromkeys(m.name for m in linked_mentions)))
        if len(names) < 2:
            return out
        # Three or more parties only when the text groups them: "a three-way alliance",
        # "X, Y and Z formed ...", "X's venture with Y and Z".
        if len(names) > 2 and not (self.lex.multi_party.search(text)
                                   or coordinated(doc, linked_mentions) >= len(names)
                                   or self._possessor_plus_group(doc, linked_mentions,
                                                                 anchors, len(names))):
            names = names[:2]
        known = sum(m.known for m in linked_mentions if m.name in names)
        out.append(Relation(tuple(sorted(names)), sent, cue.group(0), known=known,
                            via_reference=any(m.reference for m in linked_mentions
                                              if m.name in names)))
        return out

    @staticmethod
    def _named_after_parties(mention: Mention, mentions: list[Mention]) -> bool:
        """"USS-POSCO Industries", "TI-Acer": a venture named after its parents."""
        parts = re.split(r"[-/]", mention.name.split(" ")[0].lower())
        if len(parts) < 2:
            return False
        others = {w.lower() for m in mentions if m.name != mention.name
                  for w in m.name.split()}
        return any(p in others for p in parts)

    @staticmethod
    def _possessor_plus_group(doc: Doc, mentions: list[Mention], anchors: list[Token],
                              n: int) -> bool:
        """"Sprint said Global One, its venture with Deutsche Telekom and France Telecom":
        a coordinated group plus one party tied directly to the cue (its possessor)."""
        if coordinated(doc, mentions) < n - 1:
            return False
        return any(m.root is not None and any(linked(doc[m.root], a, max_hops=1)
                                              for a in anchors) for m in mentions)

    @staticmethod
    def _appositive_name(doc: Doc, mention: Mention, mentions: list[Mention]) -> bool:
        """"Toyota Motor Corp, New United Motor Manufacturing Inc": a name in apposition to
        another company is the venture or the same company, not another party."""
        if mention.root is None or mention.reference:
            return False
        root = doc[mention.root]
        heads = {m.root for m in mentions if m is not mention}
        return root.dep_ == "appos" and root.head.i in heads

    @staticmethod
    def _is_the_venture(doc: Doc, mention: Mention, anchors: list[Token]) -> bool:
        """"Daewoo Motor Corp, the joint venture between Daewoo and GM": not a party."""
        root = doc[mention.root]  # type: ignore[index]
        if root.dep_ == "dobj" and root.head.lower_ in VENTURE_VERBS:
            return True  # "Vale and BHP, which jointly own Samarco": Samarco is the venture
        for anchor in anchors:
            if anchor.lower_ not in ("venture", "ventures", "consortium", "partnership"):
                continue
            if anchor.dep_ in ("appos", "attr") and anchor.head.i == root.i:
                return True
            if root.dep_ in ("appos", "attr") and root.head.i == anchor.i:
                return True
        return False


@Language.factory("radar_relations", default_config={})
def make_relation_finder(nlp: Language, name: str) -> RelationFinder:
    return RelationFinder(default_registry(), Lexicon(lexicon()))


@Language.component("radar_paragraphs")
def paragraph_boundaries(doc: Doc) -> Doc:
    """A paragraph break always ends a sentence ("Smyrna, Tenn.\n\nWhile ..."); set before
    the parser (which respects preset boundaries) or after a rule-based sentencizer."""
    for token in doc[:-1]:
        if token.is_space and "\n" in token.text:
            doc[token.i + 1].is_sent_start = True
    return doc


class StageTagger:
    """Stage of each relation from its sentence: tense, modality, negation cues."""

    def __init__(self, lex: Lexicon) -> None:
        self.lex = lex

    def __call__(self, doc: Doc) -> Doc:
        for rel in doc._.relations or []:
            if rel.fixed_stage is not None:
                rel.stage, rel.explicit = rel.fixed_stage, True
            else:
                rel.stage, rel.explicit = self.lex.stage_of(rel.sentence.text)
        return doc


@Language.factory("radar_stage", default_config={})
def make_stage_tagger(nlp: Language, name: str) -> StageTagger:
    return StageTagger(Lexicon(lexicon()))
