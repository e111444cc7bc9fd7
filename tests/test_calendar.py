"""Tests for the business calendar used for work-order SLA deadlines."""

from __future__ import annotations

import time as time_module
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smeline.ticketing.calendar import (
    BUSINESS_TZ,
    DEFAULT_HOURS,
    MAX_SEARCH_DAYS,
    BusinessCalendar,
    CalendarError,
    YearSource,
)

BJ = BUSINESS_TZ


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An aware Beijing-time datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=BJ)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar()


# ---------------------------------------------------------------- basic hours


def test_default_hours_are_0830_to_1200_and_1430_to_1730() -> None:
    assert DEFAULT_HOURS == ((time(8, 30), time(12, 0)), (time(14, 30), time(17, 30)))


def test_business_intervals_of_a_working_day_are_aware_in_beijing_time(
    cal: BusinessCalendar,
) -> None:
    intervals = cal.business_intervals(date(2025, 6, 11))
    assert intervals == [
        (bj(2025, 6, 11, 8, 30), bj(2025, 6, 11, 12, 0)),
        (bj(2025, 6, 11, 14, 30), bj(2025, 6, 11, 17, 30)),
    ]
    assert all(start.tzinfo is BJ and end.tzinfo is BJ for start, end in intervals)


def test_business_intervals_of_a_day_off_are_empty(cal: BusinessCalendar) -> None:
    assert cal.business_intervals(date(2025, 6, 14)) == []  # Saturday
    assert cal.business_intervals(date(2025, 10, 1)) == []  # National Day


def test_business_intervals_returns_a_copy_that_does_not_corrupt_the_cache(
    cal: BusinessCalendar,
) -> None:
    cal.business_intervals(date(2025, 6, 11)).clear()
    assert len(cal.business_intervals(date(2025, 6, 11))) == 2


def test_lunch_break_1150_plus_20_minutes_is_1440(cal: BusinessCalendar) -> None:
    due = cal.add_business_minutes(bj(2025, 6, 11, 11, 50), 20)
    assert due == bj(2025, 6, 11, 14, 40)
    assert due.tzinfo is UTC


def test_deadline_exactly_at_noon_is_noon_not_the_afternoon_opening(
    cal: BusinessCalendar,
) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 11, 11, 30), 30) == bj(2025, 6, 11, 12, 0)


def test_deadline_exactly_at_closing_is_closing_not_next_morning(cal: BusinessCalendar) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 11, 17, 0), 30) == bj(2025, 6, 11, 17, 30)


def test_work_order_at_noon_starts_counting_at_1430(cal: BusinessCalendar) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 11, 12, 0), 1) == bj(2025, 6, 11, 14, 31)


def test_before_opening_counts_from_0830(cal: BusinessCalendar) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 11, 7, 0), 30) == bj(2025, 6, 11, 9, 0)


def test_after_closing_counts_from_next_morning(cal: BusinessCalendar) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 11, 18, 0), 30) == bj(2025, 6, 12, 9, 0)


def test_full_business_day_is_390_minutes(cal: BusinessCalendar) -> None:
    assert cal.business_minutes_between(bj(2025, 6, 11), bj(2025, 6, 12)) == 390.0
    assert cal.add_business_minutes(bj(2025, 6, 11, 8, 30), 390) == bj(2025, 6, 11, 17, 30)


def test_fractional_minutes_are_supported(cal: BusinessCalendar) -> None:
    due = cal.add_business_minutes(bj(2025, 6, 11, 11, 59), 1.5)
    assert due == bj(2025, 6, 11, 14, 30) + timedelta(seconds=30)


# -------------------------------------------------------- weekends, holidays


def test_friday_1700_plus_one_hour_is_due_monday_0900(cal: BusinessCalendar) -> None:
    # 2025-06-13 is an ordinary Friday, 06-14/15 an ordinary weekend.
    assert cal.add_business_minutes(bj(2025, 6, 13, 17, 0), 60) == bj(2025, 6, 16, 9, 0)


def test_weekend_days_are_not_workdays(cal: BusinessCalendar) -> None:
    assert cal.is_workday(date(2025, 6, 13))
    assert not cal.is_workday(date(2025, 6, 14))
    assert not cal.is_workday(date(2025, 6, 15))


