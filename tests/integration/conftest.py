"""One embedded broker and one running stack per test session (real TCP, no mocks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli.stack import Stack
from shared.broker import EmbeddedBroker, free_port

WEBHOOK_TEST_ENV = {"RADAR_WEBHOOKS_ALLOW_NETWORKS": "127.0.0.1/32",
                    "RADAR_WEBHOOKS_BACKOFF_BASE_S": "0.2", "RADAR_WEBHOOKS_BACKOFF_MAX_S": "1"}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(port=free_port(), log_path=log) as b:
        yield b


@pytest.fixture(scope="session")
def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("stack")
    s = Stack(run_dir=run_dir, bootstrap_servers=broker.bootstrap_servers,
              ports={n: free_port() for n in ("ingestor", "extractor", "aggregator")},
              extra_env={"RADAR_PROFILE": "embedded",
                         "RADAR_INGESTOR_FEEDS_FILE": str(run_dir / "feeds.toml"),
                         # test_webhooks.py: receivers on loopback, short retry waits
                         **WEBHOOK_TEST_ENV})
    with s:
        s.wait_healthy(timeout=120)
        yield s


@pytest.fixture(scope="session")
def cli_env(stack: Stack) -> dict[str, str]:
    """Environment for `radar` subprocesses pointed at the test stack."""
    return dict(os.environ) | {
        "RADAR_BOOTSTRAP_SERVERS": stack.bootstrap,
        "RADAR_PROFILE": "embedded",
        "RADAR_API_URL": stack.services["aggregator"].base_url,
    }


@pytest.fixture(scope="session")
def radar_bin() -> str:
    import shutil
    import sys

    found = shutil.which("radar", path=str(Path(sys.executable).parent))
    assert found, "the radar console script is not installed in this environment"
    return found
