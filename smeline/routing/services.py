"""The I/O around routing decisions: look-ups, the prefix table, profiles.

Everything here is on the call path of the FastAGI ``route`` handler, whose
answer is due within ~300 ms, so: one database round trip per caller look-up
(three scalar sub-selects in one statement), the small exchange-prefix table
kept in memory (refreshed now and then), and writes (remembering a county
choice) done in the background, never while the caller waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from smeline.db import dialect_insert, utcnow
from smeline.reference.models import Window
from smeline.reference.services import ReferenceData
from smeline.routing.decide import (
    CITY_WINDOW,
    CallerFacts,
    CountyDecision,
    CountySource,
    QueueDecision,
    WindowState,
    choose_queue,
    identify_county,
    match_landline,
)
from smeline.routing.models import CallerProfile, LandlinePrefix
from smeline.routing.numbers import NumberKind, NumberPlan, PhoneKey, is_meizhou, normalise
from smeline.ticketing.calendar_service import CalendarService, parse_hours

logger = logging.getLogger(__name__)

# One statement, one round trip: who is this number registered as, and what
# did it choose before. NULL when nothing is known.
_LOOKUP_SQL = (
    "SELECT"
    " (SELECT county_code FROM members"
    "   WHERE phone_key = :k AND county_code IS NOT NULL LIMIT 1) AS member_county,"
    " (SELECT county_code FROM enterprises"
    "   WHERE phone_key = :k AND county_code IS NOT NULL LIMIT 1) AS enterprise_county,"
    " (SELECT county_code FROM caller_profiles WHERE phone_key = :k) AS profile_county"
)
_LOOKUP = text(_LOOKUP_SQL)
_LOOKUP_NATIVE = _LOOKUP_SQL.replace(":k", "$1")

#: Rows of the look-up: member/enterprise county, profile county.
LookupRow = tuple[str | None, str | None, str | None]


class CallerLookup:
    """The one query on the call path, on a few asyncpg connections of its own.

    Through SQLAlchemy's async engine the same query costs ~0.3 ms of CPU one
    at a time and ~0.7 ms with 50 calls at once (connection checkout and the
    greenlet hop, not the SQL); on a plain asyncpg connection with its
    prepared statement ~0.03 ms. asyncpg's own pool adds ~0.03 ms per call
    (its acquire/release machinery, and a reset query on every release unless
    told otherwise), so the connections are kept here: a LIFO stack of idle
    connections and free slots (``None``: connect when needed). A connection
    whose query failed or was cancelled (the think deadline) may be out of
    step, so it is dropped and its slot freed. PostgreSQL only: on SQLite
    (the embedded default) the look-up goes through the engine.
    """

    def __init__(self, database_url: str, *, size: int = 4) -> None:
        url = make_url(database_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError("CallerLookup needs a PostgreSQL database URL")
        if size < 1:
            raise ValueError("size must be at least 1")
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._idle: asyncio.LifoQueue[Any] | None = None
        #: Connections opened and dropped so far (tests, diagnostics).
        self.opened = 0
        self.dropped = 0

    @property
    def started(self) -> bool:
        return self._idle is not None

    async def start(self) -> None:
        if self._idle is not None:
            return
        first = await asyncpg.connect(self._dsn)  # fail at start-up, not on a call
        self.opened += 1
        idle: asyncio.LifoQueue[Any] = asyncio.LifoQueue()
        for _ in range(self._size - 1):
            idle.put_nowait(None)
        idle.put_nowait(first)
        self._idle = idle

    async def close(self) -> None:
        idle, self._idle = self._idle, None
        while idle is not None and not idle.empty():
            conn = idle.get_nowait()
            if conn is not None:
                await conn.close()

    async def fetch(self, phone_key: str) -> LookupRow:
        idle = self._idle
        if idle is None:
            raise RuntimeError("CallerLookup is not started")
        conn = idle.get_nowait() if not idle.empty() else await idle.get()
        if conn is None:
            try:
                conn = await asyncpg.connect(self._dsn)
            except BaseException:
                idle.put_nowait(None)
                raise
            self.opened += 1
        try:
            row = await conn.fetchrow(_LOOKUP_NATIVE, phone_key)
        except BaseException:
            conn.terminate()
            self.dropped += 1
            idle.put_nowait(None)
            raise
        idle.put_nowait(conn)
        return (row[0], row[1], row[2])


#: Example exchange prefixes (0753 + first digit(s) of the subscriber number).
#: EXAMPLE DATA, NOT THE REAL EXCHANGE PLAN: an administrator replaces these
#: with the telecom operator's table (每个县区的局向号段) before go-live.
EXAMPLE_LANDLINE_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("07532", "441402", "示例：梅江区"),
    ("07533", "441403", "示例：梅县区"),
    ("07534", "441481", "示例：兴宁市"),
    ("07535", "441426", "示例：平远县"),
    ("07536", "441427", "示例：蕉岭县"),
    ("07537", "441422", "示例：大埔县"),
    ("07538", "441423", "示例：丰顺县"),
    ("07539", "441424", "示例：五华县"),
)


@dataclass(frozen=True, slots=True)
class Identified:
    key: PhoneKey
    facts: CallerFacts
    county: CountyDecision


class RoutingService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        plan: NumberPlan,
        reference: Callable[[], ReferenceData],
        calendars: CalendarService,
        agents_ready: Callable[[str], int | None],
        prefix_refresh_seconds: float = 30.0,
        lookup: CallerLookup | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # The fast path when started (PostgreSQL); the engine otherwise.
        self.lookup = lookup
        engine = sessionmaker.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("the sessionmaker must be bound to an AsyncEngine")
        self._engine = engine
        self.plan = plan
        self._reference = reference
        self._calendars = calendars
        # None when the live picture is unknown (AMI not connected): then the
        # queue is tried and Asterisk's joinempty decides.
        self._agents_ready = agents_ready
        self._prefixes: dict[str, str] = {}
        self._prefixes_loaded_at = 0.0
        self._prefix_refresh_seconds = prefix_refresh_seconds
        self._background: set[asyncio.Task[None]] = set()
        self._open_minute = -1
        self._open_cache: dict[str, tuple[int, Window, bool]] = {}

    @property
    def calendars(self) -> CalendarService:
        return self._calendars

    # -- exchange prefixes -------------------------------------------------

    async def seed_example_prefixes(self) -> None:
        """Ship the example table on an empty database (marked as example)."""
        async with self._sessionmaker() as db, db.begin():
            if await db.scalar(select(LandlinePrefix.prefix).limit(1)) is not None:
                return
            db.add_all(
                LandlinePrefix(prefix=p, county_code=c, note=n, example=True)
                for p, c, n in EXAMPLE_LANDLINE_PREFIXES
            )

    async def load_prefixes(self) -> None:
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(select(LandlinePrefix.prefix, LandlinePrefix.county_code))
            ).all()
        self._prefixes = {p: c for p, c in rows}
        self._prefixes_loaded_at = time.monotonic()

    @property
    def prefixes(self) -> Mapping[str, str]:
        return self._prefixes

    def _refresh_prefixes_soon(self) -> None:
        if time.monotonic() - self._prefixes_loaded_at < self._prefix_refresh_seconds:
            return
        self._prefixes_loaded_at = time.monotonic()
        self.spawn(self.load_prefixes(), "refresh landline prefixes")

    # -- callers -----------------------------------------------------------

    async def caller_facts(self, key: PhoneKey) -> CallerFacts:
        self._refresh_prefixes_soon()
        local = is_meizhou(key, self.plan)
        landline = (
            match_landline(key.key, self._prefixes)
            if key.kind is NumberKind.LANDLINE and local
            else None
        )
        if not key.key:
            return CallerFacts("")
        member, enterprise, profile = await self._lookup(key.key)
        return CallerFacts(
            phone_key=key.key,
            is_mobile=key.kind is NumberKind.MOBILE,
            is_meizhou=local,
            member_county=member or enterprise,
            profile_county=profile,
            landline_county=landline,
        )

    async def _lookup(self, phone_key: str) -> LookupRow:
        if self.lookup is not None and self.lookup.started:
            return await self.lookup.fetch(phone_key)
        # A bare connection, not an ORM session: the session's set-up cost
        # more than the query (bench/RESULTS.md).
        async with self._engine.connect() as conn:
            row = (await conn.execute(_LOOKUP, {"k": phone_key})).one()
        return (row.member_county, row.enterprise_county, row.profile_county)

    async def remember_county(self, phone_key: str, county_code: str, source: str) -> None:
        """A choice made now always replaces what was stored."""
        if not phone_key:
            return
        now = utcnow()
        async with self._sessionmaker() as db, db.begin():
            insert = dialect_insert(db)(CallerProfile).values(
                phone_key=phone_key, county_code=county_code, source=source, calls=1, updated_at=now
            )
            await db.execute(
                insert.on_conflict_do_update(
                    index_elements=["phone_key"],
                    set_={
                        "county_code": insert.excluded.county_code,
                        "source": insert.excluded.source,
                        "calls": CallerProfile.calls + 1,
                        "updated_at": insert.excluded.updated_at,
                    },
                )
            )

    def remember_county_later(self, phone_key: str, county_code: str, source: str) -> None:
        """Off the call path: the caller never waits for this write."""
        self.spawn(self.remember_county(phone_key, county_code, source), "remember county")

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` in the background, off the call path; failures are logged."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                logger.exception("routing background task failed: %s", what)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background writes (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- windows -----------------------------------------------------------

    def window_for_county(self, county_code: str | None) -> str:
        if not county_code:
            return CITY_WINDOW
        return self._reference().window_for_county(county_code).code

    def window_states(
        self, now: datetime, only: Collection[str] | None = None
    ) -> dict[str, WindowState]:
        """Open/ready state of every active window (or of the ``only`` ones)."""
        states: dict[str, WindowState] = {}
        for code, window in self._reference().windows.items():
            if not window.active or (only is not None and code not in only):
                continue
            is_open = self._is_open(code, window, now)
            ready = self._agents_ready(code)
            states[code] = WindowState(code, is_open, 1 if ready is None else ready)
        return states

    def _is_open(self, code: str, window: Window, now: datetime) -> bool:
        """Window hours are whole minutes and holidays whole days, so whether a
        window is open only changes from one minute to the next: computed
        once per window and minute, and again when the calendar is reloaded
        or the reference data (a new ``Window`` object) is."""
        minute = int(now.timestamp() // 60)
        if minute != self._open_minute:
            self._open_cache.clear()
            self._open_minute = minute
        hit = self._open_cache.get(code)
        if hit is not None and hit[0] == self._calendars.generation and hit[1] is window:
            return hit[2]
        hours = parse_hours(window.hours, self._calendars.default_hours)
        is_open = self._calendars.calendar(hours).is_business_time(now)
        self._open_cache[code] = (self._calendars.generation, window, is_open)
        return is_open

    # -- the whole decision --------------------------------------------------

    async def identify(self, raw_caller_id: str | None) -> Identified:
        key = normalise(raw_caller_id, self.plan)
        facts = await self.caller_facts(key)
        return Identified(key, facts, identify_county(facts))

    def chosen(self, identified: Identified, county_code: str | None) -> CountyDecision:
        """The caller answered the county menu (None: no valid choice)."""
        if county_code is None:
            return CountyDecision(None, CountySource.DEFAULT)
        self.remember_county_later(identified.key.key, county_code, "ivr")
        return CountyDecision(county_code, CountySource.IVR)

    def queue_for(self, county: CountyDecision, now: datetime) -> QueueDecision:
        wanted = self.window_for_county(county.county)
        # choose_queue looks at the wanted window and the city's, nothing else.
        return choose_queue(wanted, self.window_states(now, only=(wanted, CITY_WINDOW)))