def test_work_order_opened_on_a_saturday_starts_counting_monday(cal: BusinessCalendar) -> None:
    assert cal.add_business_minutes(bj(2025, 6, 14, 10, 0), 15) == bj(2025, 6, 16, 8, 45)


def test_labour_day_holiday_is_skipped(cal: BusinessCalendar) -> None:
    # 2025 Labour Day: 05-01 (Thu) .. 05-05 (Mon) off, back to work on Tue 05-06.
    assert chinese_calendar.is_workday(date(2025, 4, 30))
    assert not any(chinese_calendar.is_workday(date(2025, 5, d)) for d in range(1, 6))
    assert chinese_calendar.is_workday(date(2025, 5, 6))
    assert not cal.is_workday(date(2025, 5, 1))
    # 30 min on Wed 04-30 (17:00-17:30), then 30 min from Tue 05-06 08:30.
    assert cal.add_business_minutes(bj(2025, 4, 30, 17, 0), 60) == bj(2025, 5, 6, 9, 0)


def test_national_day_2025_and_its_adjusted_working_weekend_days() -> None:
    # Ground truth from chinese_calendar itself.
    for d in range(1, 9):
        assert not chinese_calendar.is_workday(date(2025, 10, d)), d
    assert date(2025, 9, 28).weekday() == 6  # Sunday...
    assert chinese_calendar.is_workday(date(2025, 9, 28))  # ...but a working day
    assert date(2025, 10, 11).weekday() == 5  # Saturday...
    assert chinese_calendar.is_workday(date(2025, 10, 11))  # ...but a working day
    assert not chinese_calendar.is_workday(date(2025, 9, 27))  # ordinary Saturday

    cal = BusinessCalendar()
    assert cal.is_workday(date(2025, 9, 28))
    assert cal.is_workday(date(2025, 10, 11))
    assert not cal.is_workday(date(2025, 10, 1))


def test_friday_1720_with_40_minutes_is_due_on_the_adjusted_working_sunday(
    cal: BusinessCalendar,
) -> None:
    # Fri 2025-09-26 17:20-17:30 uses 10 min; Sat 09-27 is off; Sun 09-28 is an
    # adjusted working day: the remaining 30 min run 08:30-09:00.
    due = cal.add_business_minutes(bj(2025, 9, 26, 17, 20), 40)
    assert due == bj(2025, 9, 28, 9, 0)
    assert due == datetime(2025, 9, 28, 1, 0, tzinfo=UTC)


def test_last_day_before_national_day_1720_with_three_business_days_is_due_on_working_saturday(
    cal: BusinessCalendar,
) -> None:
    # Three business days = 3 * 390 = 1170 minutes, starting Tue 2025-09-30 17:20:
    #   Tue 09-30 17:20-17:30          10 min  -> 1160 left
    #   Wed 10-01 .. Wed 10-08          holiday
    #   Thu 10-09 full day            390 min  ->  770 left
    #   Fri 10-10 full day            390 min  ->  380 left
    #   Sat 10-11 (adjusted workday)  08:30-12:00 = 210 min -> 170 left
    #                                 14:30 + 170 min = 17:20
    due = cal.add_business_minutes(bj(2025, 9, 30, 17, 20), 3 * 390)
    assert due == bj(2025, 10, 11, 17, 20)
    assert cal.business_minutes_between(bj(2025, 9, 30, 17, 20), due) == 1170.0


def test_friday_before_national_day_1720_with_three_business_days_is_due_before_the_holiday(
    cal: BusinessCalendar,
) -> None:
    # Fri 09-26 17:20-17:30 10 min (1160 left); Sat off; Sun 09-28 390 (770 left);
    # Mon 09-29 390 (380 left); Tue 09-30 210 in the morning (170 left), 14:30+170 = 17:20.
    due = cal.add_business_minutes(bj(2025, 9, 26, 17, 20), 1170)
    assert due == bj(2025, 9, 30, 17, 20)


def test_business_time_across_the_national_day_holiday_counts_only_working_days(
    cal: BusinessCalendar,
) -> None:
    # 09-30 17:00 -> 10-09 09:00: 30 min on 09-30 plus 30 min on 10-09.
    assert cal.business_minutes_between(bj(2025, 9, 30, 17, 0), bj(2025, 10, 9, 9, 0)) == 60.0


# ------------------------------------------------------ process time zone


