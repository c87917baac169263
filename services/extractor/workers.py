"""Extraction on every core: a pool of worker processes, each holding its own loaded pipeline.

spaCy's parse holds the GIL, so threads cannot use a second core; processes can. Each worker
loads the pipeline once (its initializer), then takes chunks of articles. A batch is dealt
round-robin over the workers (neighbouring articles differ in cost far less than whole
chunks would) and put back together in input order, so what the pool returns is exactly what
one `Extractor.extract_outcomes` call over the batch returns.

A worker that dies (out of memory, a crash in native code) breaks the executor: the pool
starts a new one and raises, so the caller retries article by article and only the article
that kills a worker again ends up a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from services.extractor.pipeline import DEFAULT_SPACY_MODEL, Extractor
from shared.broker import die_with_parent
from shared.contracts import ArticleEvent, PartnershipEvent

log = logging.getLogger(__name__)

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: Per article: (parsed, i.e. past the cue gate; its events), as `Extractor.extract_outcomes`.
Outcome = tuple[bool, list[PartnershipEvent]]


@dataclass(frozen=True)
class PipelineSpec:
    """What a worker loads: the arguments of `Extractor.load`."""

    spacy_model: str = DEFAULT_SPACY_MODEL
    model_path: str | None = None
    threshold: float | None = None
    gate_path: str | None = None

    def load(self) -> Extractor:
        return Extractor.load(self.spacy_model, model_path=self.model_path,
                              threshold=self.threshold, gate_path=self.gate_path)


def default_processes() -> int:
    """One extraction process per core."""
    return max(1, os.cpu_count() or 1)


def deal(count: int, ways: int) -> list[list[int]]:
    """Indices 0..count-1 dealt round-robin into at most `ways` non-empty hands."""
    hands = [list(range(i, count, ways)) for i in range(min(ways, count))]
    return [h for h in hands if h]


def gather_dealt(hands: Sequence[Sequence[int]], results: Sequence[Sequence[Outcome]],
                 count: int) -> list[Outcome]:
    """Put the hands' results back in input order."""
    out: list[Outcome | None] = [None] * count
    for hand, result in zip(hands, results, strict=True):
        if len(hand) != len(result):
            raise RuntimeError(f"a worker returned {len(result)} outcomes for {len(hand)} "
                               "articles")
        for index, outcome in zip(hand, result, strict=True):
            out[index] = outcome
    missing = [i for i, o in enumerate(out) if o is None]
    if missing:
        raise RuntimeError(f"no outcome for articles at {missing[:5]}")
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- in a worker

_worker_extractor: Extractor | None = None


def _start_worker(spec: PipelineSpec) -> None:
    """Worker initializer: die with the service, leave Ctrl-C to it, load the pipeline."""
    global _worker_extractor
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_extractor = spec.load()


def _worker_describe() -> tuple[int, str, float]:
    assert _worker_extractor is not None
    return os.getpid(), _worker_extractor.version, _worker_extractor.threshold


def _worker_extract(articles: list[ArticleEvent]) -> list[Outcome]:
    assert _worker_extractor is not None
    return _worker_extractor.extract_outcomes(articles)


# --------------------------------------------------------------------------- the pool


class ExtractorPool:
    """`extract(articles)` on `processes` cores. With one process the pipeline runs in this
    process on a thread (no copying of articles and events between processes; one call at a
    time then). With several, calls may overlap: each hand goes to whichever worker is free."""

    def __init__(self, spec: PipelineSpec, processes: int | None = None) -> None:
        self.spec = spec
        self.processes = processes or default_processes()
        self.version = ""
        self.threshold = 0.0
        self._local: Extractor | None = None
        self._executor: Executor | None = None
        self._restarting = threading.Lock()
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (empty when extraction runs in this process)."""
        executor = self._executor
        if not isinstance(executor, ProcessPoolExecutor):
            return []
        return sorted(p.pid for p in (executor._processes or {}).values()
                      if p.pid is not None)

    def start(self, timeout: float = 300.0) -> ExtractorPool:
        """Load the pipeline in every worker (blocking; run it off the event loop)."""
        if self.processes == 1:
            self._local = self.spec.load()
            self.version, self.threshold = self._local.version, self._local.threshold
            return self
        self._executor = self._new_executor()
        # Probe until every worker has answered: each has then loaded its pipeline, so the
        # first real batch does not wait for model loading.
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < self.processes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {self.processes} extractor workers "
                                   f"loaded after {timeout}s")
            probes = [self._executor.submit(_worker_describe) for _ in range(self.processes)]
            for probe in probes:
                pid, self.version, self.threshold = probe.result(timeout=timeout)
                seen.add(pid)
        return self

    def _new_executor(self) -> ProcessPoolExecutor:
        # One BLAS thread per worker (inherited at spawn): the workers are the parallelism,
        # and OpenBLAS threads spinning beside them would fight them for the same cores.
        for variable in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")
        # spawn, not fork: the service's event loop, Kafka clients and threads stay out of
        # the workers.
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context(
            "spawn"), initializer=_start_worker, initargs=(self.spec,))

    def extract_sync(self, articles: Sequence[ArticleEvent]) -> list[Outcome]:
        """The outcomes of `articles` in input order (blocking)."""
        articles = list(articles)
        if self._local is not None:
            return self._local.extract_outcomes(articles)
        if self._executor is None:
            raise RuntimeError("ExtractorPool.start() first")
        executor = self._executor
        hands = deal(len(articles), self.processes)
        futures = [executor.submit(_worker_extract, [articles[i] for i in hand])
                   for hand in hands]
        try:
            results = [f.result() for f in futures]
        except BrokenProcessPool:
            self._restart(executor)
            raise
        return gather_dealt(hands, results, len(articles))

    async def extract(self, articles: Sequence[ArticleEvent]) -> list[Outcome]:
        """`extract_sync` off the event loop, so heartbeats and /health stay responsive."""
        if not articles:
            return []
        return await asyncio.to_thread(self.extract_sync, articles)

    def _restart(self, broken: Executor) -> None:
        """Replace the broken executor, once: batches in hand at the same time (the service
        runs one per process, on threads) all see it break."""
        with self._restarting:
            if self._executor is not broken:
                return
            log.error("an extractor worker process died; starting a new pool of %d",
                      self.processes)
            self.restarts += 1
            self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._local = None

    def __enter__(self) -> ExtractorPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
