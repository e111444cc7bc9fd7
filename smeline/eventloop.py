"""The event loop the service runs on.

uvloop (libuv) does the socket work of the FastAGI server, AMI and HTTP
with less CPU than asyncio's own loop: per FastAGI decision about 15 %
less (bench/RESULTS.md). It is a dependency on Linux; ``auto`` falls back to
asyncio's loop where it cannot be imported. Tests run on asyncio's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

LoopKind = Literal["auto", "uvloop", "asyncio"]


def new_event_loop(kind: LoopKind) -> tuple[asyncio.AbstractEventLoop, str]:
    """A new loop of ``kind`` and the name of what it is (for the start-up line)."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise RuntimeError(
                    "SMELINE_EVENT_LOOP=uvloop but uvloop is not installed"
                ) from None
            logger.info("uvloop is not installed; using asyncio's event loop")
        else:
            return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def run_on(kind: LoopKind, main: Coroutine[Any, Any, T]) -> tuple[T, str]:
    """``asyncio.run(main)`` on a loop of ``kind``; the result and the loop's name."""
    loop, name = new_event_loop(kind)
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        return runner.run(main), name