def test_2350_and_0010_beijing_time_are_different_local_days_under_process_tz_utc(
    process_tz_utc: None,
) -> None:
    assert time_module.timezone == 0  # the process really runs in UTC now
    cal = BusinessCalendar()
    # Sat 2025-09-27 23:50 and Sun 2025-09-28 00:10 Beijing are both Saturday in UTC.
    late_saturday = datetime(2025, 9, 27, 15, 50, tzinfo=UTC)
    early_sunday = datetime(2025, 9, 27, 16, 10, tzinfo=UTC)
    assert late_saturday == bj(2025, 9, 27, 23, 50)
    assert early_sunday == bj(2025, 9, 28, 0, 10)

    # Both are outside business hours and the next opening is the working Sunday.
    assert not cal.is_business_time(late_saturday)
    assert not cal.is_business_time(early_sunday)
    assert cal.next_business_moment(late_saturday) == bj(2025, 9, 28, 8, 30)
    assert cal.next_business_moment(early_sunday) == bj(2025, 9, 28, 8, 30)
    assert cal.add_business_minutes(early_sunday, 30) == datetime(2025, 9, 28, 1, 0, tzinfo=UTC)
    assert cal.business_minutes_between(late_saturday, early_sunday) == 0.0
    assert cal.business_minutes_between(early_sunday, bj(2025, 9, 28, 9, 0)) == 30.0


def test_2350_thursday_beijing_counts_from_friday_morning_under_process_tz_utc(
    process_tz_utc: None,
) -> None:
    cal = BusinessCalendar()
    # Thu 2025-09-25 23:50 Beijing (15:50 UTC) -> Fri 09-26 08:30 + 10 min.
    start = datetime(2025, 9, 25, 15, 50, tzinfo=UTC)
    assert cal.add_business_minutes(start, 10) == bj(2025, 9, 26, 8, 40)
    # Fri 2025-09-26 01:00 UTC is 09:00 Beijing: business time, though 01:00 in UTC.
    assert cal.is_business_time(datetime(2025, 9, 26, 1, 0, tzinfo=UTC))
    # Fri 2025-09-26 10:00 UTC is 18:00 Beijing: closed, next opening is Sunday (调休).
    assert cal.next_business_moment(datetime(2025, 9, 26, 10, 0, tzinfo=UTC)) == bj(
        2025, 9, 28, 8, 30
    )


def test_start_in_another_time_zone_is_interpreted_as_the_same_instant(
    cal: BusinessCalendar,
) -> None:
    # 2025-06-10 20:00 in New York (EDT, UTC-4) is Wed 2025-06-11 08:00 Beijing.
    start = datetime(2025, 6, 10, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert cal.add_business_minutes(start, 45) == bj(2025, 6, 11, 9, 15)


# --------------------------------------------------------------- overrides


def test_override_turns_a_weekday_off_and_a_sunday_on() -> None:
    wednesday, sunday = date(2025, 6, 11), date(2025, 6, 15)
    cal = BusinessCalendar(overrides={wednesday: False, sunday: True})
    assert not cal.is_workday(wednesday)
    assert cal.is_workday(sunday)
    assert cal.business_intervals(wednesday) == []
    # Tue 17:00 + 60 min: 30 on Tue, Wed is off, 30 from Thu 08:30.
    assert cal.add_business_minutes(bj(2025, 6, 10, 17, 0), 60) == bj(2025, 6, 12, 9, 0)
    # Fri 17:00 + 60 min: 30 on Fri, Sat off, 30 from Sun 08:30.
    assert cal.add_business_minutes(bj(2025, 6, 13, 17, 0), 60) == bj(2025, 6, 15, 9, 0)


def test_overrides_beat_chinese_calendar() -> None:
    national_day, adjusted_sunday = date(2025, 10, 1), date(2025, 9, 28)
    assert not chinese_calendar.is_workday(national_day)
    assert chinese_calendar.is_workday(adjusted_sunday)
    cal = BusinessCalendar(overrides={national_day: True, adjusted_sunday: False})
    assert cal.is_workday(national_day)
    assert not cal.is_workday(adjusted_sunday)
    # Fri 09-26 17:20 + 40 min: 10 min Fri, Sun now off, Mon 09-29 08:30 + 30.
    assert cal.add_business_minutes(bj(2025, 9, 26, 17, 20), 40) == bj(2025, 9, 29, 9, 0)


def test_overrides_cannot_be_mutated_behind_the_cache() -> None:
    cal = BusinessCalendar(overrides={date(2025, 6, 11): False})
    with pytest.raises(TypeError):
        cal.overrides[date(2025, 6, 11)] = True  # type: ignore[index]


def test_calendar_does_not_keep_a_reference_to_the_callers_override_dict() -> None:
    overrides = {date(2025, 6, 11): False}
    cal = BusinessCalendar(overrides=overrides)
    overrides[date(2025, 6, 11)] = True
    assert not cal.is_workday(date(2025, 6, 11))


# --------------------------------------------------------- year coverage


def test_year_source_2025_is_official(cal: BusinessCalendar) -> None:
    assert cal.year_source(2025) is YearSource.OFFICIAL


def test_year_source_2027_is_missing_without_confirmation(cal: BusinessCalendar) -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))
    assert cal.year_source(2027) is YearSource.MISSING


