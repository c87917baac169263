"""The one readiness wait (shared/waiting.py): returns the first truthy answer, retries the
exceptions it is told to, fails with the message when time runs out."""

from __future__ import annotations

import asyncio

import pytest

from shared.waiting import wait_until, wait_until_blocking


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, [], "ready"])
    assert wait_until_blocking(lambda: next(answers), timeout=5, interval=0,
                               message="ready") == "ready"


def test_times_out_with_the_message_and_the_last_answer() -> None:
    with pytest.raises(TimeoutError, match=r"never not met after 0.05s \(last: 0\)"):
        wait_until_blocking(lambda: 0, timeout=0.05, interval=0.01, message="never")
    with pytest.raises(TimeoutError, match="gave up on 7"):
        wait_until_blocking(lambda: 7 - 7, timeout=0.05, interval=0.01,
                            message=lambda last: f"gave up on {last + 7}")


def test_a_coroutine_check_that_keeps_failing_is_retried_then_times_out() -> None:
    calls = []

    async def refused() -> bool:
        calls.append(1)
        raise ConnectionRefusedError("no broker")

    with pytest.raises(TimeoutError, match="no broker"):
        asyncio.run(wait_until(refused, timeout=0.2, interval=0.01, retry_on=(OSError,),
                               message=lambda last: f"nobody answered: {last}"))
    assert len(calls) > 1


def test_other_exceptions_propagate() -> None:
    async def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        asyncio.run(wait_until(broken, timeout=1, interval=0, retry_on=(OSError,),
                               message="x"))


def test_async_check_succeeds_after_retries() -> None:
    attempts = iter([OSError("down"), OSError("down"), "up"])

    async def check() -> str:
        answer = next(attempts)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert asyncio.run(wait_until(check, timeout=5, interval=0, retry_on=(OSError,),
                                  message="up")) == "up"
