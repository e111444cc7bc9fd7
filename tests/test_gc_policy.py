"""The serving process's garbage-collector policy (smeline/gc_policy.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from smeline.gc_policy import BEIJING, GC_YOUNG_THRESHOLD, Collector, GcPolicy
from tests.polling import until


class FakeGc:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.callbacks: list[Any] = []

    def collector(self) -> Collector:
        return Collector(
            collect=lambda gen: self.calls.append(("collect", gen)) or 0,
            freeze=lambda: self.calls.append("freeze"),
            unfreeze=lambda: self.calls.append("unfreeze"),
            set_threshold=lambda *t: self.calls.append(("threshold", t)),
            callbacks=self.callbacks,
        )


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_start_up_freezes_everything_and_raises_the_young_threshold() -> None:
    fake = FakeGc()
    policy = GcPolicy(
        collector=fake.collector(), now=Clock(datetime(2026, 12, 2, 10, tzinfo=BEIJING))
    )
    policy.after_startup()
    assert fake.calls == [("collect", 2), "freeze", ("threshold", (GC_YOUNG_THRESHOLD, 10, 10))]
    assert policy.on_gc in fake.callbacks
    policy.after_startup()
    assert fake.callbacks.count(policy.on_gc) == 1


def test_ticks_refreeze_young_survivors_and_collect_in_full_once_a_night() -> None:
    fake = FakeGc()
    clock = Clock(datetime(2026, 12, 2, 10, 0, tzinfo=BEIJING))
    policy = GcPolicy(collector=fake.collector(), now=clock, full_hour=3)
    policy.after_startup()  # started today: today's full collection is the start-up one
    fake.calls.clear()

    assert policy.tick() == "refreeze"
    assert fake.calls == [("collect", 1), "freeze"]

    seen = []
    clock.at = datetime(2026, 12, 3, 0, 30, tzinfo=BEIJING)  # after midnight, before 03:00
    seen.append(policy.tick())
    clock.at = datetime(2026, 12, 3, 3, 0, tzinfo=BEIJING)
    fake.calls.clear()
    seen.append(policy.tick())
    assert fake.calls == ["unfreeze", ("collect", 2), "freeze"]
    for minutes in (1, 60, 600):
        clock.at = datetime(2026, 12, 3, 3, 0, tzinfo=BEIJING) + timedelta(minutes=minutes)
        seen.append(policy.tick())
    assert seen == ["refreeze", "full", "refreeze", "refreeze", "refreeze"]


def test_the_night_is_beijing_s_whatever_the_clock_s_zone() -> None:
    fake = FakeGc()
    # 19:00 UTC on 2 December is 03:00 on 3 December in Beijing.
    clock = Clock(datetime.fromisoformat("2026-12-02T10:00:00+00:00"))  # 18:00 Beijing
    policy = GcPolicy(collector=fake.collector(), now=clock)
    policy.after_startup()
    clock.at = datetime.fromisoformat("2026-12-02T18:59:00+00:00")  # 02:59 Beijing, 3 Dec
    assert policy.tick() == "refreeze"
    clock.at = datetime.fromisoformat("2026-12-02T19:00:00+00:00")  # 03:00 Beijing
    assert policy.tick() == "full"


def test_a_long_pause_is_logged_and_a_short_one_is_not(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeGc()
    ticks = iter([10.0, 10.02, 20.0, 20.35])
    policy = GcPolicy(
        collector=fake.collector(),
        now=Clock(datetime(2026, 12, 2, 10, tzinfo=BEIJING)),
        clock=lambda: next(ticks),
        warn_ms=100,
    )
    with caplog.at_level(logging.WARNING, logger="smeline.gc_policy"):
        policy.on_gc("start", {"generation": 0})
        policy.on_gc("stop", {"generation": 0, "collected": 3})
        policy.on_gc("start", {"generation": 2})
        policy.on_gc("stop", {"generation": 2, "collected": 7})
    assert policy.long_pauses == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "350 ms" in messages[0] and "generation 2" in messages[0]


async def test_the_running_policy_ticks_and_stops_cleanly() -> None:
    fake = FakeGc()
    policy = GcPolicy(
        collector=fake.collector(),
        now=Clock(datetime(2026, 12, 2, 10, tzinfo=BEIJING)),
        refreeze_seconds=0.01,
    )
    policy.after_startup()
    policy.start()
    await until(lambda: fake.calls.count("freeze") >= 3, what="three refreezes")
    await policy.stop()
    assert policy.on_gc not in fake.callbacks


async def test_no_refreeze_keeps_only_the_start_up_freeze() -> None:
    fake = FakeGc()
    policy = GcPolicy(
        collector=fake.collector(),
        now=Clock(datetime(2026, 12, 2, 10, tzinfo=BEIJING)),
        refreeze_seconds=0,
    )
    policy.after_startup()
    policy.start()
    assert policy._task is None
    assert fake.calls.count("freeze") == 1
    await policy.stop()