def test_year_source_2027_is_administrator_once_confirmed() -> None:
    cal = BusinessCalendar(confirmed_years={2027})
    assert cal.year_source(2027) is YearSource.ADMINISTRATOR
    assert cal.year_source(2028) is YearSource.MISSING
    assert cal.year_source(2025) is YearSource.OFFICIAL


def test_confirming_an_official_year_keeps_it_official() -> None:
    assert BusinessCalendar(confirmed_years=[2025]).year_source(2025) is YearSource.OFFICIAL


def test_missing_years_across_new_year_2027(cal: BusinessCalendar) -> None:
    assert cal.missing_years(bj(2026, 12, 31), bj(2027, 1, 2)) == [2027]
    assert (
        BusinessCalendar(confirmed_years={2027}).missing_years(bj(2026, 12, 31), bj(2027, 1, 2))
        == []
    )


def test_missing_years_uses_local_time_not_utc(cal: BusinessCalendar) -> None:
    # 2026-12-31 16:30 UTC is already 2027-01-01 00:30 in Beijing.
    instant = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    assert cal.missing_years(instant, instant) == [2027]
    # 2026-12-31 15:30 UTC is still 2026 in Beijing.
    earlier = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
    assert cal.missing_years(earlier, earlier) == []


def test_missing_years_within_official_range_is_empty(cal: BusinessCalendar) -> None:
    assert cal.missing_years(bj(2020, 1, 1), bj(2026, 12, 31, 23, 59)) == []


def test_missing_year_falls_back_to_monday_to_friday(cal: BusinessCalendar) -> None:
    assert date(2027, 1, 1).weekday() == 4  # Friday: a working day by the fallback
    assert cal.is_workday(date(2027, 1, 1))
    assert not cal.is_workday(date(2027, 1, 2))  # Saturday
    assert not cal.is_workday(date(2027, 1, 3))  # Sunday
    assert cal.is_workday(date(2027, 1, 4))  # Monday


def test_administrator_overrides_define_a_confirmed_year() -> None:
    cal = BusinessCalendar(
        overrides={date(2027, 1, 1): False, date(2027, 1, 2): True},
        confirmed_years={2027},
    )
    assert not cal.is_workday(date(2027, 1, 1))
    assert cal.is_workday(date(2027, 1, 2))
    # Thu 2026-12-31 17:00 + 60 min: 30 min on Thu, Fri 01-01 off, Sat 01-02 08:30 + 30.
    assert cal.add_business_minutes(bj(2026, 12, 31, 17, 0), 60) == bj(2027, 1, 2, 9, 0)


