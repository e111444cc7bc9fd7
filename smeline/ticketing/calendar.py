"""Business calendar for work-order SLA deadlines.

Working days come from the ``chinesecalendar`` package (statutory holidays and
adjusted working weekends, 调休), can be overridden per day by an administrator,
and fall back to Monday–Friday for years the package has no data for.
Business hours default to 08:30–12:00 and 14:30–17:30 in Asia/Shanghai.

Everything is computed in the calendar's time zone, independently of the
process time zone; instants are returned as UTC-aware datetimes. Arithmetic
is done on ``timedelta`` values, so it is exact to the microsecond.

This module is pure: no I/O and no mutable module state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar

__all__ = [
    "BUSINESS_TZ",
    "DEFAULT_HOURS",
    "MAX_SEARCH_DAYS",
    "BusinessCalendar",
    "CalendarError",
    "YearSource",
]

DEFAULT_HOURS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(14, 30), time(17, 30)),
)
BUSINESS_TZ = ZoneInfo("Asia/Shanghai")

#: Give up when this many consecutive days contain no working time.
MAX_SEARCH_DAYS = 3660

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)

# Business intervals of one local day, as UTC-aware (start, end) pairs.
_Intervals = tuple[tuple[datetime, datetime], ...]


class YearSource(StrEnum):
    """Where the working-day data for a year comes from."""

    OFFICIAL = "official"
    ADMINISTRATOR = "administrator"
    MISSING = "missing"


class CalendarError(Exception):
    """The calendar cannot answer, e.g. no working time within MAX_SEARCH_DAYS days."""


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")


def _validate_hours(hours: Sequence[tuple[time, time]]) -> tuple[tuple[time, time], ...]:
    """Check that hours are non-empty, ordered and non-overlapping; merge touching ones."""
    result: list[tuple[time, time]] = []
    for start, end in hours:
        if not isinstance(start, time) or not isinstance(end, time):
            raise ValueError(f"business hours must be datetime.time values, got {start!r}-{end!r}")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("business hours must be naive local times (no tzinfo)")
        if not start < end:
            raise ValueError(f"business hours interval must have start < end, got {start}-{end}")
        if result:
            previous_start, previous_end = result[-1]
            if start < previous_end:
                raise ValueError(
                    f"business hours must be ordered and non-overlapping: "
                    f"{previous_start}-{previous_end} then {start}-{end}"
                )
            if start == previous_end:
                result[-1] = (previous_start, end)
                continue
        result.append((start, end))
    if not result:
        raise ValueError("business hours must not be empty")
    return tuple(result)


class BusinessCalendar:
    """Working days and business hours, with business-time arithmetic."""

    def __init__(
        self,
        hours: Sequence[tuple[time, time]] = DEFAULT_HOURS,
        overrides: Mapping[date, bool] | None = None,
        confirmed_years: Iterable[int] = (),
        tz: ZoneInfo = BUSINESS_TZ,
    ) -> None:
        self.hours: tuple[tuple[time, time], ...] = _validate_hours(hours)
        # Read-only view: the per-day interval cache relies on overrides never changing.
        self.overrides: Mapping[date, bool] = MappingProxyType(dict(overrides or {}))
        self.confirmed_years: frozenset[int] = frozenset(confirmed_years)
        self.tz: ZoneInfo = tz
        self._intervals_cache: dict[date, _Intervals] = {}
        self._official_years: dict[int, bool] = {}

    # ------------------------------------------------------------------ days

    def is_workday(self, day: date) -> bool:
        """Override first, then chinese_calendar, then Monday–Friday as a fallback."""
        override = self.overrides.get(day)
        if override is not None:
            return override
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def _has_official_data(self, year: int) -> bool:
        known = self._official_years.get(year)
        if known is None:
            try:
                chinese_calendar.is_workday(date(year, 1, 1))
            except NotImplementedError:
                known = False
            else:
                known = True
            self._official_years[year] = known
        return known

    def year_source(self, year: int) -> YearSource:
        """OFFICIAL if chinese_calendar covers the year, else ADMINISTRATOR if confirmed."""
        if self._has_official_data(year):
            return YearSource.OFFICIAL
        if year in self.confirmed_years:
            return YearSource.ADMINISTRATOR
        return YearSource.MISSING

    def missing_years(self, start: datetime, end: datetime) -> list[int]:
        """Years touched by [start, end] (in the calendar's time zone) with no data."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        first = start.astimezone(self.tz).year
        last = end.astimezone(self.tz).year
        if last < first:
            first, last = last, first
        return [
            year for year in range(first, last + 1) if self.year_source(year) is YearSource.MISSING
        ]

    # ------------------------------------------------------------- intervals

    def _utc_intervals(self, day: date) -> _Intervals:
        cached = self._intervals_cache.get(day)
        if cached is not None:
            return cached
        result: list[tuple[datetime, datetime]] = []
        if self.is_workday(day):
            tz = self.tz
            previous_end: datetime | None = None
            for start_time, end_time in self.hours:
                start = datetime.combine(day, start_time, tzinfo=tz).astimezone(UTC)
                end = datetime.combine(day, end_time, tzinfo=tz).astimezone(UTC)
                # Only matters around DST transitions: keep intervals disjoint and ordered.
                if previous_end is not None and start < previous_end:
                    start = previous_end
                if start < end:
                    result.append((start, end))
                    previous_end = end
        intervals = tuple(result)
        self._intervals_cache[day] = intervals
        return intervals

    def business_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """Business intervals [start, end) of a local day, aware in ``self.tz``."""
        tz = self.tz
        return [
            (start.astimezone(tz), end.astimezone(tz)) for start, end in self._utc_intervals(day)
        ]

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    # ------------------------------------------------------------ arithmetic

    def add_business_time(self, start: datetime, delta: timedelta) -> datetime:
        """The UTC instant at which ``delta`` of business time has elapsed since ``start``.

        A result falling exactly on the end of an interval (e.g. 12:00) is that end,
        not the next opening. ``delta <= 0`` returns ``start`` unchanged.
        """
        _require_aware(start, "start")
        if delta <= _ZERO:
            return start
        current = start.astimezone(UTC)
        remaining = delta
        day = self._local_date(current)
        idle_days = 0
        try:
            while True:
                used = False
                for interval_start, interval_end in self._utc_intervals(day):
                    if interval_end <= current:
                        continue
                    used = True
                    begin = interval_start if interval_start > current else current
                    available = interval_end - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
                if used:
                    idle_days = 0
                else:
                    idle_days += 1
                    if idle_days > MAX_SEARCH_DAYS:
                        raise CalendarError(
                            f"no working time found within {MAX_SEARCH_DAYS} days after {day}"
                        )
                day += _ONE_DAY
        except OverflowError as exc:
            raise CalendarError("business time arithmetic left the supported date range") from exc

    def add_business_minutes(self, start: datetime, minutes: int | float) -> datetime:
        """Shortcut for ``add_business_time(start, timedelta(minutes=minutes))``."""
        return self.add_business_time(start, timedelta(minutes=minutes))

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Business time in [a, b); negative of ``between(b, a)`` if ``b < a``."""
        _require_aware(a, "a")
        _require_aware(b, "b")
        lo = a.astimezone(UTC)
        hi = b.astimezone(UTC)
        if hi < lo:
            return -self.business_time_between(b, a)
        total = _ZERO
        if hi == lo:
            return total
        day = self._local_date(lo)
        last_day = self._local_date(hi)
        while day <= last_day:
            for interval_start, interval_end in self._utc_intervals(day):
                if interval_end <= lo:
                    continue
                if interval_start >= hi:
                    return total
                begin = interval_start if interval_start > lo else lo
                end = interval_end if interval_end < hi else hi
                total += end - begin
            if day == last_day:
                break
            day += _ONE_DAY
        return total

    def business_minutes_between(self, a: datetime, b: datetime) -> float:
        """``business_time_between`` in (possibly fractional) minutes."""
        return self.business_time_between(a, b) / timedelta(minutes=1)

    def next_business_moment(self, at: datetime) -> datetime:
        """``at`` (in UTC) if inside business hours, else the next opening."""
        _require_aware(at, "at")
        current = at.astimezone(UTC)
        day = self._local_date(current)
        try:
            for _ in range(MAX_SEARCH_DAYS + 1):
                for interval_start, interval_end in self._utc_intervals(day):
                    if interval_end > current:
                        return interval_start if interval_start > current else current
                day += _ONE_DAY
        except OverflowError as exc:
            raise CalendarError("no business moment before the end of the date range") from exc
        raise CalendarError(f"no working time found within {MAX_SEARCH_DAYS} days after {at}")

    def is_business_time(self, at: datetime) -> bool:
        """Whether ``at`` lies inside a business interval [start, end)."""
        _require_aware(at, "at")
        current = at.astimezone(UTC)
        return any(
            start <= current < end for start, end in self._utc_intervals(self._local_date(current))
        )
