"""The hotline's route decision as a classic AGI script: one new process per call.

What a deployment without FastAGI does: the dialplan runs ``AGI(script)``, Asterisk
forks and execs the script for every call, writes the AGI environment to its stdin
(``agi_key: value`` lines, then an empty line), reads commands from its stdout and
answers each on stdin. The script here makes the same decision as the FastAGI
``route`` handler (``smeline.agi_scripts.handlers.HotlineIvr.route``) with the same
pure functions (``routing.numbers``, ``routing.decide``, ``BusinessCalendar``), but
everything the long-running server keeps in memory (connection pool, exchange-prefix
table, windows, calendar overrides, mobile-segment database) has to be loaded again
by every process:

    python bench/agi_process_per_call.py [DSN]      # env on stdin, commands on stdout

It is kept lean on purpose (asyncpg, no SQLAlchemy, no web stack: 0.2 s of imports
instead of 0.6 s), so the comparison with FastAGI is not inflated. It is not part
of smeline; ``bench_agi_routing.py`` spawns it per call to measure the difference.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from smeline.agi_scripts.fastagi import agi_quote
from smeline.prompts.catalogue import CATEGORY_MENU, COUNTY_MENU
from smeline.routing.decide import (
    CITY_WINDOW,
    CallerFacts,
    CountyDecision,
    CountySource,
    RouteAction,
    WindowState,
    choose_queue,
    county_from_menu,
    identify_county,
    match_landline,
)
from smeline.routing.numbers import NumberKind, is_meizhou, normalise
from smeline.ticketing.calendar import BusinessCalendar

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/smeline_bench_agi"
#: The platform's default window hours (``Settings.business_hours``).
DEFAULT_HOURS = ((time(8, 30), time(12, 0)), (time(14, 30), time(17, 30)))
MENU_TIMEOUT_MS = 6000
MENU_ATTEMPTS = 2
COUNTY_QUEUE_TIMEOUT = 60
CITY_QUEUE_TIMEOUT = 300
#: What the dialplan gets when the script fails (the FastAGI route's fallback).
FALLBACK = {"SMELINE_ACTION": "queue", "SMELINE_QUEUE": CITY_WINDOW, "SMELINE_ROUTE": "fallback"}

# The FastAGI handler's look-up (routing.services._LOOKUP) with asyncpg's placeholder.
LOOKUP = (
    "SELECT"
    " (SELECT county_code FROM members"
    "   WHERE phone_key = $1 AND county_code IS NOT NULL LIMIT 1) AS member_county,"
    " (SELECT county_code FROM enterprises"
    "   WHERE phone_key = $1 AND county_code IS NOT NULL LIMIT 1) AS enterprise_county,"
    " (SELECT county_code FROM caller_profiles WHERE phone_key = $1) AS profile_county"
)


class Agi:
    """Classic AGI over stdin/stdout."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        for raw in sys.stdin:
            line = raw.rstrip("\n")
            if not line:
                break
            key, _, value = line.partition(":")
            self.env[key] = value[1:] if value.startswith(" ") else value

    def command(self, text: str) -> str:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        reply = sys.stdin.readline()
        if not reply:
            raise EOFError("Asterisk closed the AGI pipe")
        return reply.rstrip("\n")

    def set_variable(self, name: str, value: str) -> None:
        self.command(f"SET VARIABLE {name} {agi_quote(value)}")

    def get_digit(self, prompt: str) -> str:
        reply = self.command(f"GET DATA {prompt} {MENU_TIMEOUT_MS} 1")
        _, _, rest = reply.partition("result=")
        return rest.split(" ", 1)[0]

    def menu(self, prompt: str, menu: tuple[tuple[str, str], ...]) -> str | None:
        for attempt in range(MENU_ATTEMPTS):
            digit = self.get_digit(prompt if attempt == 0 else "smeline/invalid-choice")
            choice = county_from_menu(digit, menu)
            if choice is not None:
                return choice
        return None


def window_for_county(windows: list[asyncpg.Record], county: str | None) -> str:
    """``ReferenceData.window_for_county``: the county's own window, else the city's."""
    if county:
        for window in windows:
            if window["county_code"] == county and window["code"] != CITY_WINDOW:
                return str(window["code"])
    return CITY_WINDOW


