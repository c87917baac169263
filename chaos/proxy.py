"""A TCP proxy between the services and the broker that can cut and delay connections.

The broker advertises the proxy's address, so every Kafka connection of every service goes
through it (bootstrap and the leader connections that metadata points to). Faults:

- `cut()`: reset every open connection at once (a broker restart or a network blip as the
  clients see it: requests in flight lose their answers and are retried);
- `delay(seconds, for_s)`: hold every chunk of bytes, both ways, for `seconds` before
  forwarding it, for `for_s` seconds (a slow or congested network; order is kept);
- `refuse(for_s)`: refuse new connections and reset open ones for `for_s` seconds (the broker
  is unreachable).

Runs in its own thread with its own event loop, so a harness doing blocking work (HTTP
calls, process waits) never stalls the traffic it proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    reset_connections: int = 0
    refused: int = 0
    delayed_chunks: int = 0


@dataclass
class _Faults:
    delay_s: float = 0.0
    delay_until: float = 0.0
    refuse_until: float = 0.0

    def delay(self) -> float:
        return self.delay_s if time.monotonic() < self.delay_until else 0.0

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until


@dataclass
class FaultyProxy:
    """Listen on `listen_port` (127.0.0.1), forward to `target_port`."""

    target_port: int
    listen_port: int
    host: str = "127.0.0.1"
    stats: ProxyStats = field(default_factory=ProxyStats)

    def __post_init__(self) -> None:
        self._watches: dict[int, threading.Event] = {}
        self._faults = _Faults()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy",
                                        daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> FaultyProxy:
        self._thread.start()
        self._call(self._start_server())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._stop_server())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> int:
        """Reset every open connection; how many were cut."""
        self.stats.cuts += 1
        return self._call(self._reset_all())

    def delay(self, seconds: float, for_s: float) -> None:
        self._faults.delay_s = seconds
        self._faults.delay_until = time.monotonic() + for_s

    def refuse(self, for_s: float) -> int:
        self._faults.refuse_until = time.monotonic() + for_s
        return self.cut()

    def watch(self, api_key: int) -> threading.Event:
        """An event set when a client next sends a request of this Kafka API (e.g. 8,
        OffsetCommit): lets a test act at the exact moment a service commits."""
        self._watches[api_key] = event = threading.Event()
        return event

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ------------------------------------------------------------------ the proxy loop

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port,
                                                  reuse_address=True)

    async def _stop_server(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> int:
        conns, self._conns = list(self._conns), set()
        for client, upstream in conns:
            for writer in (client, upstream):
                _reset(writer)
        self.stats.reset_connections += len(conns)
        return len(conns)

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        if self._faults.refusing():
            self.stats.refused += 1
            _reset(client_writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            _reset(client_writer)
            return
        self.stats.connections += 1
        pair = (client_writer, up_writer)
        self._conns.add(pair)
        try:
            await asyncio.gather(self._pipe(client_reader, up_writer, _Requests()),
                                 self._pipe(up_reader, client_writer))
        finally:
            self._conns.discard(pair)
            for writer in pair:
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    requests: _Requests | None = None) -> None:
        try:
            while chunk := await reader.read(65536):
                if requests is not None and self._watches:
                    for api_key in requests.feed(chunk):
                        if api_key in self._watches:
                            self._watches.pop(api_key).set()
                delay = self._faults.delay()
                if delay:
                    self.stats.delayed_chunks += 1
                    await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class _Requests:
    """Finds the API key of each Kafka request in a client's byte stream (a request is a
    4-byte size, then the 2-byte API key, ...), across chunk boundaries."""

    def __init__(self) -> None:
        self.skip = 0
        self.head = b""

    def feed(self, chunk: bytes) -> list[int]:
        keys = []
        view = memoryview(chunk)
        while view:
            if self.skip:
                n = min(self.skip, len(view))
                self.skip -= n
                view = view[n:]
                continue
            take = min(6 - len(self.head), len(view))
            self.head += bytes(view[:take])
            view = view[take:]
            if len(self.head) == 6:
                size = int.from_bytes(self.head[:4], "big")
                keys.append(int.from_bytes(self.head[4:6], "big"))
                self.skip = max(0, size - 2)
                self.head = b""
        return keys


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