# -------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "method",
    [
        lambda c, naive: c.add_business_time(naive, timedelta(minutes=5)),
        lambda c, naive: c.add_business_time(naive, timedelta(0)),
        lambda c, naive: c.add_business_minutes(naive, 5),
        lambda c, naive: c.business_time_between(naive, bj(2025, 6, 11)),
        lambda c, naive: c.business_time_between(bj(2025, 6, 11), naive),
        lambda c, naive: c.business_minutes_between(naive, naive),
        lambda c, naive: c.next_business_moment(naive),
        lambda c, naive: c.is_business_time(naive),
        lambda c, naive: c.missing_years(naive, bj(2025, 6, 11)),
    ],
)
def test_naive_datetime_is_rejected(
    cal: BusinessCalendar, method: Callable[[BusinessCalendar, datetime], object]
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        method(cal, datetime(2025, 6, 11, 9, 0))


@pytest.mark.parametrize(
    "hours",
    [
        pytest.param((), id="empty"),
        pytest.param(((time(9), time(9)),), id="start-equals-end"),
        pytest.param(((time(12), time(9)),), id="start-after-end"),
        pytest.param(((time(14), time(17)), (time(8), time(12))), id="unordered"),
        pytest.param(((time(8), time(12)), (time(11), time(17))), id="overlapping"),
        pytest.param(((time(8, tzinfo=UTC), time(12)),), id="aware-time"),
    ],
)
def test_invalid_hours_are_rejected(hours: tuple[tuple[time, time], ...]) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(hours=hours)


def test_touching_hours_are_merged_into_one_interval() -> None:
    cal = BusinessCalendar(hours=[(time(9), time(12)), (time(12), time(13))])
    assert cal.business_intervals(date(2025, 6, 11)) == [
        (bj(2025, 6, 11, 9, 0), bj(2025, 6, 11, 13, 0))
    ]
    assert cal.add_business_minutes(bj(2025, 6, 11, 11, 0), 90) == bj(2025, 6, 11, 12, 30)


def test_custom_hours_are_used() -> None:
    cal = BusinessCalendar(hours=[(time(9), time(18))])
    assert cal.add_business_minutes(bj(2025, 6, 11, 17, 0), 120) == bj(2025, 6, 12, 10, 0)


# ------------------------------------------------------ edge cases / errors


def test_non_positive_delta_returns_start_unchanged(cal: BusinessCalendar) -> None:
    start = bj(2025, 6, 14, 3, 0)  # a Saturday night: not business time
    assert cal.add_business_time(start, timedelta(0)) is start
    assert cal.add_business_time(start, timedelta(minutes=-5)) is start


def test_business_time_between_is_antisymmetric(cal: BusinessCalendar) -> None:
    a, b = bj(2025, 6, 11, 10, 0), bj(2025, 6, 12, 10, 0)
    assert cal.business_time_between(a, b) == timedelta(minutes=390)
    assert cal.business_time_between(b, a) == -timedelta(minutes=390)
    assert cal.business_time_between(a, a) == timedelta(0)


def test_is_business_time_is_half_open(cal: BusinessCalendar) -> None:
    assert cal.is_business_time(bj(2025, 6, 11, 8, 30))
    assert cal.is_business_time(bj(2025, 6, 11, 11, 59))
    assert not cal.is_business_time(bj(2025, 6, 11, 12, 0))
    assert not cal.is_business_time(bj(2025, 6, 11, 8, 29))
    assert not cal.is_business_time(bj(2025, 6, 14, 10, 0))  # Saturday


def test_next_business_moment_inside_hours_is_the_same_instant_in_utc(
    cal: BusinessCalendar,
) -> None:
    at = bj(2025, 6, 11, 10, 15)
    moment = cal.next_business_moment(at)
    assert moment == at
    assert moment.tzinfo is UTC


def test_next_business_moment_from_lunch_and_from_evening(cal: BusinessCalendar) -> None:
    assert cal.next_business_moment(bj(2025, 6, 11, 12, 0)) == bj(2025, 6, 11, 14, 30)
    assert cal.next_business_moment(bj(2025, 6, 11, 17, 30)) == bj(2025, 6, 12, 8, 30)
    assert cal.next_business_moment(bj(2025, 9, 30, 18, 0)) == bj(2025, 10, 9, 8, 30)


def test_no_working_time_for_ten_years_raises_calendar_error() -> None:
    first = date(2030, 1, 1)
    all_off = {first + timedelta(days=i): False for i in range(MAX_SEARCH_DAYS + 10)}
    cal = BusinessCalendar(overrides=all_off)
    with pytest.raises(CalendarError):
        cal.add_business_minutes(bj(2030, 1, 1), 1)
    with pytest.raises(CalendarError):
        cal.next_business_moment(bj(2030, 1, 1))


def test_working_time_just_within_the_search_limit_is_found() -> None:
    first = date(2030, 1, 1)
    all_off = {first + timedelta(days=i): False for i in range(MAX_SEARCH_DAYS)}
    cal = BusinessCalendar(overrides=all_off)
    reopening = first + timedelta(days=MAX_SEARCH_DAYS)
    assert cal.is_workday(reopening)
    expected = datetime.combine(reopening, time(8, 31), tzinfo=BJ)
    assert cal.add_business_minutes(bj(2030, 1, 1), 1) == expected


def test_running_off_the_end_of_the_date_range_raises_calendar_error(
    cal: BusinessCalendar,
) -> None:
    start = bj(9999, 12, 31, 10, 0)  # a Friday, by the Monday-Friday fallback
    with pytest.raises(CalendarError):
        cal.add_business_time(start, timedelta(days=1))
    with pytest.raises(CalendarError):
        cal.next_business_moment(bj(9999, 12, 31, 18, 0))


def test_microsecond_precision_is_kept(cal: BusinessCalendar) -> None:
    start = bj(2025, 6, 11, 11, 59) + timedelta(seconds=59, microseconds=999_999)
    due = cal.add_business_time(start, timedelta(microseconds=2))
    assert due == bj(2025, 6, 11, 14, 30) + timedelta(microseconds=1)
    assert cal.business_time_between(start, due) == timedelta(microseconds=2)


# --------------------------------------------------------- property tests

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
CALENDAR = BusinessCalendar()

zones = st.sampled_from(
    [
        BJ,
        UTC,
        ZoneInfo("America/New_York"),
        ZoneInfo("Europe/Berlin"),
        timezone(timedelta(hours=-3, minutes=-30)),
    ]
)
aware_starts = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2026, 12, 31), timezones=zones
)
deltas = st.integers(min_value=0, max_value=20_000 * 60).map(lambda s: timedelta(seconds=s))


