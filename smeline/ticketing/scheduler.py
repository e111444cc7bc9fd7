"""The SLA scheduler: raises warnings and breaches on time, escalates, archives.

It is a periodic, idempotent evaluator:

* each tick looks only at rows whose ``next_sla_check_at`` has come (partial
  index), so its cost follows what is due, not how many work orders are open;
* on PostgreSQL a transaction-level advisory lock lets exactly one process
  evaluate at a time; rows are also taken ``FOR UPDATE SKIP LOCKED``;
* every warning or breach is an ``sla_events`` row with a unique key and every
  escalation a unique (event, user) row, so nothing is raised or escalated twice,
  whatever the number of processes or restarts;
* after downtime the first tick raises whatever fell due meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import Role, User
from smeline.bus import EventBus
from smeline.db import dialect_insert, utcnow
from smeline.notifications.services import Outbox
from smeline.notifications.templates import CLOCK_NAMES
from smeline.ticketing import events as ev
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.models import (
    Escalation,
    Handoff,
    SlaEvent,
    Ticket,
    TicketHistory,
    TicketStatus,
)
from smeline.ticketing.services import INSERT_HISTORY, TicketService
from smeline.ticketing.sla import DueEvent, Level, SlaRules

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _per_user(key: str) -> Callable[[User], str]:
    return lambda user: f"{key}:u{user.id}"


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# Arbitrary constant shared by every smeline process: "the SLA evaluator".
ADVISORY_LOCK_KEY = 0x5E1A_0001


@dataclass(frozen=True)
class _Due:
    ticket: Ticket
    handoff: Handoff | None
    event: DueEvent
    key: str


@dataclass
class TickResult:
    locked_out: bool = False
    raised: int = 0
    escalations: int = 0
    archived: int = 0
    events: list[tuple[str, BaseModel]] = field(default_factory=list)
    recipient_cache: dict[str, list[User]] = field(default_factory=dict, repr=False)
    due: list[_Due] = field(default_factory=list, repr=False)
    full: bool = False  # a batch limit was reached: more may be due right now


class SlaScheduler:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        tickets: TicketService,
        rules: SlaRules,
        calendars: CalendarService,
        outbox: Outbox,
        bus: EventBus,
        escalate_to_roles: Sequence[str],
        archive_after_days: int,
        tick_seconds: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._tickets = tickets
        self._rules = rules
        self._calendars = calendars
        self._outbox = outbox
        self._bus = bus
        self._escalate_to = [Role(r) for r in escalate_to_roles]
        self._archive_after = timedelta(days=archive_after_days) if archive_after_days else None
        self._tick_seconds = tick_seconds
        self._batch = batch_size
        self._local_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # --- loop -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sla-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            backlog = False
            try:
                await self._calendars.refresh_now_and_then()
                backlog = (await self.tick()).full
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("SLA scheduler tick failed")
            if backlog:
                # Catching up (after downtime): small transactions back to back, so row
                # locks stay short for agents working on the same work orders.
                await asyncio.sleep(0)
                continue
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.05, self._tick_seconds - elapsed))

    # --- one tick -------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> TickResult:
        now = now or utcnow()
        async with self._local_lock, self._sessionmaker() as db:
            result = TickResult()
            postgres = db.get_bind().dialect.name == "postgresql"
            if postgres:
                got = await db.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
                )
                if not got:
                    await db.rollback()
                    return TickResult(locked_out=True)
            # Changes to the rows are written once at commit (in batches), not flushed
            # before every statement of every raised event.
            with db.no_autoflush:
                await self._tickets_due(db, now, result, postgres)
                await self._handoffs_due(db, now, result, postgres)
                await self._raise_all(db, now, result)
                await self._archive(db, now, result, postgres)
            await db.commit()
        for name, payload in result.events:
            try:
                await self._bus.publish(name, payload)
            except Exception:
                logger.exception("could not publish %s", name)
        if result.raised or result.archived:
            logger.info(
                "SLA tick raised=%s escalations=%s archived=%s",
                result.raised,
                result.escalations,
                result.archived,
            )
        return result

    async def _tickets_due(
        self, db: AsyncSession, now: datetime, result: TickResult, postgres: bool
    ) -> None:
        stmt = (
            select(Ticket)
            .where(Ticket.next_sla_check_at.is_not(None), Ticket.next_sla_check_at <= now)
            .order_by(Ticket.next_sla_check_at)
            .limit(self._batch)
        )
        if postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = (await db.scalars(stmt)).all()
        result.full = result.full or len(rows) >= self._batch
        for ticket in rows:
            for due in self._rules.take_due(ticket, now):
                key = f"t{ticket.id}:{due.clock.value}:{due.level.value}"
                result.due.append(_Due(ticket, None, due, key))

    async def _handoffs_due(
        self, db: AsyncSession, now: datetime, result: TickResult, postgres: bool
    ) -> None:
        stmt = (
            select(Handoff)
            .where(Handoff.next_check_at.is_not(None), Handoff.next_check_at <= now)
            .order_by(Handoff.next_check_at)
            .limit(self._batch)
        )
        if postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = (await db.scalars(stmt)).all()
        result.full = result.full or len(rows) >= self._batch
        for handoff in rows:
            dues = self._rules.take_due_handoff(handoff, now)
            if not dues:
                continue
            ticket = await db.get(Ticket, handoff.ticket_id)
            if ticket is None:
                continue
            for due in dues:
                key = f"h{handoff.id}:{due.level.value}"
                result.due.append(_Due(ticket, handoff, due, key))

    async def _recipients(
        self,
        db: AsyncSession,
        ticket: Ticket,
        handoff: Handoff | None,
        level: Level,
        cache: dict[str, list[User]],
        known: dict[int, User],
    ) -> tuple[list[User], list[User]]:
        """(people told, people escalated to). A breach escalates; a warning only tells."""
        told: dict[int, User] = {}
        for user_id in (
            handoff.to_user_id if handoff else ticket.assignee_id,
            handoff.from_user_id if handoff and level is Level.BREACH else None,
        ):
            if user_id is not None:
                user = known.get(user_id)
                if user is not None and user.active:
                    told[user.id] = user
        escalated: list[User] = []
        if level is Level.BREACH or not told:
            for user in await self._escalation_users(db, ticket.county_code, cache):
                if level is Level.BREACH:
                    escalated.append(user)
                told.setdefault(user.id, user)
        return list(told.values()), escalated

    async def _escalation_users(
        self, db: AsyncSession, county_code: str, cache: dict[str, list[User]]
    ) -> list[User]:
        """Escalation recipients of a county. All of them are read once per tick (a
        catch-up tick after downtime raises many events for the same few people)."""
        if not cache:
            everyone = await db.scalars(
                select(User).where(
                    User.role.in_([r.value for r in self._escalate_to]),
                    User.active.is_(True),
                )
            )
            cache[""] = []  # marks the cache as filled
            city_wide: list[User] = []
            by_county: dict[str, list[User]] = {}
            for user in everyone:
                if user.role == Role.COUNTY_ADMIN.value:
                    by_county.setdefault(user.county_code or "", []).append(user)
                else:
                    city_wide.append(user)
            cache.update({county: users + city_wide for county, users in by_county.items()})
            cache["*"] = city_wide
        return cache.get(county_code, cache["*"])

    async def _raise_all(self, db: AsyncSession, now: datetime, result: TickResult) -> None:
        """Raises every event of the tick with a handful of statements, whatever their
        number: a tick after downtime may have hundreds."""
        if not result.due:
            return
        insert = dialect_insert(db)
        raised: dict[str, int] = {}
        for chunk in _chunks(result.due, 500):
            rows = await db.execute(
                insert(SlaEvent)
                .values(
                    [
                        {
                            "key": d.key,
                            "ticket_id": d.ticket.id,
                            "handoff_id": d.handoff.id if d.handoff else None,
                            "kind": f"{d.event.clock.value}_{d.event.level.value}",
                            "due_at": d.event.due_at,
                            "raised_at": now,
                        }
                        for d in chunk
                    ]
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(SlaEvent.id, SlaEvent.key)
            )
            raised.update({key: event_id for event_id, key in rows.all()})
        # Everyone the events may tell, loaded at once (then found in the session's map).
        people = {
            user_id
            for d in result.due
            for user_id in (
                d.ticket.assignee_id,
                d.handoff.to_user_id if d.handoff else None,
                d.handoff.from_user_id if d.handoff else None,
            )
            if user_id is not None
        }
        known: dict[int, User] = {}
        if people:
            known = {u.id: u for u in await db.scalars(select(User).where(User.id.in_(people)))}
        history: list[dict[str, Any]] = []
        escalations: list[dict[str, Any]] = []
        notifications: list[dict[str, Any]] = []
        for d in result.due:
            event_id = raised.get(d.key)
            if event_id is None:
                continue  # raised before (another process, or before a restart)
            ticket, due = d.ticket, d.event
            result.raised += 1
            history.append(
                {
                    "ticket_id": ticket.id,
                    "at": now,
                    "actor_id": None,
                    "action": f"sla_{due.level.value}",
                    "field": due.clock.value,
                    "to_value": due.due_at.isoformat(),
                }
            )
            told, escalated = await self._recipients(
                db, ticket, d.handoff, due.level, result.recipient_cache, known
            )
            escalations += [
                {
                    "sla_event_id": event_id,
                    "ticket_id": ticket.id,
                    "to_user_id": user.id,
                    "created_at": now,
                }
                for user in escalated
            ]
            template = "ticket_sla_breached" if due.level is Level.BREACH else "ticket_sla_warning"
            params = {
                "number": ticket.number,
                "subject": ticket.subject[:60],
                "clock": CLOCK_NAMES[due.clock.value],
                "due_at": TicketService.local_text(due.due_at),
            }
            notifications += self._outbox.rows(
                recipients=told,
                template_id=template,
                params=params,
                dedupe_key=_per_user(d.key),
                now=now,
            )
            name = ev.TICKET_SLA_BREACHED if due.level is Level.BREACH else ev.TICKET_SLA_WARNING
            result.events.append(
                (
                    name,
                    ev.TicketSlaEvent(
                        ticket_id=ticket.id,
                        number=ticket.number,
                        status=ticket.status,
                        priority=ticket.priority,
                        category_code=ticket.category_code,
                        county_code=ticket.county_code,
                        window_code=ticket.window_code,
                        assignee_id=ticket.assignee_id,
                        sla_state=ticket.sla_state,
                        actor_id=None,
                        resolution_due_at=ticket.resolution_due_at,
                        clock=due.clock.value,
                        due_at=due.due_at,
                        handoff_id=d.handoff.id if d.handoff else None,
                        escalated_to=[u.id for u in escalated],
                    ),
                )
            )
        if history:
            await db.execute(INSERT_HISTORY, history)
        for batch in _chunks(escalations, 1000):
            inserted = await db.execute(
                insert(Escalation)
                .values(batch)
                .on_conflict_do_nothing(index_elements=["sla_event_id", "to_user_id"])
                .returning(Escalation.id)
            )
            result.escalations += len(inserted.all())
        await self._outbox.insert_rows(db, notifications)

    async def _archive(
        self, db: AsyncSession, now: datetime, result: TickResult, postgres: bool
    ) -> None:
        if self._archive_after is None:
            return
        cutoff = now - self._archive_after
        stmt = (
            select(Ticket)
            .where(Ticket.status == TicketStatus.CLOSED.value, Ticket.closed_at <= cutoff)
            .order_by(Ticket.closed_at)
            .limit(self._batch)
        )
        if postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        for ticket in (await db.scalars(stmt)).all():
            ticket.status = TicketStatus.ARCHIVED.value
            ticket.archived_at = now
            ticket.updated_at = now
            db.add(
                TicketHistory(
                    ticket_id=ticket.id,
                    at=now,
                    actor_id=None,
                    action="status_changed",
                    field="status",
                    from_value=TicketStatus.CLOSED.value,
                    to_value=TicketStatus.ARCHIVED.value,
                    note="auto-archive",
                )
            )
            result.archived += 1
