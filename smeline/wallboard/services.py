"""The wallboard snapshot: live queues and agents, today's figures, the SLA
board and the trends, for one scope (city-wide, or one county).

Every figure comes from ``smeline.stats`` (``FiguresService``, the functions
of ``stats.figures``): the reports call the same code, so the two never
disagree. This module only reads the live parts (waiting callers from the
AMI live picture, queued chats, agents' states) and lays everything out.

A snapshot is built in two steps so that one push to several scopes costs
one round of queries: :meth:`WallboardService.gather` reads everything once,
:meth:`WallboardService.view` cuts out one scope.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import User
from smeline.auth.permissions import Permission, Principal
from smeline.errors import Forbidden
from smeline.realtime.rooms import SUPERVISORS, county_supervisors_room
from smeline.reference.models import Window
from smeline.reference.services import ReferenceService
from smeline.stats.figures import (
    ChatFigures,
    WindowFigures,
    chat_total,
    handled,
    total,
)
from smeline.stats.services import FiguresService, PeriodFigures
from smeline.telephony.live import DeviceStatus, LivePicture, MemberState
from smeline.telephony.models import QueueMembership
from smeline.ticketing.calendar import BUSINESS_TZ
from smeline.ticketing.models import OPEN_STATUSES, SlaState, Ticket
from smeline.ticketing.numbering import short_ref
from smeline.wallboard.missed import MissedCalls
from smeline.wallboard.schemas import (
    AgentCountsOut,
    AgentOut,
    AgentStateName,
    RulesOut,
    SlaCountyOut,
    SlaItemOut,
    SlaOut,
    TodayOut,
    TrendsOut,
    WallboardOut,
    WindowOut,
)
from smeline.webchat.models import Chat, ChatAgent, ChatState

SLA_ITEMS = 50
# Device states of a member whose phone is busy with a call (app_queue's Status).
_ON_CALL = frozenset(
    {DeviceStatus.INUSE, DeviceStatus.BUSY, DeviceStatus.RINGINUSE, DeviceStatus.ONHOLD}
)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one wallboard shows: the whole city (``county_code`` None) or the
    windows, agents and work orders of one county."""

    county_code: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Scope:
        """The scope of a supervisor: city-wide roles everything, a county
        administrator their county (the rooms of docs/realtime.md)."""
        principal.require(Permission.TELEPHONY_SUPERVISE)
        if principal.can(Permission.TICKETS_READ_ALL):
            return cls(None)
        if principal.county_code is not None:
            return cls(principal.county_code)
        raise Forbidden(
            "No county to supervise",
            error_id="permission_denied",
            details={"permission": Permission.TELEPHONY_SUPERVISE.value},
        )

    @property
    def room(self) -> str:
        """The ``/supervisor`` room whose sockets see this scope."""
        return (
            SUPERVISORS if self.county_code is None else county_supervisors_room(self.county_code)
        )

    def has_county(self, county_code: str | None) -> bool:
        return self.county_code is None or county_code == self.county_code


@dataclass(frozen=True, slots=True)
class _AgentRow:
    user_id: int
    name: str
    window_code: str
    interface: str | None  # None: a chat seat only, not in a queue
    state: str
    reason: str | None
    since: datetime


@dataclass(frozen=True, slots=True)
class _SlaRow:
    id: int
    number: str
    subject: str
    county_code: str
    status: str
    sla_state: str
    due_at: datetime | None
    assignee_name: str | None


@dataclass(slots=True)
class Gathered:
    """Everything a snapshot needs, read once."""

    at: datetime
    period: PeriodFigures
    windows: list[Window]
    open_windows: Mapping[str, bool]
    live: LivePicture | None
    chats_waiting: dict[str, tuple[int, datetime]]  # window → (count, oldest)
    chats_active: dict[int, int]
    agents: list[_AgentRow]
    sla_counts: dict[tuple[str, str], int]  # (county, sla_state) → open work orders
    sla_items: dict[Scope, list[_SlaRow]] = field(default_factory=dict)


