"""Reading the facts the figures are computed from."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.stats.figures import (
    AgentFigures,
    CallFacts,
    ChatFacts,
    ChatFigures,
    FigureRules,
    Trends,
    WindowFigures,
    agent_chats,
    agent_figures,
    chat_figures,
    contact_trends,
    window_figures,
)
from smeline.telephony.models import CallRecord
from smeline.ticketing.calendar import BUSINESS_TZ
from smeline.webchat.models import Chat


def _local_hour(column: Any, dialect: str) -> ColumnElement[int]:
    """The Beijing hour (0–23) of a UTC timestamp column, computed by the
    database so that the facts can be grouped there. SQLite keeps naive UTC
    text: China has kept UTC+8 all year since 1991, so adding 8 hours is
    Beijing time."""
    if dialect == "postgresql":
        local = func.timezone(BUSINESS_TZ.key, column)
        return cast(func.extract("hour", local), Integer)
    return cast(func.strftime("%H", column, "+8 hours"), Integer)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A Beijing day as a [start, end) pair of aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=BUSINESS_TZ)
    return start, start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    start: datetime
    end: datetime
    windows: dict[str, WindowFigures]
    agents: dict[int, AgentFigures]
    calls: tuple[CallFacts, ...]
    chats: tuple[ChatFacts, ...] = ()
    chat_windows: dict[str, ChatFigures] = field(default_factory=dict)
    # chats answered, by the agent who holds or held them last
    chat_agents: dict[int, int] = field(default_factory=dict)

    def trends(self, windows: Collection[str] | None = None) -> Trends:
        """Contacts by Beijing hour, category and county (``windows``: only
        the contacts counted for those windows)."""
        return contact_trends(self.calls, self.chats, BUSINESS_TZ, windows)


class FiguresService:
    """Wallboard and reports read figures here, nowhere else."""

    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], rules: FigureRules
    ) -> None:
        self._sessionmaker = sessionmaker
        self.rules = rules

    async def call_facts(self, start: datetime, end: datetime) -> list[CallFacts]:
        """Inbound calls that started in [start, end)."""
        query = select(
            CallRecord.started_at,
            CallRecord.outcome,
            CallRecord.windows,
            CallRecord.answered_window,
            CallRecord.queued_at,
            CallRecord.wait_seconds,
            CallRecord.talk_seconds,
            CallRecord.handle_seconds,
            CallRecord.agent_user_id,
            CallRecord.county_code,
            CallRecord.category_code,
            CallRecord.joint,
        ).where(
            CallRecord.direction == "inbound",
            CallRecord.started_at >= start,
            CallRecord.started_at < end,
        )
        async with self._sessionmaker() as db:
            rows = (await db.execute(query)).all()
        return [
            CallFacts(
                started_at=row.started_at,
                outcome=row.outcome,
                windows=tuple(row.windows or ()),
                answered_window=row.answered_window,
                queued=row.queued_at is not None or bool(row.windows),
                wait_seconds=row.wait_seconds or 0,
                talk_seconds=row.talk_seconds or 0,
                handle_seconds=row.handle_seconds,
                agent_user_id=row.agent_user_id,
                county_code=row.county_code,
                category_code=row.category_code,
                joint=bool(row.joint),
            )
            for row in rows
        ]

    async def chat_facts(
        self, start: datetime, end: datetime
    ) -> tuple[list[ChatFacts], list[tuple[int, int]]]:
        """Web chats that started in [start, end): grouped facts, and the
        chats answered by each agent (who holds or held them last)."""
        answered = Chat.assigned_at.is_not(None)
        in_period = (Chat.created_at >= start, Chat.created_at < end)
        async with self._sessionmaker() as db:
            hour = _local_hour(Chat.created_at, db.get_bind().dialect.name)
            grouped = (
                select(
                    Chat.window_code,
                    answered,
                    hour,
                    Chat.county_code,
                    Chat.category_code,
                    func.count(),
                )
                .where(*in_period)
                .group_by(Chat.window_code, answered, hour, Chat.county_code, Chat.category_code)
            )
            # A chat given back to the queue has no agent until the next one takes it.
            by_agent = (
                select(Chat.agent_id, func.count())
                .where(*in_period, answered, Chat.agent_id.is_not(None))
                .group_by(Chat.agent_id)
            )
            facts = [
                ChatFacts(window, bool(taken), int(h), county, category, int(n))
                for window, taken, h, county, category, n in await db.execute(grouped)
            ]
            agents = [
                (agent, int(n)) for agent, n in await db.execute(by_agent) if agent is not None
            ]
        return facts, agents

    async def period(
        self, start: datetime, end: datetime, windows: tuple[str, ...] = ()
    ) -> PeriodFigures:
        calls = await self.call_facts(start, end)
        chats, chat_agents = await self.chat_facts(start, end)
        return PeriodFigures(
            start=start,
            end=end,
            windows=window_figures(calls, self.rules, windows),
            agents=agent_figures(calls),
            calls=tuple(calls),
            chats=tuple(chats),
            chat_windows=chat_figures(chats, windows),
            chat_agents=agent_chats(chat_agents),
        )

    async def day(self, day: date, windows: tuple[str, ...] = ()) -> PeriodFigures:
        start, end = day_bounds(day)
        return await self.period(start, end, windows)
