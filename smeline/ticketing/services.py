"""Work-order domain logic: create, read with scoping, change, transitions, comments, shares.

Every change writes append-only history rows in the same transaction, and the
events that the change causes are published on the bus after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, Table, and_, exists, false, insert, or_, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import Role, User
from smeline.auth.permissions import Permission, Principal
from smeline.bus import EventBus
from smeline.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from smeline.masking import mask_phone
from smeline.notifications.services import Outbox
from smeline.reference.services import ReferenceService
from smeline.ticketing import events as ev
from smeline.ticketing.calendar import BUSINESS_TZ, BusinessCalendar
from smeline.ticketing.calendar_service import CalendarService, parse_hours
from smeline.ticketing.models import (
    CommentKind,
    Handoff,
    ServiceMode,
    Source,
    Ticket,
    TicketComment,
    TicketDayCounter,
    TicketHistory,
    TicketShare,
)
from smeline.ticketing.models import TicketStatus as S
from smeline.ticketing.numbering import day_key, format_number, short_ref, ticket_id_from_ref
from smeline.ticketing.policies import PolicyBook
from smeline.ticketing.schemas import (
    ActionIn,
    CommentIn,
    HandoffOut,
    ShareIn,
    SlaClockOut,
    SlaOut,
    TicketCreateIn,
    TicketListQuery,
    TicketOut,
    TicketSummaryOut,
    TicketUpdateIn,
)
from smeline.ticketing.sla import SlaRules
from smeline.ticketing.state_machine import (
    ASSIGNABLE_ROLES,
    TRANSFER_TARGET_ROLES,
    TRANSITIONS,
    Action,
)

logger = logging.getLogger(__name__)

# 服务方式 that follows from where a request came in, unless the agent says otherwise.
SOURCE_CHANNEL = {
    Source.PHONE: "phone",
    Source.VOICEMAIL: "phone",
    Source.WEB_CHAT: "online",
    Source.PORTAL: "online",
    Source.EMAIL: "online",
    Source.COUNTER: "counter",
}
SOURCE_MODE = {
    Source.COUNTER: ServiceMode.OFFLINE,
}

_DESK_ROLES = {Role.ADMIN, Role.SUPERVISOR, Role.COUNTY_ADMIN, Role.AGENT}
_EDITABLE_FIELDS = (
    "subject",
    "description",
    "category_code",
    "channel_code",
    "service_mode",
    "priority",
    "enterprise_name",
    "credit_code",
    "contact_name",
    "contact_phone",
    "contact_email",
    "links",
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One round trip: asynchronous commit for this transaction, and the day's next number.
_PG_NEXT_NUMBER = text(
    "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO ticket_day_counters (day, last) SELECT :day, 1 FROM async_commit "
    "ON CONFLICT (day) DO UPDATE SET last = ticket_day_counters.last + 1 RETURNING last"
)


# Table-level statements: executed with a parameter dict they compile once, and skip the
# ORM's per-value coercion that ``insert(Ticket).values(...)`` goes through.
_TICKETS = cast(Table, Ticket.__table__)
_INSERT_TICKET = insert(_TICKETS).returning(_TICKETS.c.id)
INSERT_HISTORY = insert(cast(Table, TicketHistory.__table__))
_HISTORY_BUFFER = "smeline.ticket_history"

_TICKET_COLUMNS = tuple(
    (c.key, c.default is not None) for c in Ticket.__table__.columns if c.key != "id"
)


def _column_values(ticket: Ticket) -> dict[str, Any]:
    """The row of a transient work order; unset columns with a default get the default."""
    values = {}
    for key, has_default in _TICKET_COLUMNS:
        value = getattr(ticket, key)
        if value is not None or not has_default:
            values[key] = value
    return values


def _parse_cursor(cursor: str, by_date: bool) -> int | tuple[datetime, int]:
    """``123`` (id order) or ``d<microseconds since epoch>_<id>`` (date order)."""
    try:
        if by_date and cursor.startswith("d"):
            micros, _, ident = cursor[1:].partition("_")
            if micros.isascii() and micros.isdigit() and ident.isascii() and ident.isdigit():
                if len(micros) <= 17 and len(ident) <= 18:
                    return _EPOCH + timedelta(microseconds=int(micros)), int(ident)
        elif not by_date and cursor.isascii() and cursor.isdigit() and len(cursor) <= 18:
            return int(cursor)
    except (ValueError, OverflowError, OSError):
        pass
    raise ValidationFailed("Bad cursor", details=[field_error("cursor", "invalid", "not a cursor")])


@dataclass
class Change:
    """What one service call did: the history to write and the events to publish."""

    events: list[tuple[str, BaseModel]] = field(default_factory=list)


class TicketService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        reference: ReferenceService,
        calendars: CalendarService,
        rules: SlaRules,
        outbox: Outbox,
        bus: EventBus,
        policies: PolicyBook,
        number_prefix: str = "MZ",
    ) -> None:
        self._sessionmaker = sessionmaker
        self._reference = reference
        self._calendars = calendars
        self._rules = rules
        self._outbox = outbox
        self._bus = bus
        self._prefix = number_prefix
        self._policies = policies

    # --- helpers --------------------------------------------------------------------

    def calendar_for(self, window_code: str) -> BusinessCalendar:
        window = self._reference.data.windows.get(window_code)
        hours = parse_hours(window.hours if window else None, self._calendars.default_hours)
        return self._calendars.calendar(hours)

    def _visibility(self, p: Principal) -> ColumnElement[bool] | None:
        """None: sees everything. Otherwise the SQL condition of what ``p`` may see."""
        if p.can(Permission.TICKETS_READ_ALL):
            return None
        shared_with_me = exists().where(
            TicketShare.ticket_id == Ticket.id,
            or_(
                TicketShare.user_id == p.user_id,
                and_(TicketShare.county_code.is_not(None), TicketShare.county_code == p.county_code)
                if p.county_code
                else false(),
            ),
        )
        mine = or_(
            Ticket.assignee_id == p.user_id,
            Ticket.created_by_id == p.user_id,
            shared_with_me,
        )
        if p.role is Role.COUNTY_ADMIN and p.county_code:
            return or_(Ticket.county_code == p.county_code, mine)
        if p.role is Role.AGENT and p.window_code:
            return or_(
                Ticket.window_code == p.window_code,
                Ticket.county_code == p.county_code,
                mine,
            )
        if p.role in (Role.EXPERT, Role.AGENCY):
            handed_to_me = exists().where(
                Handoff.ticket_id == Ticket.id, Handoff.to_user_id == p.user_id
            )
            return or_(mine, handed_to_me)
        return false()

    async def _load(
        self, db: AsyncSession, p: Principal, ticket_id: int, *, for_update: bool = False
    ) -> Ticket:
        p.require(Permission.TICKETS_READ)
        stmt: Select[Ticket] = select(Ticket).where(Ticket.id == ticket_id)
        condition = self._visibility(p)
        if condition is not None:
            stmt = stmt.where(condition)
        if for_update:
            stmt = stmt.with_for_update(of=Ticket)
        ticket = await db.scalar(stmt)
        if ticket is None:
            raise NotFound("No such work order", error_id="ticket_not_found")
        return ticket

    @staticmethod
    def _history(
        db: AsyncSession,
        ticket: Ticket,
        actor_id: int | None,
        action: str,
        now: datetime,
        *,
        field: str | None = None,
        from_value: Any = None,
        to_value: Any = None,
        note: str | None = None,
    ) -> None:
        # Buffered and written with one executemany at commit (``_commit``): cheaper than
        # the ORM's unit of work for rows that are only ever inserted.
        rows: list[dict[str, Any]] = db.info.setdefault(_HISTORY_BUFFER, [])
        rows.append(
            {
                "ticket_id": ticket.id,
                "at": now,
                "actor_id": actor_id,
                "action": action,
                "field": field,
                "from_value": None if from_value is None else str(from_value),
                "to_value": None if to_value is None else str(to_value),
                "note": note,
            }
        )

    @staticmethod
    async def _commit(db: AsyncSession) -> None:
        rows = db.info.pop(_HISTORY_BUFFER, None)
        if rows:
            # One row (most changes) as a plain execute: asyncpg's executemany path
            # costs noticeably more for a single row.
            await db.execute(INSERT_HISTORY, rows[0] if len(rows) == 1 else rows)
        await db.commit()

    async def _next_number(self, now: datetime) -> str:
        """The day's next number, taken in a transaction of its own.

        Inside the create transaction the day's counter row would stay locked until
        that commit, and every concurrent create would queue behind it. Alone, it is
        locked for one statement. On PostgreSQL that commit is asynchronous:
        the work order's own (synchronous) commit comes later in the WAL and flushes
        it, and if the work order never commits, a lost counter only means its
        unused number is handed out again. A failed create leaves a gap.
        """
        day = day_key(now, BUSINESS_TZ)
        async with self._sessionmaker() as db:
            if db.get_bind().dialect.name == "postgresql":
                # Autocommit: PostgreSQL commits inside the statement, so the row lock is
                # never held across a round trip (a busy event loop may take milliseconds
                # to send a COMMIT, and every other create would wait that long).
                conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                seq = (await conn.execute(_PG_NEXT_NUMBER, {"day": day})).scalar_one()
                return format_number(self._prefix, day, seq)
            stmt = (
                sqlite.insert(TicketDayCounter)
                .values(day=day, last=1)
                .on_conflict_do_update(
                    index_elements=["day"], set_={"last": TicketDayCounter.last + 1}
                )
                .returning(TicketDayCounter.last)
            )
            seq = (await db.execute(stmt)).scalar_one()
            await db.commit()
        return format_number(self._prefix, day, seq)

    def _check_codes(
        self,
        *,
        category: str | None = None,
        channel: str | None = None,
        county: str | None = None,
        window: str | None = None,
    ) -> None:
        ref = self._reference.data
        for name, value, table in (
            ("category_code", category, ref.categories),
            ("channel_code", channel, ref.channels),
            ("county_code", county, ref.counties),
            ("window_code", window, ref.windows),
        ):
            if value is not None and value not in table:
                raise ValidationFailed(
                    f"Unknown {name}", details=[field_error(name, "unknown", f"no such {name}")]
                )

    async def _assignable(self, db: AsyncSession, user_id: int) -> User:
        user = await db.get(User, user_id)
        if user is None or not user.active or Role(user.role) not in ASSIGNABLE_ROLES:
            raise ValidationFailed(
                "Cannot assign to that user",
                details=[field_error("assignee_id", "not_assignable", "no such active desk user")],
            )
        return user

    def _event(self, ticket: Ticket, actor_id: int | None) -> dict[str, Any]:
        return {
            "ticket_id": ticket.id,
            "number": ticket.number,
            "status": ticket.status,
            "priority": ticket.priority,
            "category_code": ticket.category_code,
            "county_code": ticket.county_code,
            "window_code": ticket.window_code,
            "assignee_id": ticket.assignee_id,
            "sla_state": ticket.sla_state,
            "actor_id": actor_id,
            "resolution_due_at": ticket.resolution_due_at,
        }

    async def _publish(self, change: Change) -> None:
        for name, payload in change.events:
            try:
                await self._bus.publish(name, payload)
            except Exception:
                # The change is committed; a bus hiccup must not turn it into an error.
                logger.exception("could not publish %s", name)

    def _notify_params(self, ticket: Ticket, **extra: str) -> dict[str, str]:
        return {"number": ticket.number, "subject": ticket.subject[:60], **extra}

    @staticmethod
    def local_text(at: datetime | None) -> str:
        return "" if at is None else at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")

    # --- create ---------------------------------------------------------------------

    async def create(
        self,
        p: Principal,
        data: TicketCreateIn,
        *,
        now: datetime,
        first_response_due: datetime | None = None,
    ) -> TicketOut:
        """``first_response_due`` brings the first-response deadline forward
        (a voicemail's callback is due the next business morning)."""
        p.require(Permission.TICKETS_CREATE)
        await self._calendars.refresh_now_and_then()
        ref = self._reference.data
        self._check_codes(
            category=data.category_code,
            channel=data.channel_code,
            county=data.county_code,
            window=data.window_code,
        )
        if data.window_code:
            window_code = data.window_code
        elif p.window_code:
            window_code = p.window_code
        elif data.county_code:
            window_code = ref.window_for_county(data.county_code).code
        else:
            window_code = "city"
        county_code = data.county_code or ref.windows[window_code].county_code
        if p.role is Role.COUNTY_ADMIN and county_code != p.county_code:
            raise Forbidden(
                "A county admin opens work orders for their own county",
                error_id="county_scope",
                details={"county_code": county_code},
            )
        await self._policies.refresh_now_and_then()
        assignee: User | None = None
        if data.assignee_id is not None:
            async with self._sessionmaker() as db:
                assignee = await self._assignable(db, data.assignee_id)
        policy_id, targets = self._policies.resolve(data.category_code, data.priority.value)
        change = Change()
        # Before the create transaction, so a create holds one connection at a time;
        # after validation, so a rejected request leaves no gap in the numbers.
        number = await self._next_number(now)
        async with self._sessionmaker() as db:
            ticket = Ticket(
                number=number,
                status=S.NEW.value,
                priority=data.priority.value,
                source=data.source.value,
                channel_code=data.channel_code or SOURCE_CHANNEL[data.source],
                category_code=data.category_code,
                service_mode=(
                    data.service_mode or SOURCE_MODE.get(data.source, ServiceMode.ONLINE)
                ).value,
                county_code=county_code,
                window_code=window_code,
                subject=data.subject,
                description=data.description,
                enterprise_name=data.enterprise_name,
                credit_code=data.credit_code,
                contact_name=data.contact_name,
                contact_phone=data.contact_phone,
                contact_email=data.contact_email,
                links=[link.model_dump() for link in data.links],
                created_by_id=p.user_id,
                created_at=now,
                updated_at=now,
            )
            ticket.sla_policy_id = policy_id
            if assignee is not None:
                ticket.assignee_id = assignee.id
                ticket.status = S.ASSIGNED.value
            self._rules.start(ticket, targets, self.calendar_for(window_code), now)
            if first_response_due is not None:
                self._rules.bring_first_response_forward(ticket, first_response_due, now)
            # A plain INSERT: the ORM's unit of work costs more than the rest of a create,
            # and a new row has nothing for it to track. The object stays transient.
            ticket.id = (await db.execute(_INSERT_TICKET, _column_values(ticket))).scalar_one()
            self._history(db, ticket, p.user_id, "created", now, to_value=S.NEW.value)
            change.events.append(
                (ev.TICKET_CREATED, ev.TicketEvent(**self._event(ticket, p.user_id)))
            )
            if assignee is not None:
                await self._record_assignment(
                    db, ticket, assignee, p.user_id, now, change, None, S.NEW.value, note=None
                )
            await self._commit(db)
            # A new work order has no handoff: no need to ask the database.
            out = self.to_out(ticket, p, now)
        await self._publish(change)
        logger.info(
            "ticket created id=%s number=%s county=%s window=%s by user_id=%s",
            ticket.id,
            ticket.number,
            ticket.county_code,
            ticket.window_code,
            p.user_id,
        )
        return out

    async def _assign(
        self,
        db: AsyncSession,
        ticket: Ticket,
        assignee: User,
        actor_id: int | None,
        now: datetime,
        change: Change,
        *,
        note: str | None,
    ) -> None:
        previous_status = ticket.status
        previous = ticket.assignee_id
        ticket.assignee_id = assignee.id
        ticket.status = S.ASSIGNED.value
        ticket.updated_at = now
        await self._record_assignment(
            db, ticket, assignee, actor_id, now, change, previous, previous_status, note=note
        )

    async def _record_assignment(
        self,
        db: AsyncSession,
        ticket: Ticket,
        assignee: User,
        actor_id: int | None,
        now: datetime,
        change: Change,
        previous: int | None,
        previous_status: str,
        *,
        note: str | None,
    ) -> None:
        """History, notification and event of an assignment already made on ``ticket``."""
        self._history(
            db,
            ticket,
            actor_id,
            "assigned",
            now,
            field="assignee_id",
            from_value=previous,
            to_value=assignee.id,
            note=note,
        )
        if previous_status != S.ASSIGNED.value:
            self._history(
                db,
                ticket,
                actor_id,
                "status_changed",
                now,
                field="status",
                from_value=previous_status,
                to_value=S.ASSIGNED.value,
            )
        await self._outbox.enqueue(
            db,
            recipient=assignee,
            template_id="ticket_assigned",
            params=self._notify_params(ticket),
            dedupe_key=f"t{ticket.id}:assigned:{assignee.id}:{now.timestamp()}",
            now=now,
        )
        change.events.append((ev.TICKET_ASSIGNED, ev.TicketEvent(**self._event(ticket, actor_id))))

    # --- read -----------------------------------------------------------------------

    async def get(self, p: Principal, ticket_id: int, *, now: datetime) -> TicketOut:
        async with self._sessionmaker() as db:
            ticket = await self._load(db, p, ticket_id)
            return await self._out(db, ticket, p, now)

    async def get_by_ref(self, p: Principal, ref: str, *, now: datetime) -> TicketOut:
        ticket_id = ticket_id_from_ref(ref)
        if ticket_id is None:
            raise NotFound("No such work order", error_id="ticket_not_found")
        return await self.get(p, ticket_id, now=now)

    async def _out(self, db: AsyncSession, t: Ticket, p: Principal, now: datetime) -> TicketOut:
        handoff = await db.scalar(
            select(Handoff)
            .where(Handoff.ticket_id == t.id, Handoff.completed_at.is_(None))
            .order_by(Handoff.id.desc())
            .limit(1)
        )
        return self.to_out(t, p, now, handoff)

    def to_out(
        self, t: Ticket, p: Principal, now: datetime, handoff: Handoff | None = None
    ) -> TicketOut:
        cal = self.calendar_for(t.window_code)
        elapsed = t.resolution_elapsed_s / 60
        if t.resolution_running_since is not None:
            elapsed += cal.business_minutes_between(t.resolution_running_since, now)
        paused = t.resolution_running_since is None and t.status == S.WAITING_CUSTOMER.value
        sla = SlaOut(
            state=self._rules.state(t, now),
            first_response=SlaClockOut(
                target_minutes=t.first_response_target_min,
                due_at=t.first_response_due_at,
                warning_at=t.first_response_warning_at,
                met_at=t.first_response_at,
                breached=t.first_response_breached,
            ),
            resolution=SlaClockOut(
                target_minutes=t.resolution_target_min,
                due_at=t.resolution_due_at,
                warning_at=t.resolution_warning_at,
                met_at=t.resolved_at if t.status in (S.RESOLVED, S.CLOSED, S.ARCHIVED) else None,
                paused=paused,
                breached=t.resolution_breached,
                elapsed_business_minutes=round(elapsed, 2),
            ),
            calendar_warning=self._calendars.missing_year_warning(
                t.created_at, t.resolution_due_at or t.first_response_due_at
            ),
        )
        phone = t.contact_phone if p.can(Permission.PHONE_NUMBERS) else mask_phone(t.contact_phone)
        return TicketOut(
            id=t.id,
            number=t.number,
            short_ref=short_ref(t.id),
            status=S(t.status),
            priority=t.priority,
            source=t.source,
            channel_code=t.channel_code,
            category_code=t.category_code,
            service_mode=t.service_mode,
            county_code=t.county_code,
            window_code=t.window_code,
            subject=t.subject,
            description=t.description,
            enterprise_name=t.enterprise_name,
            credit_code=t.credit_code,
            contact_name=t.contact_name,
            contact_phone=phone,
            contact_email=t.contact_email,
            links=t.links,
            created_by_id=t.created_by_id,
            assignee_id=t.assignee_id,
            created_at=t.created_at,
            updated_at=t.updated_at,
            resolved_at=t.resolved_at,
            closed_at=t.closed_at,
            archived_at=t.archived_at,
            resolution=t.resolution,
            sla=sla,
            handoff=HandoffOut(
                id=handoff.id,
                from_user_id=handoff.from_user_id,
                to_user_id=handoff.to_user_id,
                note=handoff.note,
                created_at=handoff.created_at,
                target_minutes=handoff.target_min,
                due_at=handoff.due_at,
                completed_at=handoff.completed_at,
                outcome=handoff.outcome,
                sla_state=self._rules.handoff_state(handoff, now),
            )
            if handoff
            else None,
        )

    _SUMMARY_COLUMNS = (
        Ticket.id,
        Ticket.number,
        Ticket.status,
        Ticket.priority,
        Ticket.category_code,
        Ticket.county_code,
        Ticket.window_code,
        Ticket.subject,
        Ticket.enterprise_name,
        Ticket.contact_phone,
        Ticket.assignee_id,
        Ticket.created_at,
        Ticket.sla_state,
        Ticket.first_response_due_at,
        Ticket.resolution_due_at,
    )

    async def list_page(
        self, p: Principal, q: TicketListQuery
    ) -> tuple[list[TicketSummaryOut], str | None]:
        """Newest first. Keyset pagination: on ids, or on (created_at, id) when a
        creation-date range is given, so that PostgreSQL walks the date index instead
        of scanning ids backwards through every row outside the range."""
        p.require(Permission.TICKETS_READ)
        # Only the columns the list shows: loading whole rows costs twice the time.
        stmt = select(*self._SUMMARY_COLUMNS)
        condition = self._visibility(p)
        if condition is not None:
            stmt = stmt.where(condition)
        if q.status is not None:
            statuses = q.status if isinstance(q.status, list) else [q.status]
            stmt = stmt.where(Ticket.status.in_([s.value for s in statuses]))
        for column, value in (
            (Ticket.county_code, q.county_code),
            (Ticket.window_code, q.window_code),
            (Ticket.category_code, q.category_code),
            (Ticket.assignee_id, q.assignee_id),
            (Ticket.priority, q.priority.value if q.priority else None),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if q.due_before is not None:
            stmt = stmt.where(Ticket.resolution_due_at < q.due_before)
        if q.created_from is not None:
            start = datetime.combine(q.created_from, time(0), BUSINESS_TZ)
            stmt = stmt.where(Ticket.created_at >= start.astimezone(UTC))
        if q.created_to is not None:
            end = datetime.combine(q.created_to, time(0), BUSINESS_TZ) + timedelta(days=1)
            stmt = stmt.where(Ticket.created_at < end.astimezone(UTC))
        if q.q:
            term = q.q.strip()
            ref_id = ticket_id_from_ref(term)
            options: list[ColumnElement[bool]] = [Ticket.number == term.upper()]
            if ref_id is not None:
                options.append(Ticket.id == ref_id)
            if term.replace("+", "").isdigit() and p.can(Permission.PHONE_NUMBERS):
                options.append(Ticket.contact_phone == term)
            stmt = stmt.where(or_(*options))
        by_date = q.created_from is not None or q.created_to is not None
        if q.cursor is not None:
            after = _parse_cursor(q.cursor, by_date)
            if isinstance(after, tuple):
                stmt = stmt.where(
                    or_(
                        Ticket.created_at < after[0],
                        and_(Ticket.created_at == after[0], Ticket.id < after[1]),
                    )
                )
            else:
                stmt = stmt.where(Ticket.id < after)
        if by_date:
            if q.sla_state is not None:
                stmt = stmt.where(Ticket.sla_state == q.sla_state.value)
            stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        elif q.sla_state is not None:
            # Written as a range on purpose. With ``sla_state = 'breached'`` PostgreSQL
            # expects a third of all rows to match and walks the primary key backwards,
            # but breaches cluster in old work orders: it read 90,000 rows for 50 (100 ms).
            # A range cannot give id order without (sla_state, id), so that index is used
            # and 50 rows cost 50 index entries (under 1 ms).
            state = q.sla_state.value
            stmt = stmt.where(Ticket.sla_state >= state, Ticket.sla_state <= state)
            stmt = stmt.order_by(Ticket.sla_state.desc(), Ticket.id.desc())
        else:
            stmt = stmt.order_by(Ticket.id.desc())
        stmt = stmt.limit(q.limit + 1)
        async with self._sessionmaker() as db:
            rows = list((await db.execute(stmt)).all())
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        show_phone = p.can(Permission.PHONE_NUMBERS)
        items = [
            TicketSummaryOut(
                id=t.id,
                number=t.number,
                short_ref=short_ref(t.id),
                status=S(t.status),
                priority=t.priority,
                category_code=t.category_code,
                county_code=t.county_code,
                window_code=t.window_code,
                subject=t.subject,
                enterprise_name=t.enterprise_name,
                contact_phone=t.contact_phone if show_phone else mask_phone(t.contact_phone),
                assignee_id=t.assignee_id,
                created_at=t.created_at,
                sla_state=t.sla_state,
                first_response_due_at=t.first_response_due_at,
                resolution_due_at=t.resolution_due_at,
            )
            for t in rows
        ]
        cursor = None
        if more and rows:
            last = rows[-1]
            cursor = (
                f"d{(last.created_at - _EPOCH) // timedelta(microseconds=1)}_{last.id}"
                if by_date
                else str(last.id)
            )
        return items, cursor

    async def history(self, p: Principal, ticket_id: int) -> list[TicketHistory]:
        async with self._sessionmaker() as db:
            await self._load(db, p, ticket_id)
            return list(
                await db.scalars(
                    select(TicketHistory)
                    .where(TicketHistory.ticket_id == ticket_id)
                    .order_by(TicketHistory.id)
                )
            )

    async def comments(self, p: Principal, ticket_id: int) -> list[TicketComment]:
        async with self._sessionmaker() as db:
            await self._load(db, p, ticket_id)
            return list(
                await db.scalars(
                    select(TicketComment)
                    .where(TicketComment.ticket_id == ticket_id)
                    .order_by(TicketComment.id)
                )
            )

    # --- change ---------------------------------------------------------------------

    def _require_handler(self, p: Principal, ticket: Ticket) -> None:
        """Experts and agencies work only on what is handed to them right now."""
        if p.role in (Role.EXPERT, Role.AGENCY) and ticket.assignee_id != p.user_id:
            raise Forbidden(
                "Only the current assignee may do this",
                error_id="not_assignee",
                details={"assignee_id": ticket.assignee_id},
            )

    async def update(
        self, p: Principal, ticket_id: int, data: TicketUpdateIn, *, now: datetime
    ) -> TicketOut:
        p.require(Permission.TICKETS_WORK)
        if p.role not in _DESK_ROLES:
            raise Forbidden(
                "Only desk roles change work-order fields", error_id="permission_denied"
            )
        fields = data.model_fields_set - {"note"}
        for name in fields:
            if getattr(data, name) is None and name in (
                "subject",
                "description",
                "category_code",
                "channel_code",
                "service_mode",
                "priority",
                "links",
            ):
                raise ValidationFailed(
                    "Field may not be null", details=[field_error(name, "null", "required")]
                )
        self._check_codes(category=data.category_code, channel=data.channel_code)
        change = Change()
        async with self._sessionmaker() as db:
            ticket = await self._load(db, p, ticket_id, for_update=True)
            if ticket.status in (S.CLOSED, S.ARCHIVED):
                raise Conflict(
                    f"A {ticket.status} work order cannot be edited; reopen it first",
                    error_id="ticket_not_editable",
                    details={"status": ticket.status},
                )
            retarget = False
            for name in _EDITABLE_FIELDS:
                if name not in fields:
                    continue
                value = getattr(data, name)
                if name == "links":
                    value = [link.model_dump() for link in value]
                elif hasattr(value, "value"):
                    value = value.value
                old = getattr(ticket, name)
                if old == value:
                    continue
                setattr(ticket, name, value)
                shown_old, shown_new = old, value
                if name == "contact_phone":
                    shown_old, shown_new = mask_phone(old), mask_phone(value)
                self._history(
                    db,
                    ticket,
                    p.user_id,
                    "updated",
                    now,
                    field=name,
                    from_value=shown_old,
                    to_value=shown_new,
                    note=data.note,
                )
                retarget = retarget or name in ("category_code", "priority")
            if retarget:
                await self._policies.refresh_now_and_then()
                policy_id, targets = self._policies.resolve(ticket.category_code, ticket.priority)
                ticket.sla_policy_id = policy_id
                self._rules.retarget(ticket, targets, self.calendar_for(ticket.window_code), now)
            ticket.updated_at = now
            change.events.append(
                (ev.TICKET_UPDATED, ev.TicketEvent(**self._event(ticket, p.user_id)))
            )
            await self._commit(db)
            out = await self._out(db, ticket, p, now)
        await self._publish(change)
        return out

    async def act(
        self, p: Principal, ticket_id: int, data: ActionIn, *, now: datetime
    ) -> TicketOut:
        p.require(Permission.TICKETS_WORK)
        action = data.action
        await self._calendars.refresh_now_and_then()
        transition = TRANSITIONS[action]
        if p.role not in transition.roles:
            raise Forbidden(
                f"Role {p.role.value} may not {action.value} a work order",
                error_id="transition_forbidden",
                details={"action": action.value, "role": p.role.value},
            )
        change = Change()
        async with self._sessionmaker() as db:
            ticket = await self._load(db, p, ticket_id, for_update=True)
            current = S(ticket.status)
            if current not in transition.sources:
                allowed = sorted(
                    a.value
                    for a, t in TRANSITIONS.items()
                    if current in t.sources and p.role in t.roles
                )
                raise Conflict(
                    f"Cannot {action.value} a work order that is {current.value}",
                    error_id="invalid_transition",
                    details={"status": current.value, "action": action.value, "allowed": allowed},
                )
            if action is not Action.RETURN:
                self._require_handler(p, ticket)
            await self._apply(db, p, ticket, current, data, now, change)
            ticket.updated_at = now
            change.events.append(
                (
                    ev.TICKET_TRANSITIONED,
                    ev.TicketTransitioned(
                        **self._event(ticket, p.user_id),
                        action=action.value,
                        from_status=current.value,
                    ),
                )
            )
            await self._commit(db)
            out = await self._out(db, ticket, p, now)
        await self._publish(change)
        logger.info(
            "ticket id=%s %s: %s -> %s by user_id=%s",
            ticket.id,
            action.value,
            current.value,
            ticket.status,
            p.user_id,
        )
        return out

    async def _open_handoff(self, db: AsyncSession, ticket: Ticket) -> Handoff | None:
        return await db.scalar(
            select(Handoff)
            .where(Handoff.ticket_id == ticket.id, Handoff.completed_at.is_(None))
            .order_by(Handoff.id.desc())
            .limit(1)
        )

    async def _close_handoff(
        self, db: AsyncSession, ticket: Ticket, outcome: str, actor: int | None, now: datetime
    ) -> Handoff | None:
        handoff = await self._open_handoff(db, ticket)
        if handoff is not None:
            self._rules.complete_handoff(handoff, outcome, now)
            self._history(
                db, ticket, actor, "handoff_completed", now, field="handoff", to_value=outcome
            )
        return handoff

    async def _apply(
        self,
        db: AsyncSession,
        p: Principal,
        ticket: Ticket,
        current: S,
        data: ActionIn,
        now: datetime,
        change: Change,
    ) -> None:
        action = data.action
        cal = self.calendar_for(ticket.window_code)
        target = TRANSITIONS[action].target

        def set_status(status: S) -> None:
            ticket.status = status.value
            self._history(
                db,
                ticket,
                p.user_id,
                "status_changed",
                now,
                field="status",
                from_value=current.value,
                to_value=status.value,
                note=data.note,
            )

        if action is Action.ASSIGN:
            if data.assignee_id is None:
                raise ValidationFailed(
                    "assign needs assignee_id",
                    details=[field_error("assignee_id", "missing", "required for assign")],
                )
            assignee = await self._assignable(db, data.assignee_id)
            if p.role is Role.AGENT and not self._same_window_or_self(p, assignee):
                raise Forbidden(
                    "An agent assigns only within their own window",
                    error_id="transition_forbidden",
                    details={"action": action.value},
                )
            await self._close_handoff(db, ticket, "reassigned", p.user_id, now)
            await self._assign(db, ticket, assignee, p.user_id, now, change, note=data.note)
            return

        if action is Action.TRANSFER:
            await self._transfer(db, p, ticket, data, now, change)
            return

        if action is Action.RETURN:
            handoff = await self._open_handoff(db, ticket)
            if handoff is None:
                raise Conflict(
                    "Nothing was handed over to return",
                    error_id="no_open_handoff",
                    details={"status": current.value},
                )
            if p.role in (Role.EXPERT, Role.AGENCY) and handoff.to_user_id != p.user_id:
                raise Forbidden("Only the receiver may hand it back", error_id="not_assignee")
            self._rules.complete_handoff(handoff, "returned", now)
            self._history(
                db,
                ticket,
                p.user_id,
                "handoff_completed",
                now,
                field="handoff",
                to_value="returned",
                note=data.note,
            )
            back = await db.get(User, handoff.from_user_id) if handoff.from_user_id else None
            previous = ticket.assignee_id
            ticket.assignee_id = back.id if back is not None else None
            self._history(
                db,
                ticket,
                p.user_id,
                "assigned",
                now,
                field="assignee_id",
                from_value=previous,
                to_value=ticket.assignee_id,
            )
            if current is not S.ASSIGNED:
                set_status(S.ASSIGNED)
            if current is S.WAITING_CUSTOMER:
                self._rules.resume(ticket, cal, now)
            return

        assert target is not None
        if action is Action.RESOLVE:
            if not data.resolution:
                raise ValidationFailed(
                    "resolve needs a resolution",
                    details=[field_error("resolution", "missing", "required for resolve")],
                )
            ticket.resolution = data.resolution
            ticket.resolved_at = now
            await self._close_handoff(db, ticket, "resolved", p.user_id, now)
            set_status(target)
            self._rules.stop(ticket, cal, now)
            return
        if action is Action.WAIT_CUSTOMER:
            set_status(target)
            self._rules.pause(ticket, cal, now)
            return
        if action is Action.RESUME:
            set_status(target)
            self._rules.resume(ticket, cal, now)
            return
        if action is Action.REOPEN:
            ticket.closed_at = None
            set_status(target)
            # Reopening resumes the resolution clock where it stopped; it does not reset it.
            self._rules.resume(ticket, cal, now)
            return
        if action is Action.CLOSE:
            ticket.closed_at = now
            set_status(target)
            self._rules.refresh(ticket, now)
            return
        if action is Action.ARCHIVE:
            ticket.archived_at = now
            set_status(target)
            return
        # start
        set_status(target)
        self._rules.refresh(ticket, now)

    @staticmethod
    def _same_window_or_self(p: Principal, assignee: User) -> bool:
        return assignee.id == p.user_id or (
            assignee.window_code is not None and assignee.window_code == p.window_code
        )

    async def _transfer(
        self,
        db: AsyncSession,
        p: Principal,
        ticket: Ticket,
        data: ActionIn,
        now: datetime,
        change: Change,
    ) -> None:
        if data.to_user_id is None:
            raise ValidationFailed(
                "transfer needs to_user_id",
                details=[field_error("to_user_id", "missing", "required for transfer")],
            )
        target = await db.get(User, data.to_user_id)
        if target is None or not target.active or Role(target.role) not in TRANSFER_TARGET_ROLES:
            raise ValidationFailed(
                "Cannot transfer to that user",
                details=[
                    field_error(
                        "to_user_id", "not_transferable", "an active agency, expert or desk user"
                    )
                ],
            )
        if target.id == ticket.assignee_id:
            raise Conflict("Already with that user", error_id="already_assigned")
        await self._close_handoff(db, ticket, "reassigned", p.user_id, now)
        _, targets = self._policies.resolve(ticket.category_code, ticket.priority)
        handoff = Handoff(
            ticket_id=ticket.id,
            from_user_id=p.user_id,
            to_user_id=target.id,
            note=data.note,
            created_at=now,
        )
        self._rules.start_handoff(
            handoff, targets.handoff_min, self.calendar_for(ticket.window_code), now
        )
        db.add(handoff)
        await db.flush()
        previous_status = ticket.status
        previous = ticket.assignee_id
        ticket.assignee_id = target.id
        ticket.status = S.ASSIGNED.value
        self._history(
            db,
            ticket,
            p.user_id,
            "transferred",
            now,
            field="assignee_id",
            from_value=previous,
            to_value=target.id,
            note=data.note,
        )
        if previous_status != S.ASSIGNED.value:
            self._history(
                db,
                ticket,
                p.user_id,
                "status_changed",
                now,
                field="status",
                from_value=previous_status,
                to_value=S.ASSIGNED.value,
            )
        if previous_status == S.WAITING_CUSTOMER.value:
            self._rules.resume(ticket, self.calendar_for(ticket.window_code), now)
        await self._outbox.enqueue(
            db,
            recipient=target,
            template_id="ticket_transferred",
            params=self._notify_params(ticket, due_at=self.local_text(handoff.due_at)),
            dedupe_key=f"h{handoff.id}:transferred",
            now=now,
        )
        change.events.append(
            (
                ev.TICKET_TRANSFERRED,
                ev.TicketTransferred(
                    **self._event(ticket, p.user_id),
                    handoff_id=handoff.id,
                    to_user_id=target.id,
                    handoff_due_at=handoff.due_at,
                ),
            )
        )

    async def comment(
        self, p: Principal, ticket_id: int, data: CommentIn, *, now: datetime
    ) -> TicketComment:
        p.require(Permission.TICKETS_WORK)
        change = Change()
        async with self._sessionmaker() as db:
            ticket = await self._load(db, p, ticket_id, for_update=True)
            if ticket.status == S.ARCHIVED.value:
                raise Conflict(
                    "An archived work order takes no comments", error_id="ticket_not_editable"
                )
            self._require_handler(p, ticket)
            comment = TicketComment(
                ticket_id=ticket.id,
                author_id=p.user_id,
                kind=data.kind.value,
                body=data.body,
                created_at=now,
            )
            db.add(comment)
            await db.flush()
            self._history(
                db, ticket, p.user_id, "commented", now, field="comment", to_value=data.kind.value
            )
            # A reply sent to the SME or a call with them is the first response; notes are not.
            if data.kind in (CommentKind.REPLY, CommentKind.CALL) and self._rules.first_response(
                ticket, now
            ):
                self._history(db, ticket, p.user_id, "first_response", now)
            ticket.updated_at = now
            change.events.append(
                (
                    ev.TICKET_COMMENTED,
                    ev.TicketCommented(
                        **self._event(ticket, p.user_id),
                        comment_id=comment.id,
                        kind=data.kind.value,
                    ),
                )
            )
            await self._commit(db)
        await self._publish(change)
        return comment

    async def share(
        self, p: Principal, ticket_id: int, data: ShareIn, *, now: datetime
    ) -> TicketShare:
        p.require(Permission.TICKETS_WORK)
        if p.role not in _DESK_ROLES:
            raise Forbidden("Only desk roles share work orders", error_id="permission_denied")
        if (data.user_id is None) == (data.county_code is None):
            raise ValidationFailed(
                "Give exactly one of user_id and county_code",
                details=[field_error("user_id", "one_of", "user_id or county_code")],
            )
        self._check_codes(county=data.county_code)
        async with self._sessionmaker() as db:
            ticket = await self._load(db, p, ticket_id, for_update=True)
            if data.user_id is not None and await db.get(User, data.user_id) is None:
                raise ValidationFailed(
                    "No such user", details=[field_error("user_id", "unknown", "no such user")]
                )
            existing = await db.scalar(
                select(TicketShare).where(
                    TicketShare.ticket_id == ticket.id,
                    TicketShare.user_id == data.user_id
                    if data.user_id is not None
                    else TicketShare.user_id.is_(None),
                    TicketShare.county_code == data.county_code
                    if data.county_code is not None
                    else TicketShare.county_code.is_(None),
                )
            )
            if existing is not None:
                return existing
            share = TicketShare(
                ticket_id=ticket.id,
                user_id=data.user_id,
                county_code=data.county_code,
                created_by_id=p.user_id,
                created_at=now,
            )
            db.add(share)
            self._history(
                db,
                ticket,
                p.user_id,
                "shared",
                now,
                field="share",
                to_value=f"user:{data.user_id}" if data.user_id else f"county:{data.county_code}",
            )
            await self._commit(db)
            return share