def _today(calls: WindowFigures, chats: ChatFigures) -> TodayOut:
    return TodayOut(
        offered=calls.offered,
        answered=calls.answered,
        abandoned=calls.abandoned,
        short_abandoned=calls.short_abandoned,
        service_level=calls.service_level,
        asa_seconds=calls.asa_seconds,
        aht_seconds=calls.aht_seconds,
        overflowed_in=calls.overflowed_in,
        chats=chats.chats,
        chats_answered=chats.answered,
    )


def _seconds(since: datetime | None, now: datetime) -> int:
    return 0 if since is None else max(0, int((now - since).total_seconds()))


class WallboardService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        figures: FiguresService,
        reference: ReferenceService,
        window_open: Callable[[datetime], Mapping[str, bool]],
        live: Callable[[], LivePicture | None],
        missed: MissedCalls,
        now: Callable[[], datetime],
    ) -> None:
        self._sessionmaker = sessionmaker
        self.figures = figures
        self._reference = reference
        self._window_open = window_open
        self._live = live
        self.missed = missed
        #: The service's clock (tests set it: "today" is the Beijing day of it).
        self.clock = now

    def windows_of(self, scope: Scope) -> list[Window]:
        windows = sorted(self._reference.data.windows.values(), key=lambda w: (w.sort, w.code))
        return [w for w in windows if w.active and scope.has_county(w.county_code)]

    async def snapshot(self, scope: Scope) -> WallboardOut:
        return self.view(await self.gather((scope,)), scope)

    # -- reading ---------------------------------------------------------------------

    async def gather(self, scopes: Collection[Scope]) -> Gathered:
        now = self.clock()
        windows = self.windows_of(Scope(None))
        period = await self.figures.day(
            now.astimezone(BUSINESS_TZ).date(), windows=tuple(w.code for w in windows)
        )
        async with self._sessionmaker() as db:
            gathered = Gathered(
                at=now,
                period=period,
                windows=windows,
                open_windows=self._window_open(now),
                live=self._live(),
                chats_waiting=await self._chats_waiting(db),
                chats_active=await self._chats_active(db),
                agents=await self._agents(db, now),
                sla_counts=await self._sla_counts(db),
            )
            for scope in scopes:
                gathered.sla_items[scope] = await self._sla_items(db, scope)
        return gathered

    @staticmethod
    async def _chats_waiting(db: AsyncSession) -> dict[str, tuple[int, datetime]]:
        rows = await db.execute(
            select(Chat.window_code, func.count(), func.min(Chat.created_at))
            .where(Chat.state == ChatState.QUEUED.value)
            .group_by(Chat.window_code)
        )
        return {code: (count, oldest) for code, count, oldest in rows}

    @staticmethod
    async def _chats_active(db: AsyncSession) -> dict[int, int]:
        rows = await db.execute(
            select(Chat.agent_id, func.count())
            .where(Chat.state == ChatState.ASSIGNED.value, Chat.agent_id.is_not(None))
            .group_by(Chat.agent_id)
        )
        return {agent: count for agent, count in rows if agent is not None}

    @staticmethod
    async def _agents(db: AsyncSession, now: datetime) -> list[_AgentRow]:
        """Agents in a queue (their wanted state, kept by telephony), then
        agents with an open console who are in no queue: a chat seat."""
        queued = await db.execute(
            select(QueueMembership, User.display_name).join(
                User, User.id == QueueMembership.user_id
            )
        )
        agents: list[_AgentRow] = []
        seen: set[int] = set()
        for member, name in queued:
            seen.add(member.user_id)
            agents.append(
                _AgentRow(
                    user_id=member.user_id,
                    name=name,
                    window_code=member.window_code,
                    interface=member.interface,
                    state=member.state,
                    reason=member.reason,
                    since=member.since,
                )
            )
        seats = await db.execute(
            select(ChatAgent.user_id, ChatAgent.online_since, User.display_name, User.window_code)
            .join(User, User.id == ChatAgent.user_id)
            .where(ChatAgent.connections > 0, User.window_code.is_not(None))
        )
        for user_id, online_since, name, window_code in seats:
            if user_id in seen or window_code is None:
                continue
            agents.append(
                _AgentRow(
                    user_id=user_id,
                    name=name,
                    window_code=window_code,
                    interface=None,
                    state="ready",
                    reason=None,
                    since=online_since or now,
                )
            )
        agents.sort(key=lambda a: (a.window_code, a.name, a.user_id))
        return agents

    @staticmethod
    def _open_at_risk() -> ColumnElement[bool]:
        return and_(
            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
            Ticket.sla_state.in_([SlaState.WARNING.value, SlaState.BREACHED.value]),
        )

    async def _sla_counts(self, db: AsyncSession) -> dict[tuple[str, str], int]:
        rows = await db.execute(
            select(Ticket.county_code, Ticket.sla_state, func.count())
            .where(self._open_at_risk())
            .group_by(Ticket.county_code, Ticket.sla_state)
        )
        return {(county, state): count for county, state, count in rows}

    async def _sla_items(self, db: AsyncSession, scope: Scope) -> list[_SlaRow]:
        """The worst first: breached before warning, then the earliest due."""
        # The clock that runs: first response until there is one, then resolution.
        due = case(
            (Ticket.first_response_at.is_(None), Ticket.first_response_due_at),
            else_=Ticket.resolution_due_at,
        )
        query = (
            select(
                Ticket.id,
                Ticket.number,
                Ticket.subject,
                Ticket.county_code,
                Ticket.status,
                Ticket.sla_state,
                due.label("due_at"),
                User.display_name,
            )
            .outerjoin(User, User.id == Ticket.assignee_id)
            .where(self._open_at_risk())
            .order_by(
                case((Ticket.sla_state == SlaState.BREACHED.value, 0), else_=1),
                due.asc().nulls_last(),
                Ticket.id,
            )
            .limit(SLA_ITEMS)
        )
        if scope.county_code is not None:
            query = query.where(Ticket.county_code == scope.county_code)
        rows = await db.execute(query)
        return [
            _SlaRow(
                id=r.id,
                number=r.number,
                subject=r.subject,
                county_code=r.county_code,
                status=r.status,
                sla_state=r.sla_state,
                due_at=r.due_at,
                assignee_name=r.display_name,
            )
            for r in rows
        ]

    # -- laying out ------------------------------------------------------------------

    def view(self, g: Gathered, scope: Scope) -> WallboardOut:
        period = g.period
        windows = [w for w in g.windows if scope.has_county(w.county_code)]
        codes = {w.code for w in windows}
        county_of = {code: w.county_code for code, w in self._reference.data.windows.items()}

        def in_scope(window: str) -> bool:
            # A city-wide board counts every window's calls, even one no
            # longer in the reference data; a county board its own windows.
            return scope.county_code is None or county_of.get(window) == scope.county_code

        agents = [a for a in g.agents if a.window_code in codes]
        agent_states = {a.user_id: self._agent_state(a, g.live) for a in agents}
        counts: dict[str, Counter[str]] = {code: Counter() for code in codes}
        for a in agents:
            counts[a.window_code][agent_states[a.user_id][0]] += 1

        window_rows: list[WindowOut] = []
        for w in windows:
            waiting = g.live.waiting.get(w.code, {}) if g.live is not None else {}
            chats_waiting, oldest_chat = g.chats_waiting.get(w.code, (0, None))
            window_rows.append(
                WindowOut(
                    code=w.code,
                    name=w.name,
                    open=bool(g.open_windows.get(w.code, False)),
                    calls_waiting=len(waiting),
                    longest_call_wait_seconds=_seconds(min(waiting.values(), default=None), g.at),
                    chats_waiting=chats_waiting,
                    longest_chat_wait_seconds=_seconds(oldest_chat, g.at),
                    agents=AgentCountsOut(**counts[w.code]),
                    today=_today(
                        period.windows.get(w.code, WindowFigures(w.code)),
                        period.chat_windows.get(w.code, ChatFigures(w.code)),
                    ),
                )
            )

        call_total = total({k: v for k, v in period.windows.items() if in_scope(k)})
        chats_total = chat_total({k: v for k, v in period.chat_windows.items() if in_scope(k)})
        trends = period.trends(None if scope.county_code is None else codes)
        return WallboardOut(
            at=g.at,
            day=g.at.astimezone(BUSINESS_TZ).date(),
            rules=RulesOut(
                service_level_seconds=self.figures.rules.service_level_seconds,
                short_abandon_seconds=self.figures.rules.short_abandon_seconds,
            ),
            windows=window_rows,
            total=_today(call_total, chats_total),
            agents=[self._agent_out(a, agent_states[a.user_id], g, period) for a in agents],
            sla=self._sla(g, scope),
            trends=TrendsOut(
                by_hour=list(trends.by_hour),
                by_category=trends.by_category,
                by_county=trends.by_county,
            ),
        )

    @staticmethod
    def _agent_state(agent: _AgentRow, live: LivePicture | None) -> tuple[AgentStateName, datetime]:
        """The state smeline wants (ready / paused / wrapup / disconnected),
        except that a ready agent whose phone is busy is on a call — which
        only Asterisk knows (the live picture)."""
        member: MemberState | None = None
        if live is not None and agent.interface is not None:
            member = live.member(agent.window_code, agent.interface)
        if (
            agent.state == "ready"
            and member is not None
            and (member.in_call or member.status in _ON_CALL)
        ):
            return "on_call", member.changed_at or agent.since
        state: AgentStateName = (
            agent.state  # type: ignore[assignment]
            if agent.state in ("ready", "paused", "wrapup", "disconnected")
            else "paused"
        )
        return state, agent.since

    def _agent_out(
        self,
        agent: _AgentRow,
        state: tuple[AgentStateName, datetime],
        g: Gathered,
        period: PeriodFigures,
    ) -> AgentOut:
        calls = period.agents.get(agent.user_id)
        return AgentOut(
            user_id=agent.user_id,
            name=agent.name,
            window_code=agent.window_code,
            state=state[0],
            reason=agent.reason if state[0] != "on_call" else None,
            since=state[1],
            handled=handled(calls, period.chat_agents.get(agent.user_id, 0)),
            missed=self.missed.today(agent.user_id),
            aht_seconds=calls.aht_seconds if calls is not None else None,
            chats_active=g.chats_active.get(agent.user_id, 0),
        )

    def _sla(self, g: Gathered, scope: Scope) -> SlaOut:
        counties = self._reference.data.counties
        by_county: list[SlaCountyOut] = []
        for code, county in counties.items():
            if not scope.has_county(code):
                continue
            by_county.append(
                SlaCountyOut(
                    county_code=code,
                    name=county.name,
                    warning=g.sla_counts.get((code, SlaState.WARNING.value), 0),
                    breached=g.sla_counts.get((code, SlaState.BREACHED.value), 0),
                )
            )
        counted = {k: v for k, v in g.sla_counts.items() if scope.has_county(k[0])}
        items = g.sla_items.get(scope, [])
        return SlaOut(
            warning=sum(v for (_, s), v in counted.items() if s == SlaState.WARNING.value),
            breached=sum(v for (_, s), v in counted.items() if s == SlaState.BREACHED.value),
            by_county=by_county,
            items=[
                SlaItemOut(
                    id=r.id,
                    number=r.number,
                    short_ref=short_ref(r.id),
                    subject=r.subject,
                    county_code=r.county_code,
                    state=r.status,
                    sla_state=r.sla_state,
                    due_at=r.due_at,
                    assignee_name=r.assignee_name,
                )
                for r in items
            ],
        )
