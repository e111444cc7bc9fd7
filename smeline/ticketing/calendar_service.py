"""The business calendar as configured: official holidays plus administrator overrides."""

from __future__ import annotations

import logging
import time as time_module
from datetime import date, datetime, time

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.ticketing.calendar import BusinessCalendar, YearSource
from smeline.ticketing.models import CalendarOverride, CalendarYear

logger = logging.getLogger(__name__)

HoursKey = tuple[tuple[time, time], ...]


def parse_hours(hours: list[list[str]] | None, default: HoursKey) -> HoursKey:
    if not hours:
        return default
    return tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in hours)


class CalendarService:
    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], default_hours: HoursKey
    ) -> None:
        self._sessionmaker = sessionmaker
        self.default_hours = default_hours
        self._overrides: dict[date, bool] = {}
        self._years: set[int] = set()
        self._version: tuple[int, int, str] | None = None
        self._calendars: dict[HoursKey, BusinessCalendar] = {}
        self._checked_at = time_module.monotonic()
        #: Goes up at every (re)load: what was computed from an older
        #: calendar is stale (the routing's open-window cache checks it).
        self.generation = 0

    async def load(self) -> None:
        async with self._sessionmaker() as db:
            overrides = {o.day: o.is_workday for o in await db.scalars(select(CalendarOverride))}
            years = set(await db.scalars(select(CalendarYear.year)))
            version = await self._read_version(db)
        self._overrides, self._years, self._version = overrides, years, version
        # Calendars cache their days; a change of overrides needs fresh ones.
        self._calendars = {}
        self.generation += 1

    async def refresh_now_and_then(self, every_seconds: float = 30.0) -> None:
        """Picks up other processes' calendar changes at most ``every_seconds`` late.

        Called on the write paths that compute due times too, so a process that runs
        no scheduler does not keep computing with an old calendar.
        """
        now = time_module.monotonic()
        if now - self._checked_at < every_seconds:
            return
        self._checked_at = now
        await self.reload_if_changed()

    async def reload_if_changed(self) -> bool:
        """Cheap check of other processes' changes."""
        async with self._sessionmaker() as db:
            version = await self._read_version(db)
        if version == self._version:
            return False
        await self.load()
        return True

    @staticmethod
    async def _read_version(db: AsyncSession) -> tuple[int, int, str]:
        n_over, last_over = (
            await db.execute(
                select(func.count(), func.max(CalendarOverride.created_at)).select_from(
                    CalendarOverride
                )
            )
        ).one()
        n_years = await db.scalar(select(func.count()).select_from(CalendarYear))
        return int(n_over), int(n_years or 0), str(last_over)

    def calendar(self, hours: HoursKey | None = None) -> BusinessCalendar:
        key = hours or self.default_hours
        cal = self._calendars.get(key)
        if cal is None:
            cal = BusinessCalendar(
                hours=key, overrides=self._overrides, confirmed_years=self._years
            )
            self._calendars[key] = cal
        return cal

    def missing_year_warning(self, start: datetime, end: datetime | None) -> str | None:
        years = self.calendar().missing_years(start, end or start)
        if not years:
            return None
        listed = ", ".join(str(y) for y in years)
        return (
            f"No official holiday data for {listed}: weekends only until an administrator "
            "adds that year's holidays and confirms it"
        )

    def year_sources(self, years: range) -> dict[int, YearSource]:
        cal = self.calendar()
        return {y: cal.year_source(y) for y in years}

    def overrides(self) -> dict[date, bool]:
        return dict(self._overrides)

    async def set_override(
        self, day: date, is_workday: bool, note: str | None, actor_id: int, now: datetime
    ) -> None:
        async with self._sessionmaker() as db:
            await db.execute(delete(CalendarOverride).where(CalendarOverride.day == day))
            db.add(
                CalendarOverride(
                    day=day,
                    is_workday=is_workday,
                    note=note,
                    created_by_id=actor_id,
                    created_at=now,
                )
            )
            await db.commit()
        logger.info("calendar override %s workday=%s by user_id=%s", day, is_workday, actor_id)
        await self.load()

    async def delete_override(self, day: date) -> bool:
        async with self._sessionmaker() as db:
            result = await db.execute(delete(CalendarOverride).where(CalendarOverride.day == day))
            await db.commit()
        await self.load()
        return bool(getattr(result, "rowcount", 0))

    async def confirm_year(self, year: int, actor_id: int, now: datetime) -> None:
        async with self._sessionmaker() as db:
            if await db.get(CalendarYear, year) is None:
                db.add(CalendarYear(year=year, confirmed_by_id=actor_id, confirmed_at=now))
                await db.commit()
        await self.load()
