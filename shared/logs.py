"""One log format for every service: timestamp, service, level, message."""

from __future__ import annotations

import logging

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
