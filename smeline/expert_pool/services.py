"""Choosing an expert, and the expert and consultation rows.

The choice is a pure function (:func:`choose_expert`): among the experts
whose specialties contain the call's category, who are on schedule now and
not already on a call, the one consulted least recently (never consulted
first, then the oldest ``last_consulted_at``, then the lowest id, so the
order is total and two processes agree). :class:`ExpertService` feeds it from
the database: "on a call" is an open consultation row (no ``ended_at``),
whichever process started it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.errors import ApiError, NotFound, ValidationFailed, field_error
from smeline.expert_pool.models import Consultation, Expert
from smeline.expert_pool.schemas import WEEKDAYS, ExpertIn, ExpertPatch
from smeline.routing.numbers import DEFAULT_PLAN, NumberPlan, normalise
from smeline.ticketing.calendar import BUSINESS_TZ, BusinessCalendar

#: An open consultation older than this is a leftover of a crash, not a call:
#: Asterisk's dialplan caps every hotline call at 4 h (TIMEOUT(absolute)).
OPEN_CONSULTATION_LIMIT = timedelta(hours=4)

_NEVER = datetime.min.replace(tzinfo=UTC)


class ExpertNotFound(NotFound):
    error_id = "expert_not_found"


class ExpertUnavailable(ApiError):
    status = 409
    error_id = "expert_unavailable"


@dataclass(frozen=True, slots=True)
class ExpertCandidate:
    """What the chooser needs of an expert (no database session attached)."""

    id: int
    name: str
    phone_key: str
    specialties: tuple[str, ...]
    active: bool = True
    schedule: Mapping[str, Sequence[Sequence[str]]] | None = None
    last_consulted_at: datetime | None = None

    @classmethod
    def of(cls, row: Expert) -> ExpertCandidate:
        return cls(
            id=row.id,
            name=row.name,
            phone_key=row.phone_key,
            specialties=tuple(row.specialties or ()),
            active=row.active,
            schedule=row.schedule,
            last_consulted_at=row.last_consulted_at,
        )


@dataclass(frozen=True, slots=True)
class Availability:
    expert: ExpertCandidate
    # inactive | no_specialty | off_schedule | on_call; empty when available
    reasons: tuple[str, ...]

    @property
    def available(self) -> bool:
        return not self.reasons


def on_schedule(
    schedule: Mapping[str, Sequence[Sequence[str]]] | None,
    at: datetime,
    calendar: BusinessCalendar,
) -> bool:
    """Weekly hours in Asia/Shanghai whatever the process time zone; no
    schedule means the business calendar (statutory holidays included)."""
    if schedule is None:
        return calendar.is_business_time(at)
    local = at.astimezone(BUSINESS_TZ)
    now = local.strftime("%H:%M")
    # Zero-padded "HH:MM" strings compare like times; an end of "24:00" is
    # after every minute of the day.
    return any(start <= now < end for start, end in schedule.get(WEEKDAYS[local.weekday()], ()))


def _fairness(expert: ExpertCandidate) -> tuple[bool, datetime, int]:
    consulted = expert.last_consulted_at
    return (consulted is not None, consulted or _NEVER, expert.id)


def rank_experts(
    candidates: Iterable[ExpertCandidate],
    category: str,
    now: datetime,
    busy_expert_ids: Collection[int],
    *,
    calendar: BusinessCalendar | None = None,
) -> list[Availability]:
    """Every candidate with why it cannot be asked now; the available ones
    first, each group least recently consulted first."""
    cal = calendar or BusinessCalendar()
    ranked: list[Availability] = []
    for expert in candidates:
        reasons: list[str] = []
        if not expert.active:
            reasons.append("inactive")
        if category not in expert.specialties:
            reasons.append("no_specialty")
        if not on_schedule(expert.schedule, now, cal):
            reasons.append("off_schedule")
        if expert.id in busy_expert_ids:
            reasons.append("on_call")
        ranked.append(Availability(expert, tuple(reasons)))
    ranked.sort(key=lambda a: (not a.available, *_fairness(a.expert)))
    return ranked


def choose_expert(
    candidates: Iterable[ExpertCandidate],
    category: str,
    now: datetime,
    busy_expert_ids: Collection[int],
    *,
    calendar: BusinessCalendar | None = None,
) -> ExpertCandidate | None:
    """The expert to ring for ``category`` now, or None if nobody can be asked."""
    ranked = rank_experts(candidates, category, now, busy_expert_ids, calendar=calendar)
    return ranked[0].expert if ranked and ranked[0].available else None


class ExpertService:
    """Experts (minimal CRUD for administrators), availability, and the
    consultation log the escalation flow writes."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        plan: NumberPlan = DEFAULT_PLAN,
        calendar: Callable[[], BusinessCalendar] = BusinessCalendar,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._plan = plan
        self._calendar = calendar

    # -- experts -----------------------------------------------------------------

    def _phone_key(self, raw: str) -> str:
        key = normalise(raw, self._plan)
        if not key.diallable:
            raise ValidationFailed(
                "This number cannot be dialled",
                details=[field_error("phone", "not_diallable", f"a {key.kind.value} number")],
            )
        return key.key

    async def list_experts(self) -> list[Expert]:
        async with self._sessionmaker() as db:
            return list((await db.scalars(select(Expert).order_by(Expert.id))).all())

    async def get(self, expert_id: int) -> Expert:
        async with self._sessionmaker() as db:
            row = await db.get(Expert, expert_id)
        if row is None:
            raise ExpertNotFound("No such expert", details={"expert_id": expert_id})
        return row

    async def create(self, data: ExpertIn, *, now: datetime) -> Expert:
        row = Expert(
            name=data.name,
            phone_key=self._phone_key(data.phone),
            specialties=sorted(set(data.specialties)),
            active=data.active,
            schedule=dict(data.schedule) if data.schedule is not None else None,
            created_at=now,
            updated_at=now,
        )
        async with self._sessionmaker() as db, db.begin():
            db.add(row)
        return row

    async def update(self, expert_id: int, data: ExpertPatch, *, now: datetime) -> Expert:
        changes: dict[str, Any] = {}
        fields = data.model_fields_set
        if "name" in fields and data.name is not None:
            changes["name"] = data.name
        if "phone" in fields and data.phone is not None:
            changes["phone_key"] = self._phone_key(data.phone)
        if "specialties" in fields and data.specialties is not None:
            changes["specialties"] = sorted(set(data.specialties))
        if "active" in fields and data.active is not None:
            changes["active"] = data.active
        if "schedule" in fields:  # an explicit null means business hours again
            changes["schedule"] = dict(data.schedule) if data.schedule is not None else None
        async with self._sessionmaker() as db, db.begin():
            row = await db.get(Expert, expert_id, with_for_update=True)
            if row is None:
                raise ExpertNotFound("No such expert", details={"expert_id": expert_id})
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
        return row

    # -- availability --------------------------------------------------------------

    async def busy_expert_ids(self, now: datetime) -> set[int]:
        """Experts with an open consultation (on a call right now)."""
        async with self._sessionmaker() as db:
            ids = await db.scalars(
                select(Consultation.expert_id).where(
                    Consultation.ended_at.is_(None),
                    Consultation.expert_id.is_not(None),
                    Consultation.started_at > now - OPEN_CONSULTATION_LIMIT,
                )
            )
            return {i for i in ids if i is not None}

    async def availability(
        self, category: str, now: datetime, *, extra_busy: Collection[int] = ()
    ) -> list[Availability]:
        experts = [ExpertCandidate.of(e) for e in await self.list_experts()]
        busy = await self.busy_expert_ids(now) | set(extra_busy)
        return rank_experts(experts, category, now, busy, calendar=self._calendar())

    async def choose(
        self, category: str, now: datetime, *, extra_busy: Collection[int] = ()
    ) -> ExpertCandidate | None:
        ranked = await self.availability(category, now, extra_busy=extra_busy)
        return ranked[0].expert if ranked and ranked[0].available else None

    async def check_available(
        self, expert_id: int, category: str | None, now: datetime
    ) -> ExpertCandidate:
        """An expert the agent picked by hand: must exist and be askable now
        (schedule, not on a call, active); the specialty is only checked when
        the call has a category."""
        row = await self.get(expert_id)
        expert = ExpertCandidate.of(row)
        ranked = rank_experts(
            [expert],
            category or "",
            now,
            await self.busy_expert_ids(now),
            calendar=self._calendar(),
        )
        reasons = [r for r in ranked[0].reasons if category is not None or r != "no_specialty"]
        if reasons:
            raise ExpertUnavailable(
                "This expert cannot be asked now",
                details={"expert_id": expert_id, "reasons": reasons},
            )
        return expert

    # -- consultations --------------------------------------------------------------

    async def start_consultation(
        self,
        *,
        linkedid: str,
        target_kind: str,
        target_ref: str,
        expert_id: int | None,
        agent_user_id: int | None,
        at: datetime,
    ) -> int:
        async with self._sessionmaker() as db, db.begin():
            row = Consultation(
                linkedid=linkedid,
                expert_id=expert_id,
                target_kind=target_kind,
                target_ref=target_ref[:64],
                started_at=at,
                agent_user_id=agent_user_id,
            )
            db.add(row)
            if expert_id is not None:
                # Asked counts as consulted: an expert who does not pick up is
                # not rung again and again while others wait their turn.
                await db.execute(
                    update(Expert).where(Expert.id == expert_id).values(last_consulted_at=at)
                )
            await db.flush()
            return row.id

    async def consultation_answered(self, consultation_id: int, at: datetime) -> None:
        async with self._sessionmaker() as db, db.begin():
            await db.execute(
                update(Consultation)
                .where(Consultation.id == consultation_id)
                .values(answered_at=at, outcome="answered")
            )

    async def consultation_outcome(
        self, consultation_id: int, outcome: str, *, ended_at: datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"outcome": outcome}
        if ended_at is not None:
            values["ended_at"] = ended_at
        async with self._sessionmaker() as db, db.begin():
            await db.execute(
                update(Consultation)
                .where(Consultation.id == consultation_id, Consultation.ended_at.is_(None))
                .values(**values)
            )

    async def consultations_of(self, linkedid: str) -> list[Consultation]:
        async with self._sessionmaker() as db:
            rows = await db.scalars(
                select(Consultation)
                .where(Consultation.linkedid == linkedid)
                .order_by(Consultation.id)
            )
            return list(rows.all())