def _closes_an_interval_or_inside_one(cal: BusinessCalendar, at: datetime) -> bool:
    """True if `at` lies in (start, end] of some business interval of its local day."""
    day = at.astimezone(cal.tz).date()
    return any(start < at <= end for start, end in cal.business_intervals(day))


@PROPERTY_SETTINGS
@given(start=aware_starts, delta=deltas)
def test_measuring_back_gives_exactly_the_delta(start: datetime, delta: timedelta) -> None:
    due = CALENDAR.add_business_time(start, delta)
    assert CALENDAR.business_time_between(start, due) == delta


@PROPERTY_SETTINGS
@given(
    start=aware_starts,
    delta=st.integers(min_value=0, max_value=20_000 * 60 * 10**6).map(
        lambda us: timedelta(microseconds=us)
    ),
)
def test_measuring_back_is_exact_to_the_microsecond(start: datetime, delta: timedelta) -> None:
    due = CALENDAR.add_business_time(start, delta)
    assert CALENDAR.business_time_between(start, due) == delta


@PROPERTY_SETTINGS
@given(start=aware_starts, d1=deltas, d2=deltas)
def test_deadlines_are_monotonic_in_the_delta(
    start: datetime, d1: timedelta, d2: timedelta
) -> None:
    small, large = sorted((d1, d2))
    assert CALENDAR.add_business_time(start, small) <= CALENDAR.add_business_time(start, large)


@PROPERTY_SETTINGS
@given(start=aware_starts, delta=deltas)
def test_deadline_is_a_business_moment_or_the_start_for_zero_delta(
    start: datetime, delta: timedelta
) -> None:
    due = CALENDAR.add_business_time(start, delta)
    if delta == timedelta(0):
        assert due is start
    else:
        assert due.tzinfo is UTC
        assert due > start
        assert _closes_an_interval_or_inside_one(CALENDAR, due)


@PROPERTY_SETTINGS
@given(a=aware_starts, b=aware_starts, c=aware_starts)
def test_business_time_between_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert CALENDAR.business_time_between(a, b) + CALENDAR.business_time_between(
        b, c
    ) == CALENDAR.business_time_between(a, c)


@PROPERTY_SETTINGS
@given(a=aware_starts, b=aware_starts)
def test_business_time_between_is_antisymmetric_and_bounded(a: datetime, b: datetime) -> None:
    forward = CALENDAR.business_time_between(a, b)
    assert CALENDAR.business_time_between(b, a) == -forward
    assert abs(forward) <= abs(b - a)


@PROPERTY_SETTINGS
@given(at=aware_starts)
def test_next_business_moment_is_business_time_with_nothing_in_between(at: datetime) -> None:
    moment = CALENDAR.next_business_moment(at)
    assert moment >= at
    assert CALENDAR.is_business_time(moment)
    assert CALENDAR.business_time_between(at, moment) == timedelta(0)
    assert (moment == at) == CALENDAR.is_business_time(at)
