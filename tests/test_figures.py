"""The figures' definitions (docs/figures.md) on a hand-checked set of calls,
and the same figures read back from call records in PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import make_engine, make_sessionmaker
from smeline.migrate import upgrade
from smeline.stats.figures import (
    CallFacts,
    FigureRules,
    agent_figures,
    contacts_by,
    contacts_by_hour,
    total,
    window_figures,
)
from smeline.stats.services import FiguresService, day_bounds
from smeline.telephony.models import CallRecord
from smeline.ticketing.calendar import BUSINESS_TZ

RULES = FigureRules(service_level_seconds=20, short_abandon_seconds=5)
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Meizhou


def call(outcome: str, windows: tuple[str, ...], **kw: object) -> CallFacts:
    return CallFacts(started_at=kw.pop("at", T0), outcome=outcome, windows=windows, **kw)  # type: ignore[arg-type]


CALLS = [
    # A: answered in its own window within the service level
    call("answered", ("meijiang",), answered_window="meijiang", wait_seconds=10,
         handle_seconds=100, talk_seconds=90, agent_user_id=1, county_code="441402",
         category_code="finance"),
    # B: county queue timed out, the city answered; the wait covers both queues
    call("answered", ("meijiang", "city"), answered_window="city", wait_seconds=70,
         handle_seconds=200, talk_seconds=180, agent_user_id=2, county_code="441402",
         category_code="finance", joint=True),
    # C: hung up after 3 s: a short abandon, in no rate
    call("abandoned", ("meijiang",), wait_seconds=3, county_code="441402"),
    # D: overflowed and abandoned in the city queue: the city's
    call("abandoned", ("meijiang", "city"), wait_seconds=90, county_code="441402"),
    # E: pressed 9 for a callback
    call("callback", ("xingning",), wait_seconds=30, county_code="441481"),
    # F: hung up in the IVR: never queued, counts nowhere
    call("unqueued", (), queued=False),
    # G: answered at exactly the service-level bound; no handle time: talk time
    call("answered", ("meijiang",), answered_window="meijiang", wait_seconds=20,
         talk_seconds=60, agent_user_id=1, county_code="441402", category_code="policy",
         at=T0 + timedelta(hours=3)),
    # H: still in progress: counted when it ends
    call("in_progress", ("wuhua",), county_code="441424"),
]  # fmt: skip


def test_each_call_counts_for_one_window_as_defined() -> None:
    figures = window_figures(CALLS, RULES, windows=("meijiang", "city", "xingning", "dabu"))
    mj, city, xn, dabu = (figures[w] for w in ("meijiang", "city", "xingning", "dabu"))
    assert (mj.offered, mj.answered, mj.abandoned, mj.short_abandoned) == (2, 2, 0, 1)
    assert mj.answered_within_sl == 2 and mj.service_level == 1.0
    assert mj.asa_seconds == 15.0 and mj.aht_seconds == 80.0  # (100 + 60) / 2
    assert (city.offered, city.answered, city.abandoned, city.overflowed_in) == (2, 1, 1, 1)
    assert city.service_level == 0.0 and city.abandon_rate == 0.5 and city.joint == 1
    assert (xn.offered, xn.callbacks, xn.service_level) == (1, 1, 0.0)
    assert dabu.offered == 0 and dabu.service_level is None and dabu.asa_seconds is None
    assert "wuhua" in figures and figures["wuhua"].offered == 0  # in progress
    whole = total(figures)
    assert (whole.offered, whole.answered, whole.abandoned, whole.short_abandoned) == (5, 3, 1, 1)
    assert whole.service_level == pytest.approx(2 / 5)


def test_a_longer_short_abandon_threshold_moves_calls_out_of_the_rates() -> None:
    figures = window_figures(
        CALLS, FigureRules(service_level_seconds=20, short_abandon_seconds=100)
    )
    assert figures["city"].abandoned == 0 and figures["city"].short_abandoned == 1
    assert figures["city"].service_level == 0.0 and figures["city"].offered == 1


def test_agents_hourly_and_grouped_counts() -> None:
    agents = agent_figures(CALLS)
    assert set(agents) == {1, 2}
    assert agents[1].answered == 2 and agents[1].aht_seconds == 80.0
    assert agents[2].windows == {"city": 1}
    hours = contacts_by_hour(CALLS, BUSINESS_TZ)
    assert hours[10] == 6 and hours[13] == 1 and sum(hours.values()) == 7
    assert contacts_by(CALLS, "category_code") == {"finance": 2, "": 4, "policy": 1}
    with pytest.raises(ValueError):
        contacts_by(CALLS, "caller_number")


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_figures_read_from_call_records_equal_the_definitions(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    day = date(2026, 12, 2)
    start, end = day_bounds(day)
    assert start == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # Beijing midnight
    rows = []
    for i, c in enumerate(CALLS):
        rows.append(
            CallRecord(
                linkedid=f"1764640000.{i}",
                direction="inbound",
                started_at=c.started_at,
                queued_at=c.started_at if c.queued else None,
                outcome=c.outcome,
                windows=list(c.windows),
                queues=list(c.windows),
                answered_window=c.answered_window,
                wait_seconds=c.wait_seconds,
                talk_seconds=c.talk_seconds,
                handle_seconds=c.handle_seconds,
                agent_user_id=None,
                county_code=c.county_code,
                category_code=c.category_code,
                joint=c.joint,
            )
        )
    # outside the day, and outbound: not counted
    before = start - timedelta(seconds=1)
    rows.append(CallRecord(linkedid="x.1", direction="inbound", started_at=before,
                           queued_at=start, outcome="answered", windows=["city"],
                           queues=["city"], answered_window="city", wait_seconds=1))  # fmt: skip
    rows.append(CallRecord(linkedid="x.2", direction="outbound", started_at=T0, outcome="answered",
                           windows=[], queues=[], wait_seconds=0))  # fmt: skip
    rows.append(CallRecord(linkedid="x.3", direction="inbound", started_at=start, queued_at=start,
                           outcome="answered", windows=["dabu"], queues=["dabu"],
                           answered_window="dabu", wait_seconds=2))  # fmt: skip
    async with sessionmaker() as db, db.begin():
        db.add_all(rows)
    service = FiguresService(sessionmaker=sessionmaker, rules=RULES)
    read = await service.day(day, windows=("meijiang", "city", "xingning"))
    # (agents are left out of the rows: window figures do not read them)
    expected = window_figures(CALLS, RULES, ("meijiang", "city", "xingning"))
    expected["dabu"] = window_figures([call("answered", ("dabu",), answered_window="dabu",
                                            wait_seconds=2)], RULES)["dabu"]  # fmt: skip
    assert read.windows == expected
    assert len(read.calls) == len(CALLS) + 1
