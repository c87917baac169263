"""Which stories were already published: exact keys and MinHash near-duplicates, in a window.

Pure, in-memory logic. The index is rebuilt at start-up from the `news.seen.v1` records
(`SeenArticle`) that `seen.py` replays, so a restart forgets nothing.

- exact: the same article id (given id or feed guid), canonical URL, or normalised text;
- near: estimated Jaccard similarity of word 5-shingles >= threshold (syndicated copies with
  another headline, dateline or footer). MinHashLSH (datasketch) finds candidates; the
  signature estimate confirms them.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from hashlib import sha1
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from shared.contracts import ArticleEvent, SeenArticle, stable_hash

SHINGLE_WORDS = 5
NUM_PERM = 128
SEED = 1
SCHEME = f"w{SHINGLE_WORDS}-p{NUM_PERM}-s{SEED}-affine32"
_WORD = re.compile(r"\w+", re.UNICODE)
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid|ocid|taid|"
                       r"guccounter|sr_share|smid|mod)$", re.I)


class Outcome(StrEnum):
    """What became of one input item; also the `outcome` metrics label."""

    PUBLISHED = "published"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    NON_ENGLISH = "non_english"  # any language not in RADAR_INGESTOR_LANGUAGES
    REJECTED = "rejected"


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, default port, fragment, tracking parameters and trailing
    slash dropped: the same page reached through a newsletter link is the same page."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not _TRACKING.match(k)))
    path = parts.path.rstrip("/") or ""
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def exact_keys(article: ArticleEvent) -> list[str]:
    """Identity keys: id (given id or feed guid), canonical URL, normalised text."""
    keys = ["id:" + stable_hash(article.article_id)]
    if article.url:
        keys.append("url:" + stable_hash(canonical_url(article.url)))
    keys.append("text:" + stable_hash(" ".join(words(article.text))))
    return keys


@cache
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    return MinHash(num_perm=NUM_PERM, seed=SEED).permutations


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (uint32 arithmetic wraps): datasketch's pre-mix of
    every input hash in the affine32 scheme."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def signature(text: str, min_words: int) -> LeanMinHash | None:
    """MinHash of the text's word 5-shingles; None for texts too short to judge.

    The values of datasketch's `MinHash(scheme="affine32").update_batch` over the shingles
    (SHA-1's first 4 bytes of each, pre-mixed, then min over `a * h + b` per permutation),
    computed in one pass of numpy: datasketch builds a Python int and a struct per shingle
    (0.13 -> 0.105 ms CPU per Reuters article; a unit test checks the values are the
    same)."""
    tokens = words(text)
    if len(tokens) < max(min_words, SHINGLE_WORDS):
        return None
    shingles = {" ".join(tokens[i:i + SHINGLE_WORDS]).encode()
                for i in range(len(tokens) - SHINGLE_WORDS + 1)}
    digests = b"".join([sha1(shingle).digest()[:4] for shingle in shingles])
    hashed = _fmix32(np.frombuffer(digests, dtype="<u4").astype(np.uint32)[:, None])
    a, b = _permutations()
    return LeanMinHash(seed=SEED, hashvalues=(hashed * a + b).min(axis=0), scheme="affine32")


def signature_bytes(sig: LeanMinHash) -> bytes:
    return np.asarray(sig.hashvalues, dtype="<u4").tobytes()


def signature_from_bytes(raw: bytes) -> LeanMinHash:
    values = np.frombuffer(raw, dtype="<u4")
    if len(values) != NUM_PERM:
        raise ValueError(f"signature has {len(values)} values, expected {NUM_PERM}")
    return LeanMinHash(seed=SEED, hashvalues=values, scheme="affine32")


@dataclass(frozen=True)
class Fingerprint:
    """Everything dedup needs to know about one article."""

    article_id: str
    keys: tuple[str, ...]
    minhash: LeanMinHash | None

    @classmethod
    def of(cls, article: ArticleEvent, min_words: int) -> Fingerprint:
        return cls(article.article_id, tuple(exact_keys(article)),
                   signature(article.text, min_words))

    def record(self, source: str, seen_at: datetime) -> SeenArticle:
        return SeenArticle(article_id=self.article_id, keys=list(self.keys),
                           minhash=signature_bytes(self.minhash) if self.minhash else None,
                           minhash_scheme=SCHEME if self.minhash else "", source=source,
                           seen_at=seen_at)

    @classmethod
    def from_record(cls, record: SeenArticle) -> Fingerprint:
        sig = None
        if record.minhash and record.minhash_scheme == SCHEME:
            sig = signature_from_bytes(record.minhash)
        return cls(record.article_id, tuple(record.keys), sig)


@cache
def _bands(threshold: float) -> tuple[int, int]:
    """LSH bands and rows (scipy integration: slow, so once per threshold)."""
    lsh = MinHashLSH(threshold=max(0.1, threshold - 0.2), num_perm=NUM_PERM,
                     weights=(0.1, 0.9))
    return lsh.b, lsh.r


@dataclass(frozen=True)
class Match:
    outcome: Outcome  # DUPLICATE or NEAR_DUPLICATE
    of: str  # the article id it duplicates
    similarity: float = 1.0


@dataclass
class _Entry:
    fingerprint: Fingerprint
    seen_at: datetime


@dataclass
class SeenIndex:
    """Stories seen within `window`; `window=0` disables dedup altogether."""

    window: timedelta
    threshold: float = 0.8
    entries: dict[str, _Entry] = field(default_factory=dict)
    _by_key: dict[str, str] = field(default_factory=dict)
    _expiry: list[tuple[datetime, str]] = field(default_factory=list)
    _lsh: MinHashLSH | None = None

    def __post_init__(self) -> None:
        # Banding finds candidates; the signature estimate decides. Tuned to miss almost no
        # pair at the threshold (a missed copy is republished); extra candidates are cheap.
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=_bands(self.threshold))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def enabled(self) -> bool:
        return self.window > timedelta(0)

    def check(self, fp: Fingerprint, now: datetime) -> Match | None:
        """The seen story `fp` duplicates, if any, still inside the window."""
        if not self.enabled:
            return None
        for key in fp.keys:
            other = self._by_key.get(key)
            if other is not None and self._fresh(other, now):
                return Match(Outcome.DUPLICATE, other)
        if fp.minhash is None:
            return None
        assert self._lsh is not None
        best: Match | None = None
        for other in self._lsh.query(fp.minhash):
            entry = self.entries.get(other)
            if entry is None or entry.fingerprint.minhash is None or not self._fresh(other, now):
                continue
            similarity = fp.minhash.jaccard(entry.fingerprint.minhash)
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = Match(Outcome.NEAR_DUPLICATE, other, similarity)
        return best

    def add(self, fp: Fingerprint, seen_at: datetime) -> None:
        """Remember a story (replacing an older record of the same id)."""
        if not self.enabled:
            return
        old = self.entries.get(fp.article_id)
        if old is not None:
            if old.fingerprint == fp and old.seen_at == seen_at:
                return  # our own record coming back from the topic
            self.remove(fp.article_id)
        self.entries[fp.article_id] = _Entry(fp, seen_at)
        for key in fp.keys:
            self._by_key[key] = fp.article_id
        if fp.minhash is not None:
            assert self._lsh is not None
            self._lsh.insert(fp.article_id, fp.minhash, check_duplication=False)
        heapq.heappush(self._expiry, (seen_at, fp.article_id))

    def remove(self, article_id: str) -> bool:
        entry = self.entries.pop(article_id, None)
        if entry is None:
            return False
        for key in entry.fingerprint.keys:
            if self._by_key.get(key) == article_id:
                del self._by_key[key]
        assert self._lsh is not None
        if entry.fingerprint.minhash is not None and article_id in self._lsh:
            self._lsh.remove(article_id)
        return True

    def expire(self, now: datetime) -> Iterator[str]:
        """Forget stories older than the window; yields their ids (for tombstones)."""
        while self._expiry and self._expiry[0][0] <= now - self.window:
            seen_at, article_id = heapq.heappop(self._expiry)
            entry = self.entries.get(article_id)
            if entry is not None and entry.seen_at == seen_at:
                self.remove(article_id)
                yield article_id

    def _fresh(self, article_id: str, now: datetime) -> bool:
        entry = self.entries.get(article_id)
        return entry is not None and entry.seen_at > now - self.window
