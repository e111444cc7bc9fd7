"""Missed calls per agent today: calls offered to an agent's phone that rang
out (``AgentRingNoAnswer``).

Call records keep only who answered, and telephony publishes no bus event for
a ring with no answer, so this counter listens to the AMI stream itself. It
lives in memory: it restarts from zero when the process restarts, and at
Beijing midnight. Every process with an AMI connection hears every event, so
each counts the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, datetime

from smeline.realtime.bridge import user_of_interface
from smeline.telephony.ami_protocol import AmiMessage
from smeline.ticketing.calendar import BUSINESS_TZ

RING_NO_ANSWER = "AgentRingNoAnswer"


class MissedCalls:
    def __init__(self, *, now: Callable[[], datetime]) -> None:
        self._now = now
        self._day: date | None = None
        self._counts: Counter[int] = Counter()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called after every counted miss (the wallboard is stale)."""
        self._listeners.append(callback)

    def _roll(self) -> None:
        today = self._now().astimezone(BUSINESS_TZ).date()
        if today != self._day:
            self._day = today
            self._counts.clear()

    def on_ami_event(self, message: AmiMessage) -> None:
        if message.event != RING_NO_ANSWER:
            return
        user_id = user_of_interface(message.get("Interface"))
        if user_id is None:
            return  # not an agent phone smeline renders
        self.record(user_id)

    def record(self, user_id: int) -> None:
        self._roll()
        self._counts[user_id] += 1
        for callback in self._listeners:
            callback()

    def today(self, user_id: int) -> int:
        self._roll()
        return self._counts.get(user_id, 0)
