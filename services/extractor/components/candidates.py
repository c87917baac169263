"""`radar_candidates`: candidate party sets and the features the trained models read.

Symbolic and generous on purpose: every cue sentence proposes every pair of the companies it
names (and, where it names three or more, the whole group and its coordinated runs), plus
companies it names only by reference ("the two companies", "its partner", "It ..."). Whether
a candidate is a partnership, and at what stage, is for the trained models
(`radar_partnerships`) to decide from the features recorded here: which cues fire in the
sentence and between the parties, the words between them, the dependency path that links
them, how each was found, and where the sentence sits in the article.

Writes `doc._.candidates`: a list of `Candidate`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from services.extractor.components.extensions import ArticleContext, context
from services.extractor.cues import CueTable

#: Parts of speech whose words describe what a sentence reports.
_CONTENT_POS = {"NOUN", "VERB", "ADJ", "ADV", "ADP", "AUX", "PART", "SCONJ"}
_COORDINATION = re.compile(r"^[\s,]*(?:,|and|&)\s*(?:[A-Z][\w.-]*(?:'s|’s)\s+)?$")
_NUMBER_WORDS = {"two": 2, "2": 2, "three": 3, "3": 3, "four": 4, "4": 4, "five": 5, "5": 5}
MAX_NAMES = 8  # names per sentence considered (a list of twenty bidders is not a pact)
MAX_BETWEEN = 12  # words between two parties recorded one by one


@dataclass(frozen=True)
class Mention:
    """A company in a sentence: named, or referred to ("the two companies", "It")."""

    name: str
    start: int  # doc character offsets
    end: int
    root: Token
    kind: str  # designator / ticker / ner / short / pair_reference / possessive / ...
    known: bool
    reference: bool = False


@dataclass
class Candidate:
    """A party set one sentence may report as cooperating, with what the models read."""

    parties: tuple[str, ...]  # sorted canonical names
    sentence: Span
    features: set[str] = field(default_factory=set)
    reference: bool = False  # a party is only referred to in this sentence


def bucket(n: int, edges: tuple[int, ...]) -> str:
    for edge in edges:
        if n <= edge:
            return str(edge)
    return f">{edges[-1]}"


def masked(sent: Span, mentions: list[Mention]) -> str:
    """Sentence text with company names blanked (offsets kept): cue words inside names
    ("Sun Alliance", "Joint Venture Leasing") are names, not cues."""
    text = sent.text
    for m in mentions:
        if m.reference:
            continue
        a, b = m.start - sent.start_char, m.end - sent.start_char
        text = text[:a] + "X" * (b - a) + text[b:]
    return text


_NAME_WORD = re.compile(r"[a-z0-9]+")
_FILLER = {"and", "of", "de", "du", "des", "la", "le", "the", "di", "del", "y", "et", "&"}


def _words(name: str) -> list[str]:
    # "AT&T", "A.T.&T." and "ATT" are one word: letters joined by & or . stay together.
    return _NAME_WORD.findall(re.sub(r"(?<=\w)[&.](?=\w)", "", name.lower()))


def _initials(words: list[str]) -> str:
    return "".join(w[0] for w in words if w not in _FILLER)


def same_company(short: str, long: str) -> bool:
    """Does `short` name the company `long` names, in one article? "BP" / "BP North
    America", "Varitronics" / "Varitronic Systems", "SAT" / "Societe Anonyme de
    Telecommunications". The shorter name must keep the longer one's first word (so
    "Motors" is not "General Motors") or be its initials."""
    a, b = _words(short), _words(long)
    if not a or not b:
        return False
    if len(a) > len(b):
        a, b = b, a
        short, long = long, short
    if set(a) <= set(b) and a[0] == b[0]:
        return True
    if len(a) == 1 and len(a[0]) >= 4 and (a[0].startswith(b[0]) or b[0].startswith(a[0])) \
            and min(len(a[0]), len(b[0])) >= 0.8 * max(len(a[0]), len(b[0])):
        return True
    initials = _initials(b)
    # "EVI" for Energy Ventures Inc: the legal suffix is gone from canonical names.
    return (short.isupper() and 2 <= len(short) <= 6 and len(b) >= 2
            and (short.lower() in (initials, _initials(b[:-1]))
                 or (short[-1] in "ICLP" and short[:-1].lower() == initials)))


def name_clusters(names: list[str], preferred: set[str]) -> dict[str, str]:
    """name -> the one name its company goes by in this article. Names are merged when one
    names the other's company (`same_company`), unless a short name would join two
    companies ("General" with General Motors and General Electric). The name kept is a
    `preferred` one (a registry or designator name) if any, else the first written."""
    order = list(dict.fromkeys(names))
    parent = {n: n for n in order}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a in order:
        matches = [b for b in order if b != a and len(_words(b)) >= len(_words(a))
                   and same_company(a, b)]
        if not matches:
            continue
        longer = [b for b in matches if len(_words(b)) > len(_words(a))]
        if len(longer) > 1 and not all(same_company(x, y) for x, y in
                                       itertools.combinations(longer, 2)):
            continue  # ambiguous short name
        for b in matches:
            ra, rb = find(a), find(b)
            if ra != rb:
                first, second = sorted((ra, rb), key=order.index)
                parent[second] = first
    members: dict[str, list[str]] = {}
    for n in order:
        members.setdefault(find(n), []).append(n)
    out = {}
    for group in members.values():
        keep = next((n for n in group if n in preferred), group[0])
        for n in group:
            out[n] = keep
    return out


def dependency_path(a: Token, b: Token) -> tuple[list[Token], list[Token]]:
    """Tokens from `a` up to the lowest common ancestor, and from `b` up to it (both
    ending with the ancestor). Empty when they are in different sentences."""
    up_a = [a, *a.ancestors]
    seen = {t.i: n for n, t in enumerate(up_a)}
    for n, t in enumerate([b, *b.ancestors]):
        if t.i in seen:
            return up_a[:seen[t.i] + 1], [b, *b.ancestors][:n + 1]
    return [], []


#: Words kept as themselves on a dependency path (the rest become their cue or POS).
_PATH_WORDS = {"with", "between", "of", "and", "for", "by", "to", "in", "from", "among", "its",
               "their", "said", "says", "will", "would", "has", "have", "had", "is", "was"}
#: Cue families a single word can show on a path or near a party.
_WORD_CUES = ("joint_venture", "alliance", "cooperate", "partner", "license", "jointly",
              "consortium", "agreement", "talks", "distribution", "acquisition", "stake",
              "buy_sell", "financing", "legal", "government", "rival", "development",
              "stage_hedge", "stage_failed", "stage_ended")


class CandidateFinder:
    def __init__(self, cues: CueTable) -> None:
        self.cues = cues
        self._families: dict[str, str] = {}

    def family(self, token: Token) -> str:
        """The cue family a word shows by itself ("venture" -> joint_venture), or ""."""
        word = token.lower_
        hit = self._families.get(word)
        if hit is None:
            hit = next((c for c in _WORD_CUES if self.cues[c].fullmatch(word)), "")
            self._families[word] = hit
        return hit

    def path_class(self, token: Token) -> str:
        if token.lower_ in _PATH_WORDS:
            return token.lower_
        return self.family(token).upper() or token.pos_

    def anchor_features(self, m: Mention, tag: str) -> set[str]:
        """How a party hangs off the nearest cue word: "a:partner:pobj<prep" etc."""
        feats: set[str] = set()
        root = m.root
        sent = root.sent
        best: tuple[int, str, str] | None = None
        for token in sent:
            fam = self.family(token)
            if not fam or token.i == root.i:
                continue
            up_a, up_b = dependency_path(root, token)
            if not up_a:
                continue
            hops = len(up_a) + len(up_b) - 2
            if hops > 4:
                continue
            chain = "<".join(t.dep_ for t in up_a[:-1]) + ">" + ">".join(
                t.dep_ for t in reversed(up_b[:-1]))
            feats.add(f"{tag}:{fam}:{min(hops, 4)}")
            if best is None or hops < best[0]:
                best = (hops, fam, chain)
        if best:
            feats.add(f"{tag}n:{best[1]}:{best[2]}")
            feats.add(f"{tag}n:{best[1]}")
        return feats

    def __call__(self, doc: Doc) -> Doc:
        ctx = context(doc)
        spans = list(doc.spans["companies"]) if "companies" in doc.spans else []
        clusters = name_clusters(
            [*(n for _, n in ctx.named), *(s._.company for s in spans)],
            {s._.company for s in spans if s._.company_known
             and s._.company_kind in ("designator", "ticker")} | {n for _, n in ctx.named})
        # A unit the text places under its parent is the parent ("Georgia Power, a unit of
        # Southern Co"), as the annotation guide says.
        units = {clusters.get(u, u): clusters.get(p, p) for u, p in ctx.units.items()}
        self.clusters = {n: units.get(rep, rep) for n, rep in clusters.items()}
        surfaces: dict[str, set[str]] = {}
        for span in spans:
            rep = self.clusters.get(span._.company, span._.company)
            surfaces.setdefault(rep, set()).update((span._.company, span.text.strip()))
        doc._.company_surfaces = surfaces
        out: list[Candidate] = []
        previous: list[Mention] = []
        seen_in_doc: list[tuple[int, str]] = []  # (article offset, name) named so far here
        protagonists = self._protagonists(ctx, spans)
        gate_window = None  # the window of the sentence before, if that is a gate sentence
        for sent in doc.sents:
            mentions = [self._mention(s) for s in spans
                        if sent.start <= s.start < sent.end]
            text = masked(sent, mentions)
            gate = self.cues.is_gate(text)
            # "... with Kamine Engineering, and both companies will retain interests": a
            # follow-up sentence (`CueTable.is_follow_up`) proposes candidates too.
            window = ctx.segment_of(sent.start_char)
            follow_up = not gate and gate_window == window and self.cues.is_follow_up(text)
            if gate or follow_up:
                at = ctx.article_offset(sent.start_char)
                history = self._history(ctx, at, seen_in_doc)
                refs = self._references(sent, text, mentions, previous, history)
                found = self._candidates(sent, text, [*mentions, *refs], previous, ctx, at,
                                         protagonists)
                for cand in found if follow_up else ():
                    cand.features.add("follow_up")
                out.extend(found)
            gate_window = window if gate else None
            for m in mentions:
                seen_in_doc.append((ctx.article_offset(m.start), m.name))
            if mentions:
                previous = mentions
        doc._.candidates = out
        return doc

    def _protagonists(self, ctx: ArticleContext, spans: list[Span]) -> dict[str, str]:
        """The story's main companies: those its headline names, and the first one its text
        names -> how each was found."""
        out: dict[str, str] = {}
        title = set(re.findall(r"[A-Z0-9&][A-Z0-9&.'-]*", ctx.title.upper()))
        for span in spans:
            first = span._.company.split()[0].upper()
            if first in title and len(first) > 1:
                out.setdefault(self.clusters.get(span._.company, span._.company), "title")
        if ctx.named:
            out.setdefault(self.clusters.get(ctx.named[0][1], ctx.named[0][1]), "first")
        elif spans:
            out.setdefault(self.clusters.get(spans[0]._.company, spans[0]._.company), "first")
        return out

    def _mention(self, span: Span) -> Mention:
        return Mention(self.clusters.get(span._.company, span._.company), span.start_char,
                       span.end_char, span.root, span._.company_kind or "ner",
                       bool(span._.company_known))

    def _history(self, ctx: ArticleContext, at: int, seen: list[tuple[int, str]]
                 ) -> list[str]:
        """Companies named before article offset `at`, oldest first."""
        named = [(o, self.clusters.get(n, n)) for o, n in ctx.named if o < at] + \
            [(o, n) for o, n in seen if o < at]
        return [n for _, n in sorted(named)]

    # -- references

    def _references(self, sent: Span, text: str, mentions: list[Mention],
                    previous: list[Mention], history: list[str]) -> list[Mention]:
        out: list[Mention] = []
        here = {m.name for m in mentions}
        recent = list(dict.fromkeys(reversed(history)))  # most recent first, distinct
        doc = sent.doc

        def at(match: re.Match[str], group: int | str = 0) -> Token | None:
            span = doc.char_span(sent.start_char + match.start(group),
                                 sent.start_char + match.end(group), alignment_mode="expand")
            return span.root if span is not None else None

        pair = self.cues["pair_reference"].search(text)
        if pair and len(here) < 2:
            words = pair.group(0).lower().split()
            count = next((_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS), 2)
            root = at(pair)
            pool = [n for n in recent if n not in here] if here else recent
            # "The two companies have agreed to pool research with GE": the companies named
            # after the reference are not the ones it stands for.
            after = bool(mentions) and all(m.start - sent.start_char >= pair.end()
                                           for m in mentions)
            need = count if after else count - len(here)
            if root is not None and len(pool) >= need:
                for name in pool[:need]:
                    out.append(Mention(name, sent.start_char + pair.start(),
                                       sent.start_char + pair.end(), root, "pair_reference",
                                       True, reference=True))
        for token in sent:
            if token.lower_ in ("its", "their") and token.dep_ == "poss":
                before = [m for m in mentions if m.end <= token.idx]
                owner = before[0].name if before else (recent[0] if recent else None)
                if owner and owner not in {m.name for m in out}:
                    out.append(Mention(owner, token.idx, token.idx + len(token), token,
                                       "possessive", True, reference=not before))
        # "It said ...", "In addition, it announced ...": the subject continues the last
        # sentence's (when no company is named before it).
        subject = self.cues["pronoun_subject"].match(text) or \
            self.cues["pronoun_after_opener"].match(text)
        if subject and previous and not any(m.start - sent.start_char < subject.end()
                                            for m in mentions):
            ref = "ref" if "ref" in subject.re.groupindex else 0
            lo, hi = subject.span(ref)
            root = at(subject, ref)
            if root is not None and previous[0].name not in {m.name for m in out}:
                out.append(Mention(previous[0].name, sent.start_char + lo,
                                   sent.start_char + hi, root, "pronoun_subject",
                                   previous[0].known, reference=True))
        one = self.cues["one_reference"].search(text)
        if one and not out:
            # The most talked-about company so far is the likeliest antecedent of "the
            # Anglo-Dutch company" (ties: the one named first, the story's protagonist).
            others = [n for n in recent if n not in here]
            if others:
                salience = {n: history.count(n) for n in others}
                best = sorted(others, key=lambda n: (-salience[n], history.index(n)))[0]
                root = at(one)
                if root is not None:
                    out.append(Mention(best, sent.start_char + one.start(),
                                       sent.start_char + one.end(), root, "one_reference",
                                       True, reference=True))
        return out

    # -- candidates

    def _candidates(self, sent: Span, text: str, mentions: list[Mention],
                    previous: list[Mention], ctx: ArticleContext, at: int,
                    protagonists: dict[str, str]) -> list[Candidate]:
        by_name: dict[str, list[Mention]] = {}
        for m in mentions:
            by_name.setdefault(m.name, []).append(m)
        names = list(by_name)[:MAX_NAMES]
        shared = self._sentence_features(sent, text, names, ctx, at)
        runs = self._runs(sent, names, by_name)
        out: list[Candidate] = []
        for a, b in itertools.combinations(names, 2):
            ma, mb = self._closest(by_name[a], by_name[b])
            feats = shared | self._pair_features(sent, text, ma, mb, by_name)
            # "X agreed with Y and Z to ...": a pair inside a coordinated three-party group is
            # part of that group, not an event of its own.
            for run in runs:
                if (a in run or b in run) and any(n not in (a, b) for n in run):
                    feats.add("third_coord")
                if set(run) == {a, b}:
                    feats.add("pair_is_run")
            out.append(Candidate(tuple(sorted((a, b))), sent, feats,
                                 ma.reference or mb.reference))
        if len(names) == 1 and previous:
            # "X said it formed a venture. The venture, with Y, will ..." : the partner may be
            # in the sentence before (the model weighs how often that holds).
            only = by_name[names[0]][0]
            for m in previous[:2]:
                if m.name != only.name:
                    feats = shared | self._mention_features(only, m) | {"cross"} | \
                        self.anchor_features(only, "a")
                    out.append(Candidate(tuple(sorted((only.name, m.name))), sent, feats,
                                         True))
        # "The venture will make chips, Nippon Steel said" in a story whose headline and lead
        # name Inland Steel: the partner is the story's protagonist.
        for name in names:
            mention = by_name[name][0]
            for hero, how in protagonists.items():
                if hero in by_name or hero == name:
                    continue
                feats = shared | {"protagonist", f"protagonist:{how}", f"k:{mention.kind}",
                                  f"nl:{name.split()[-1].lower()}",
                                  f"nl:{hero.split()[-1].lower()}"} | \
                    self.anchor_features(mention, "a")
                out.append(Candidate(tuple(sorted((name, hero))), sent, feats, True))
        if len(names) >= 3:
            # The group's likeliest lead is the sentence's first company, also when it is
            # only referred to ("In addition, it announced jointly with X and Y").
            first = min(names, key=lambda n: by_name[n][0].start)
            for group, how in self._groups(names, runs, first):
                feats = shared | {"group", f"gsize:{min(len(group), 5)}", f"g:{how}"}
                if len(group) == len(names):
                    feats.add("gall")
                for n in group:
                    m = by_name[n][0]
                    feats.add(f"gk:{m.kind}")
                    feats |= {f"g{f}" for f in self.anchor_features(m, "a")}
                out.append(Candidate(tuple(sorted(group)), sent, feats,
                                     any(by_name[n][0].reference for n in group)))
        return out

    @staticmethod
    def _closest(first: list[Mention], second: list[Mention]) -> tuple[Mention, Mention]:
        def cost(pair: tuple[Mention, Mention]) -> int:
            up_a, up_b = dependency_path(pair[0].root, pair[1].root)
            return len(up_a) + len(up_b) if up_a else 99
        return min(itertools.product(first, second), key=cost)

    @staticmethod
    def _runs(sent: Span, names: list[str], by_name: dict[str, list[Mention]]
              ) -> list[list[str]]:
        """Names joined by coordination ("X, Y and Z"), in text order: by the text between
        them (only ", " or "and") or by the parse (conjuncts)."""
        ordered = sorted((by_name[n][0] for n in names if not by_name[n][0].reference),
                         key=lambda m: m.start)
        run: list[Mention] = ordered[:1]
        runs: list[list[Mention]] = []
        for a, b in itertools.pairwise(ordered):
            between = sent.doc.text[a.end:b.start]
            if _COORDINATION.match(between) or b.root in a.root.conjuncts:
                run.append(b)
            else:
                runs.append(run)
                run = [b]
        runs.append(run)
        return [list(dict.fromkeys(m.name for m in r)) for r in runs if r]

    @staticmethod
    def _groups(names: list[str], runs: list[list[str]], first: str | None
                ) -> list[tuple[list[str], str]]:
        """Three or more parties: the whole set (up to six) and the coordinated runs, with and
        without the sentence's first company (often the subject: "X's venture with Y and Z"),
        each with how it was formed."""
        groups: list[tuple[list[str], str]] = []
        if len(names) <= 6:
            groups.append((list(names), "all"))
        for members in runs:
            if len(members) >= 3 and all(members != g for g, _ in groups):
                groups.append((members, "run"))
            if first and len(members) >= 2 and first not in members:
                with_first = [first, *members]
                if len(with_first) >= 3 and all(with_first != g for g, _ in groups):
                    groups.append((with_first, "run+first"))
        return groups

    # -- features

    def _sentence_features(self, sent: Span, text: str, names: list[str],
                           ctx: ArticleContext, at: int) -> set[str]:
        feats = {f"c:{c}" for c in self.cues.fired(text)}
        covered = {i for m in sent.doc.spans.get("companies", []) for i in range(m.start, m.end)}
        for token in sent:
            if token.i in covered or not token.is_alpha:
                continue
            if token.pos_ in _CONTENT_POS:
                feats.add(f"sw:{token.lower_}")
                if token.pos_ in ("VERB", "AUX") and token.tag_:
                    feats.add(f"tag:{token.tag_}")
        feats.add(f"nc:{min(len(names), 5)}")
        first_paragraph = at < 400
        feats.add("lead" if first_paragraph else "body")
        return feats

    def _pair_features(self, sent: Span, text: str, a: Mention, b: Mention,
                       by_name: dict[str, list[Mention]]) -> set[str]:
        feats = self._mention_features(a, b)
        first, second = sorted((a, b), key=lambda m: m.start)
        lo, hi = first.end - sent.start_char, second.start - sent.start_char
        between = text[lo:hi] if hi > lo else ""
        feats |= {f"cb:{c}" for c in self.cues.fired(between)} if between else {"cb:none"}
        words = re.findall(r"[a-z]+(?:-[a-z]+)?", between.lower())
        if len(words) <= MAX_BETWEEN:
            feats |= {f"bw:{w}" for w in words}
            if _COORDINATION.match(sent.doc.text[first.end:second.start]):
                feats.add("coordtext")
        else:
            feats.add("bw:LONG")
        feats.add(f"d:{bucket(len(words), (0, 2, 4, 8, 16))}")
        # Other companies between the two: "X and Y's unit Z", "X, acquirer of Y, and Z".
        inside = {n for n, ms in by_name.items() for m in ms
                  if first.end <= m.start < second.start and n not in (a.name, b.name)}
        feats.add(f"oi:{min(len(inside), 2)}")
        up_a, up_b = dependency_path(a.root, b.root)
        if up_a:
            top = up_a[-1]
            feats.add(f"pl:{bucket(len(up_a) + len(up_b) - 2, (1, 2, 3, 4, 6))}")
            feats.add(f"top:{top.lower_}")
            feats.add(f"topc:{self.path_class(top)}")
            feats.add("p:" + "^".join(t.dep_ for t in up_a[:-1]) + "|"
                      + "^".join(t.dep_ for t in up_b[:-1]))
            # The path as dependency labels and word classes ("nsubj said ccomp VERB dobj
            # AGREEMENT prep with pobj"), whole and as trigrams: what links the parties.
            steps: list[str] = []
            for t in up_a[:-1]:
                steps += [t.dep_, self.path_class(t.head)]
            for t in reversed(up_b[:-1]):
                steps += [t.dep_ + "'", self.path_class(t)]
            steps = steps[:-1] if steps else steps
            if len(steps) <= 14:
                feats.add("pp:" + " ".join(steps))
            for i in range(len(steps) - 2):
                feats.add("p3:" + " ".join(steps[i:i + 3]))
            for t in (*up_a[1:], *up_b[1:]):
                feats.add(f"pw:{t.lower_}")
                fam = self.family(t)
                if fam:
                    feats.add(f"pc:{fam}")
            if a.root in b.root.conjuncts:
                feats.add("conj")
        feats |= self.anchor_features(a, "a") | self.anchor_features(b, "a")
        feats |= self.marked_ngrams(sent, a, b, by_name)
        for m in (a, b):
            feats.add(f"r:{m.root.dep_}")
            feats.add(f"rh:{m.root.dep_}:{m.root.head.lower_}")
        return feats

    @staticmethod
    def marked_ngrams(sent: Span, a: Mention, b: Mention, by_name: dict[str, list[Mention]]
                      ) -> set[str]:
        """Word n-grams around and between the parties, with the parties written as A and B
        and other companies as C ("A said it formed", "venture with B"): the wording that
        links them, as relation extractors since Mintz et al. read it."""
        others = [(m.start, m.end) for ms in by_name.values() for m in ms
                  if m.name not in (a.name, b.name) and not m.reference]
        first, second = sorted((a, b), key=lambda m: m.start)
        words: list[str] = []
        for token in sent:
            at = token.idx
            if first.start <= at < first.end or (first.reference and token.i == first.root.i):
                word = "A"
            elif second.start <= at < second.end or (second.reference
                                                     and token.i == second.root.i):
                word = "B"
            elif any(s <= at < e for s, e in others):
                word = "C"
            elif token.is_punct or token.is_space:
                continue
            elif token.like_num:
                word = "0"
            else:
                word = token.lower_
            if not words or word not in "ABC" or words[-1] != word:
                words.append(word)
        if "A" not in words or "B" not in words:
            return set()
        lo, hi = words.index("A"), len(words) - 1 - words[::-1].index("B")
        window = words[max(lo - 3, 0):hi + 4]
        out = set()
        for n in (2, 3):
            for i in range(len(window) - n + 1):
                gram = window[i:i + n]
                out.add("ng:" + " ".join(gram))
        if hi - lo <= 8:
            out.add("seq:" + " ".join(words[lo:hi + 1]))
        return out

    @staticmethod
    def _mention_features(a: Mention, b: Mention) -> set[str]:
        feats = {f"k:{a.kind}", f"k:{b.kind}", f"known:{int(a.known) + int(b.known)}"}
        if a.reference or b.reference:
            feats.add("ref")
        for m in (a, b):
            last = m.name.split()[-1].lower()
            feats.add(f"nl:{last}")
        if a.name.split()[0].lower() == b.name.split()[0].lower():
            feats.add("samefirst")  # "Unilever Plc" and "Unilever NV": one group
        return feats


@Language.factory(
    "radar_candidates",
    default_config={"cues": {"@misc": "radar.cue_table.v1", "path": None}})
def make_candidate_finder(nlp: Language, name: str, cues: CueTable) -> CandidateFinder:
    return CandidateFinder(cues)
