"""Reading a whole list from the query API: list endpoints answer one page at a time
(`limit`, `next_cursor`), so a client that wants every row follows the cursor to the end.
The caller's `get(params)` makes the request and returns the decoded answer (its own error
handling: retries, messages)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

#: The largest page the API gives (fewest round trips).
PAGE_LIMIT = 1000
Answer = dict[str, Any]


def _params(params: dict[str, str] | None, cursor: str | None) -> dict[str, str]:
    return (params or {}) | {"limit": str(PAGE_LIMIT)} | ({"cursor": cursor} if cursor else {})


def every_row(get: Callable[[dict[str, str]], Answer], key: str = "alliances",
              params: dict[str, str] | None = None) -> list[Any]:
    rows: list[Any] = []
    cursor = None
    while True:
        answer = get(_params(params, cursor))
        rows += answer[key]
        cursor = answer.get("next_cursor")
        if not cursor:
            return rows


async def every_row_async(get: Callable[[dict[str, str]], Awaitable[Answer]],
                          key: str = "alliances", params: dict[str, str] | None = None
                          ) -> list[Any]:
    rows: list[Any] = []
    cursor = None
    while True:
        answer = await get(_params(params, cursor))
        rows += answer[key]
        cursor = answer.get("next_cursor")
        if not cursor:
            return rows
