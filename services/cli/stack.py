"""Run the whole stack as child processes: embedded broker (optional) and the three services.

Used by `radar up` and by the integration tests, so what users run is what is tested. Every
child is started with PR_SET_PDEATHSIG, so it dies with its parent even on SIGKILL: no
orphans.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.broker import EmbeddedBroker, die_with_parent, free_port, terminate
from shared.journal import Journal, JournalWriter, Restored, restore
from shared.waiting import wait_until_blocking

SERVICES = ("ingestor", "extractor", "aggregator")


def configured_ports() -> dict[str, int]:
    """Service ports from RADAR_<SERVICE>_PORT (defaults 8001, 8002, 6066)."""
    from shared.settings import AggregatorSettings, ExtractorSettings, IngestorSettings, load

    return {"ingestor": load(IngestorSettings).port, "extractor": load(ExtractorSettings).port,
            "aggregator": load(AggregatorSettings).port}


def consumer_groups(env: dict[str, str]) -> list[str]:
    """The consumer groups of the services started with `env` (the journal keeps their
    offsets)."""
    from shared.settings import AggregatorSettings, ExtractorSettings, IngestorSettings

    def setting(cls: type, name: str, var: str) -> str:
        return env.get(var) or cls.model_fields[name].default

    return [setting(ExtractorSettings, "group_id", "RADAR_EXTRACTOR_GROUP_ID"),
            setting(AggregatorSettings, "app_id", "RADAR_AGGREGATOR_APP_ID"),
            setting(IngestorSettings, "group_id", "RADAR_INGESTOR_GROUP_ID")]


@dataclass
class ServiceProcess:
    name: str
    port: int
    host: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    #: The service module run (`python -m services.<kind>`): "extractor" for every
    #: extractor process, whatever its name ("extractor-2", ...).
    kind: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or self.name

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def urls(self) -> dict[str, str]:
        urls = {"metrics": f"{self.base_url}/metrics", "health": f"{self.base_url}/health"}
        if self.kind == "ingestor":
            urls = {"api": f"{self.base_url}/articles (POST)"} | urls
        if self.kind == "aggregator":
            urls = {"page": f"{self.base_url}/", "api": f"{self.base_url}/alliances"} | urls
        return urls

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child)
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.kind}"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.process, timeout)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """The broker (unless bootstrap servers are given) plus one process per service."""

    run_dir: Path
    bootstrap_servers: str | None = None
    broker_port: int = 9092
    ports: dict[str, int] = field(default_factory=configured_ports)
    host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    #: Keep the embedded broker's topics and group offsets here across runs (None: memory
    #: only). Restored before the services start, followed while they run.
    journal_dir: Path | None = None
    restored: Restored | None = None
    journal: JournalWriter | None = None
    #: Extractor processes in the one consumer group (`radar up --extractors N`): the first
    #: is "extractor" on the extractor port, the others "extractor-2", ... on free ports.
    #: With more than one, each extracts in its own process unless
    #: RADAR_EXTRACTOR_PROCESSES says otherwise.
    extractors: int = 1

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        assert self.broker is not None
        return self.broker.bootstrap_servers

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env |= {
            "RADAR_BOOTSTRAP_SERVERS": self.bootstrap,
            "RADAR_INGESTOR_HOST": self.host, "RADAR_INGESTOR_PORT": str(self.ports["ingestor"]),
            "RADAR_EXTRACTOR_HOST": self.host,
            "RADAR_EXTRACTOR_PORT": str(self.ports["extractor"]),
            "RADAR_AGGREGATOR_HOST": self.host,
            "RADAR_AGGREGATOR_PORT": str(self.ports["aggregator"]),
            "RADAR_AGGREGATOR_DATA_DIR": str(self.run_dir / "aggregator"),
            "PYTHONUNBUFFERED": "1",
        }
        if not self.bootstrap_servers:
            env["RADAR_PROFILE"] = "embedded"
        return env | self.extra_env

    def start_broker(self) -> None:
        if self.bootstrap_servers is None and self.broker is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # A new embedded broker has new changelogs (empty, or the journal's, which may
            # end before what the aggregator had stored): tables kept on disk by an earlier
            # broker would be ahead of them or stale, so the aggregator restores from the
            # changelogs into an empty data directory.
            shutil.rmtree(self.run_dir / "aggregator", ignore_errors=True)
            self.broker = EmbeddedBroker(port=self.broker_port, host=self.host,
                                         log_path=self.run_dir / "broker.log").start()
            if self.journal_dir is not None:
                journal = Journal(self.journal_dir)
                if not journal.empty():
                    self.restored = asyncio.run(restore(journal, self.bootstrap))
                self.journal = JournalWriter(journal, self.bootstrap,
                                             groups=consumer_groups(self.env())).start()

    def plan(self, names: tuple[str, ...] = SERVICES) -> list[ServiceProcess]:
        """The service processes `start` runs: one per service, `extractors` extractors."""
        env = self.env()
        planned = []
        for kind in names:
            copies = self.extractors if kind == "extractor" else 1
            for i in range(copies):
                name = kind if i == 0 else f"{kind}-{i + 1}"
                port = self.ports.get(name) or free_port(self.host)
                own = dict(env)
                if copies > 1:
                    own[f"RADAR_{kind.upper()}_PORT"] = str(port)
                    own.setdefault("RADAR_EXTRACTOR_PROCESSES", "1")
                planned.append(ServiceProcess(name, port, self.host,
                                              self.run_dir / "logs" / f"{name}.log", own,
                                              kind=kind))
        return planned

    def start(self, names: tuple[str, ...] = SERVICES) -> None:
        self.start_broker()
        for svc in self.plan(names):
            svc.start()
            self.services[svc.name] = svc

    def wait_healthy(self, timeout: float = 90.0, names: tuple[str, ...] | None = None) -> None:
        pending = set(names or self.services)

        def all_healthy() -> bool:
            for name in sorted(pending):
                svc = self.services[name]
                if not svc.alive():
                    raise RuntimeError(f"{name} exited with code {svc.process.returncode}:\n"
                                       f"{svc.tail()}")
                if svc.healthy():
                    pending.discard(name)
            return not pending

        def not_healthy(_: object) -> str:
            tails = "\n".join(f"--- {n}\n{self.services[n].tail()}" for n in sorted(pending))
            return f"not healthy after {timeout}s: {sorted(pending)}\n{tails}"

        wait_until_blocking(all_healthy, timeout=timeout, interval=0.2, message=not_healthy)

    def stop(self, report: Callable[[str], None] | None = None) -> None:
        """Services first (newest first), then the journal's last read, then the broker;
        `report` hears how long each step took (a slow stop says where it hung)."""
        def step(what: str, started: float) -> None:
            if report is not None:
                report(f"  stopped {what} in {time.monotonic() - started:.1f}s")

        for svc in reversed(list(self.services.values())):
            started = time.monotonic()
            was_alive = svc.alive()
            svc.stop()
            if was_alive:
                step(svc.name, started)
        if self.journal is not None:  # the services are gone: journal up to the end
            started = time.monotonic()
            self.journal.stop()
            step(f"the journal ({self.journal.records} records kept this run)", started)
            self.journal = None
        if self.broker is not None:
            started = time.monotonic()
            self.broker.stop()
            self.broker = None
            step("the broker", started)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
