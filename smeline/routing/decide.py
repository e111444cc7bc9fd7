"""Which county a caller belongs to and which queue takes the call — pure.

The FastAGI route handler gathers the facts (database look-ups, the live
picture of the queues, the business calendar) and asks these functions; they
do no I/O, so every rule is tested as a table and answers in microseconds.

Order of identification (issue 3):
1. a known caller: a registered member / enterprise phone, then a caller
   profile that remembers the county this number chose before;
2. a Meizhou landline: the administrator's exchange-prefix table;
3. a Meizhou mobile without profile: ask (county IVR menu);
4. anyone else (other cities, anonymous, garbage): the city centre.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

CITY_WINDOW = "city"


class CountySource(StrEnum):
    MEMBER = "member"  # registered member or enterprise phone
    PROFILE = "profile"  # what this number chose before
    LANDLINE = "landline"  # exchange-prefix table
    IVR = "ivr"  # the caller chose now
    DEFAULT = "default"  # unknown: city centre


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What the handler found out about a caller before deciding."""

    phone_key: str  # routing.numbers canonical key, "" when anonymous/invalid
    is_mobile: bool = False
    is_meizhou: bool = False  # Meizhou landline or Meizhou mobile segment
    member_county: str | None = None
    profile_county: str | None = None
    landline_county: str | None = None


@dataclass(frozen=True, slots=True)
class CountyDecision:
    county: str | None  # GB/T 2260 code of a county; None = city centre
    source: CountySource
    ask: bool = False  # play the county menu and decide on the digit


def identify_county(facts: CallerFacts) -> CountyDecision:
    if facts.member_county:
        return CountyDecision(facts.member_county, CountySource.MEMBER)
    if facts.profile_county:
        return CountyDecision(facts.profile_county, CountySource.PROFILE)
    if facts.landline_county:
        return CountyDecision(facts.landline_county, CountySource.LANDLINE)
    if facts.phone_key and facts.is_meizhou:
        # A Meizhou mobile (or a Meizhou landline not in the table): the
        # segment databases know the city, never the county — ask.
        return CountyDecision(None, CountySource.DEFAULT, ask=True)
    return CountyDecision(None, CountySource.DEFAULT)


def county_from_menu(digit: str | None, menu: Iterable[tuple[str, str]]) -> str | None:
    """The county code for the digit pressed in the county menu, if any."""
    if not digit:
        return None
    for key, county in menu:
        if key == digit:
            return county
    return None


def match_landline(phone_key: str, prefixes: Mapping[str, str]) -> str | None:
    """Longest exchange prefix of ``phone_key`` in the table → county code."""
    for length in range(min(len(phone_key), 16), 0, -1):
        county = prefixes.get(phone_key[:length])
        if county is not None:
            return county
    return None


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window's queue right now, from the calendar and the live picture."""

    code: str
    open: bool  # window hours, holidays and 调休 from the business calendar
    agents_ready: int  # logged in and not paused (QueueStatus / member events)


class RouteAction(StrEnum):
    QUEUE = "queue"
    AFTER_HOURS = "afterhours"  # message, voicemail → work order with callback


@dataclass(frozen=True, slots=True)
class QueueDecision:
    action: RouteAction
    window: str | None  # the queue to join now
    overflow_window: str | None  # where a queue timeout goes next
    announce_overflow: bool  # the caller hears that the county window is unavailable
    wanted_window: str  # the window the caller belongs to


def _usable(state: WindowState | None) -> bool:
    return state is not None and state.open and state.agents_ready > 0


def choose_queue(
    wanted_window: str,
    windows: Mapping[str, WindowState],
    *,
    city_window: str = CITY_WINDOW,
) -> QueueDecision:
    """A window's queue only when it is open and has ready agents; otherwise
    the city centre with an announcement; when the city is also closed or
    empty, after hours. A county queue that times out overflows to the city
    (``overflow_window``) when the city can take it."""
    city = windows.get(city_window)
    if wanted_window != city_window and _usable(windows.get(wanted_window)):
        overflow = city_window if _usable(city) else None
        return QueueDecision(RouteAction.QUEUE, wanted_window, overflow, False, wanted_window)
    if _usable(city):
        return QueueDecision(
            RouteAction.QUEUE,
            city_window,
            None,
            wanted_window != city_window,
            wanted_window,
        )
    return QueueDecision(RouteAction.AFTER_HOURS, None, None, False, wanted_window)
