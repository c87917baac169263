"""What every service sets up at start: one log format (timestamp, service, level,
message), and the stop event its loops watch."""

from __future__ import annotations

import asyncio
import logging
import signal

from shared.settings import LogSettings, load


def level() -> str:
    return load(LogSettings).log_level.upper()


def setup(service: str) -> None:
    logging.basicConfig(
        level=level(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiokafka is chatty at INFO during group joins; keep its warnings.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level())))


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM (call inside the running loop): the service's loops
    end and it shuts down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
