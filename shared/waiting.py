"""Waiting for a condition, written once: a deadline, a poll interval, and a message that
says what was awaited and what was last seen when it never came.

Production code waits for readiness in many places (the broker answering, a topic having
partitions, a consumer group catching up, a service's /health); each passes its check here
instead of writing its own loop. `wait_until` is for coroutines, `wait_until_blocking` for
plain code (the `radar` commands that drive child processes).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
#: What to say when time runs out: a text, or a function of the last result (or the last
#: exception a retried check raised; None before the first check).
Message = str | Callable[[Any], str]


@dataclass
class _Deadline:
    timeout: float
    message: Message
    at: float = field(init=False)
    last: Any = None

    def __post_init__(self) -> None:
        self.at = time.monotonic() + self.timeout

    def done(self, result: Any, error: BaseException | None) -> bool:
        """Whether `result` ends the wait; TimeoutError when it does not and time is up."""
        self.last = error if error is not None else result
        if result:
            return True
        if time.monotonic() >= self.at:
            text = self.message(self.last) if callable(self.message) else \
                f"{self.message} not met after {self.timeout:g}s (last: {self.last!r})"
            raise TimeoutError(text)
        return False


async def wait_until(check: Callable[[], Awaitable[T] | T], *, timeout: float,
                     interval: float, message: Message,
                     retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """Call `check` (a function or a coroutine function) every `interval` seconds until it
    returns something truthy, and return that; TimeoutError with `message` after `timeout`
    seconds. An exception of a `retry_on` type counts as "not yet"; any other propagates."""
    deadline = _Deadline(timeout, message)
    while True:
        result, error = None, None
        try:
            outcome = check()
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except retry_on as exc:
            error = exc
        if deadline.done(result, error):
            return result  # type: ignore[return-value]
        await asyncio.sleep(interval)


def wait_until_blocking(check: Callable[[], T], *, timeout: float, interval: float,
                        message: Message,
                        retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """`wait_until` for code outside an event loop: sleeps between checks."""
    deadline = _Deadline(timeout, message)
    while True:
        result, error = None, None
        try:
            result = check()
        except retry_on as exc:
            error = exc
        if deadline.done(result, error):
            return result  # type: ignore[return-value]
        time.sleep(interval)
