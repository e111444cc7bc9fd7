"""Waiting for something in a test: poll a condition with a deadline, never a
fixed sleep. The short sleep between two looks is the poll interval only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_INTERVAL = 0.01


async def until(
    predicate: Callable[[], bool], within: float = 5.0, what: str = "condition"
) -> None:
    """Return as soon as ``predicate()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(POLL_INTERVAL)


async def until_async(
    check: Callable[[], Awaitable[bool]], within: float = 5.0, what: str = "condition"
) -> None:
    """:func:`until` for a condition that has to ask (a database, the API)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(POLL_INTERVAL)