def window_states(
    windows: list[asyncpg.Record], overrides: Mapping[date, bool], years: set[int], now: datetime
) -> dict[str, WindowState]:
    """``RoutingService.window_states`` with agents unknown (no AMI here either)."""
    calendars: dict[tuple[tuple[time, time], ...], BusinessCalendar] = {}
    states: dict[str, WindowState] = {}
    for window in windows:
        if not window["active"]:
            continue
        raw = window["hours"]  # JSONB: asyncpg hands it over as text
        if isinstance(raw, str):
            raw = json.loads(raw)
        hours = (
            tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in raw)
            if raw
            else DEFAULT_HOURS
        )
        calendar = calendars.get(hours)
        if calendar is None:
            calendar = calendars[hours] = BusinessCalendar(
                hours=hours, overrides=overrides, confirmed_years=years
            )
        states[window["code"]] = WindowState(window["code"], calendar.is_business_time(now), 1)
    return states


async def route(agi: Agi, dsn: str) -> None:
    key = normalise(agi.env.get("agi_callerid", ""))
    local = is_meizhou(key)  # reads the mobile-segment database file for a mobile
    # Everything is read before the menus: no database connection is held while
    # the caller listens to a prompt.
    conn = await asyncpg.connect(dsn)
    try:
        member = profile = landline = None
        if key.key:
            row = await conn.fetchrow(LOOKUP, key.key)
            member = row["member_county"] or row["enterprise_county"]
            profile = row["profile_county"]
        if key.kind is NumberKind.LANDLINE and local:
            prefixes = {
                r["prefix"]: r["county_code"]
                for r in await conn.fetch("SELECT prefix, county_code FROM landline_prefixes")
            }
            landline = match_landline(key.key, prefixes)
        windows = await conn.fetch(
            "SELECT code, county_code, hours, active FROM windows ORDER BY sort"
        )
        overrides = {
            r["day"]: r["is_workday"]
            for r in await conn.fetch("SELECT day, is_workday FROM calendar_overrides")
        }
        years = {r["year"] for r in await conn.fetch("SELECT year FROM calendar_years")}
    finally:
        await conn.close()
    facts = CallerFacts(
        phone_key=key.key,
        is_mobile=key.kind is NumberKind.MOBILE,
        is_meizhou=local,
        member_county=member,
        profile_county=profile,
        landline_county=landline,
    )
    county = identify_county(facts)
    if county.ask:
        choice = agi.menu("smeline/county-menu", COUNTY_MENU)
        if choice is None:
            county = CountyDecision(None, CountySource.DEFAULT)
        else:
            county = CountyDecision(choice, CountySource.IVR)
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO caller_profiles"
                    " (phone_key, county_code, source, calls, updated_at)"
                    " VALUES ($1, $2, 'ivr', 1, now()) ON CONFLICT (phone_key) DO UPDATE SET"
                    " county_code = EXCLUDED.county_code, source = EXCLUDED.source,"
                    " calls = caller_profiles.calls + 1, updated_at = EXCLUDED.updated_at",
                    key.key,
                    choice,
                )
            finally:
                await conn.close()
    category = agi.menu("smeline/category-menu", CATEGORY_MENU)
    decision = choose_queue(
        window_for_county(windows, county.county),
        window_states(windows, overrides, years, datetime.now(UTC)),
    )
    variables = {
        "SMELINE_CALLER_KEY": key.key,
        "SMELINE_COUNTY": county.county or "",
        "SMELINE_WINDOW": decision.wanted_window,
        "SMELINE_CATEGORY": category or "",
        "SMELINE_PRIO": "0",
        "SMELINE_OVERFLOW": decision.overflow_window or "",
        "SMELINE_ANNOUNCE": "smeline/overflow-city" if decision.announce_overflow else "",
        "SMELINE_QUEUE_TIMEOUT": str(
            COUNTY_QUEUE_TIMEOUT if decision.overflow_window else CITY_QUEUE_TIMEOUT
        ),
    }
    if decision.action is RouteAction.QUEUE and decision.window:
        variables["SMELINE_QUEUE"] = decision.window
    variables["SMELINE_ACTION"] = decision.action.value
    for name, value in variables.items():
        agi.set_variable(name, value)


def main() -> int:
    dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SMELINE_BENCH_AGI_DSN", DEFAULT_DSN)
    agi = Agi()
    try:
        asyncio.run(route(agi, dsn))
    except EOFError:
        return 0  # the caller hung up
    except Exception as exc:  # the classic way: log to Asterisk, leave the defaults
        sys.stderr.write(f"route failed: {exc.__class__.__name__}: {exc}\n")
        try:
            for name, value in FALLBACK.items():
                agi.set_variable(name, value)
        except EOFError:
            return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
