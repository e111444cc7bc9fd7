"""How the serving process uses Python's cyclic garbage collector.

A full (generation 2) collection walks every tracked object and stops the
event loop while it does. A service holding 10,000 socket.io connections
has about a million of them: one full collection then stalls every chat
line and every call for up to a second (bench/RESULTS.md, issue 4). Objects
that live as long as a connection do not need looking at again and again.

So, in the serving process only:

* after start-up, everything loaded so far is frozen (``gc.freeze()``: moved
  to the permanent generation the collector never walks) and the young
  generation's threshold is raised;
* every ``refreeze_seconds`` the young generations are collected (cheap:
  they are small) and whatever survived is frozen too, so a full collection
  only ever walks what arrived since the last freeze;
* once a day at ``full_hour`` Beijing time (03:00: nobody works, few
  sockets are open) everything is unfrozen and collected in full, then
  frozen again. Cyclic garbage that was frozen (an object that was still
  alive at a freeze and later became part of an unreachable cycle) is
  reclaimed then: memory such garbage holds is bounded by one day's churn;
* a pause longer than ``warn_ms`` is logged as a warning, so an operator sees
  the collector when it matters.

Objects that die by reference counting (most of them, frozen or not) are
freed at once as always; freezing only hides them from the cycle finder.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
GC_YOUNG_THRESHOLD = 10_000


@dataclass
class Collector:
    """The collector's process-wide switches (tests pass their own)."""

    collect: Callable[[int], int] = gc.collect
    freeze: Callable[[], None] = gc.freeze
    unfreeze: Callable[[], None] = gc.unfreeze
    set_threshold: Callable[..., None] = gc.set_threshold
    callbacks: list[Any] = field(default_factory=lambda: gc.callbacks)


class GcPolicy:
    def __init__(
        self,
        *,
        collector: Collector | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(BEIJING),
        clock: Callable[[], float] = time.perf_counter,
        refreeze_seconds: float = 60.0,
        full_hour: int = 3,
        warn_ms: float = 100.0,
    ) -> None:
        self._gc = collector or Collector()
        self._now = now
        self._clock = clock
        self.refreeze_seconds = refreeze_seconds
        self.full_hour = full_hour
        self.warn_ms = warn_ms
        self._started_at = 0.0
        self._last_full: date | None = None
        self._task: asyncio.Task[None] | None = None
        #: Pauses over ``warn_ms`` seen so far (for the logs and the tests).
        self.long_pauses = 0

    # -- the pause watch -----------------------------------------------------------

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_at = self._clock()
            return
        ms = (self._clock() - self._started_at) * 1000
        if ms >= self.warn_ms:
            self.long_pauses += 1
            logger.warning(
                "garbage collection paused the service %.0f ms (generation %s, %s collected)",
                ms,
                info.get("generation"),
                info.get("collected"),
            )

    # -- the steps -----------------------------------------------------------------

    def after_startup(self) -> None:
        """Freeze what start-up loaded; raise the young threshold. A young
        generation of 10,000 instead of 700 net allocations: most objects
        of a call or request are freed by reference counting before a
        collection would look at them (FastAGI bench at 1,000 calls/s: the
        collector's time went from 0.48 s to 0.06 s per 10 s)."""
        self._gc.collect(2)
        self._gc.freeze()
        self._gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        if self.on_gc not in self._gc.callbacks:
            self._gc.callbacks.append(self.on_gc)
        self._last_full = self._now().astimezone(BEIJING).date()

    def tick(self) -> str:
        """One periodic step: ``"full"`` once a Beijing day from ``full_hour``
        on, else ``"refreeze"``."""
        local = self._now().astimezone(BEIJING)
        if local.hour >= self.full_hour and self._last_full != local.date():
            self._last_full = local.date()
            self._gc.unfreeze()
            self._gc.collect(2)
            self._gc.freeze()
            return "full"
        # Young garbage first, so that little of it is frozen.
        self._gc.collect(1)
        self._gc.freeze()
        return "refreeze"

    # -- running -------------------------------------------------------------------

    def start(self) -> None:
        if self.refreeze_seconds <= 0:
            return  # the start-up freeze only
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gc-policy")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.on_gc in self._gc.callbacks:
            self._gc.callbacks.remove(self.on_gc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refreeze_seconds)
            try:
                self.tick()
            except Exception:  # never let housekeeping take the service down
                logger.exception("garbage collector housekeeping failed")


def install(app: Any, policy: GcPolicy | None = None) -> GcPolicy:
    """Wire the policy into an aiohttp application's start-up and clean-up."""
    chosen = policy or GcPolicy()

    async def on_startup(_app: Any) -> None:
        chosen.after_startup()
        chosen.start()

    async def on_cleanup(_app: Any) -> None:
        await chosen.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return chosen
