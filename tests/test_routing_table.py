"""The routing table end to end over PostgreSQL: caller ID in, window out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import make_engine, make_sessionmaker
from smeline.portal_bridge.models import Enterprise, Member
from smeline.reference.services import ReferenceData, ReferenceService
from smeline.routing.decide import CountySource, RouteAction
from smeline.routing.models import CallerProfile
from smeline.routing.numbers import DEFAULT_PLAN
from smeline.routing.services import CallerLookup, RoutingService
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.models import CalendarOverride

MONDAY_10AM = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Meizhou
SUNDAY_10AM = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
MEIZHOU_MOBILE = "13923001234"  # 1392300 is a 梅州 segment in the phone database


class Ready:
    def __init__(self) -> None:
        self.by_window: dict[str, int | None] = {}

    def __call__(self, window: str) -> int | None:
        return self.by_window.get(window, 1)


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=["engine", "asyncpg"])
async def routing(
    request: pytest.FixtureRequest,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
) -> AsyncIterator[tuple[RoutingService, Ready]]:
    """Both ways of looking a caller up: through the engine (SQLite's way) and
    the FastAGI server's own asyncpg pool (PostgreSQL's)."""
    reference_service = ReferenceService(sessionmaker=sessionmaker)
    await reference_service.seed()
    reference: ReferenceData = await reference_service.load()
    calendars = CalendarService(
        sessionmaker=sessionmaker,
        default_hours=((time(8, 30), time(12)), (time(14, 30), time(17, 30))),
    )
    await calendars.load()
    ready = Ready()
    service = RoutingService(
        sessionmaker=sessionmaker,
        plan=DEFAULT_PLAN,
        reference=lambda: reference,
        calendars=calendars,
        agents_ready=ready,
        lookup=CallerLookup(database_url) if request.param == "asyncpg" else None,
    )
    await service.seed_example_prefixes()
    await service.load_prefixes()
    if service.lookup is not None:
        await service.lookup.start()
    try:
        yield service, ready
    finally:
        await service.drain()
        if service.lookup is not None:
            await service.lookup.close()


async def _window(
    service: RoutingService, caller_id: str | None, now: datetime = MONDAY_10AM
) -> str | None:
    identified = await service.identify(caller_id)
    return service.queue_for(identified.county, now).window


@pytest.mark.parametrize(
    ("caller_id", "window"),
    [
        ("075321234567", "meijiang"),
        ("075331234567", "meixian"),
        ("075341234567", "xingning"),
        ("075351234567", "pingyuan"),
        ("075361234567", "jiaoling"),
        ("075371234567", "dabu"),
        ("075381234567", "fengshun"),
        ("075391234567", "wuhua"),
        ("41234567", "xingning"),  # bare local 8-digit number, as trunks deliver it
        ("+86 753 9123 4567", "wuhua"),
        ("02088888888", "city"),  # Guangzhou
        ("anonymous", "city"),
        ("", "city"),
        (None, "city"),
        ("'; DROP TABLE members; --", "city"),
        ("sipp", "city"),
    ],
)
async def test_caller_id_reaches_the_expected_window(
    routing: tuple[RoutingService, Ready], caller_id: str | None, window: str
) -> None:
    service, _ = routing
    assert await _window(service, caller_id) == window


async def test_meizhou_mobile_without_profile_is_asked_and_the_choice_is_remembered(
    routing: tuple[RoutingService, Ready], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = routing
    identified = await service.identify("+86 139 2300 1234")
    assert identified.county.ask and identified.county.county is None
    decision = service.chosen(identified, "441424")  # pressed 8: 五华县
    assert service.queue_for(decision, MONDAY_10AM).window == "wuhua"
    await service.drain()
    again = await service.identify("013923001234")  # same person, another trunk format
    assert again.county.source is CountySource.PROFILE and again.county.county == "441424"
    # a choice made now always beats what was stored
    service.chosen(again, "441402")
    await service.drain()
    async with sessionmaker() as db:
        profile = await db.scalar(
            select(CallerProfile).where(CallerProfile.phone_key == MEIZHOU_MOBILE)
        )
    assert profile is not None and profile.county_code == "441402" and profile.calls == 2


async def test_registered_member_phone_is_routed_to_its_county(
    routing: tuple[RoutingService, Ready], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    service, _ = routing
    async with sessionmaker() as db, db.begin():
        enterprise = Enterprise(
            name="梅州市某某科技有限公司", county_code="441426", phone_key="13800138000"
        )
        db.add(enterprise)
        db.add(Member(name="张三", phone_key=MEIZHOU_MOBILE, county_code="441427"))
    assert await _window(service, "13800138000") == "pingyuan"  # out-of-town mobile, registered
    assert await _window(service, MEIZHOU_MOBILE) == "jiaoling"


async def test_closed_county_window_overflows_to_the_city_with_an_announcement(
    routing: tuple[RoutingService, Ready],
) -> None:
    service, ready = routing
    ready.by_window["xingning"] = 0  # nobody logged in
    identified = await service.identify("075341234567")
    decision = service.queue_for(identified.county, MONDAY_10AM)
    assert decision.window == "city" and decision.announce_overflow


async def test_everything_closed_on_sunday_means_after_hours(
    routing: tuple[RoutingService, Ready],
) -> None:
    service, _ = routing
    identified = await service.identify("075341234567")
    decision = service.queue_for(identified.county, SUNDAY_10AM)
    assert decision.action is RouteAction.AFTER_HOURS


async def test_opening_time_is_exact_to_the_second_and_a_new_holiday_applies_at_once(
    routing: tuple[RoutingService, Ready], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Whether a window is open is computed once a minute per window (a cache):
    # the minute boundary and a calendar reload must still be exact.
    service, _ = routing
    county = (await service.identify("075341234567")).county
    opening = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # Monday 08:30 in Meizhou
    before = service.queue_for(county, opening - timedelta(seconds=1))
    assert before.action is RouteAction.AFTER_HOURS
    assert service.queue_for(county, opening).window == "xingning"
    assert service.queue_for(county, opening + timedelta(seconds=59)).window == "xingning"
    async with sessionmaker() as db, db.begin():
        db.add(CalendarOverride(day=date(2026, 12, 7), is_workday=False, note="临时休息"))
    await service.calendars.load()
    later = service.queue_for(county, opening + timedelta(seconds=59))
    assert later.action is RouteAction.AFTER_HOURS


async def test_the_asyncpg_lookup_refuses_sqlite_and_use_before_start(database_url: str) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        CallerLookup("sqlite+aiosqlite:///x.db")
    lookup = CallerLookup(database_url)
    with pytest.raises(RuntimeError, match="not started"):
        await lookup.fetch("13800138000")


def _plain_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def test_the_lookup_reuses_few_connections_and_drops_one_whose_query_was_cut(
    database_url: str,
) -> None:
    lookup = CallerLookup(database_url, size=2)
    await lookup.start()
    try:
        rows = await asyncio.gather(*(lookup.fetch(f"1380013{i:04d}") for i in range(20)))
        assert rows == [(None, None, None)] * 20
        assert lookup.opened <= 2 and lookup.dropped == 0
        # A query still waiting when the think deadline cancels it: its
        # connection may be out of step, so it is dropped, never reused.
        locker = await asyncpg.connect(_plain_dsn(database_url))
        try:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE caller_profiles IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await lookup.fetch("13800138000")
            await tx.rollback()
        finally:
            await locker.close()
        assert lookup.dropped == 1
        assert await lookup.fetch("13800138000") == (None, None, None)
        # The database restarted under it (backends killed): one call fails
        # (the dialplan's fallback), the next ones connect anew.
        killer = await asyncpg.connect(_plain_dsn(database_url))
        try:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name = ''"
            )
        finally:
            await killer.close()
        failures = 0
        for _ in range(3):
            try:
                assert await lookup.fetch("13800138000") == (None, None, None)
            except Exception:  # asyncpg reports a killed backend in several ways
                failures += 1
        assert failures <= 2 and lookup.dropped >= 1 + failures
        assert await lookup.fetch("13800138000") == (None, None, None)
    finally:
        await lookup.close()
