"""SLA clocks of a work order, as pure functions over its columns.

Semantics (docs/ticketing.md explains them for people):

* **First response** is the first contact the SME actually receives (a reply or a
  call logged on the work order), not assignment. Its clock starts at creation
  and does not pause.
* **Resolution** runs from creation, pauses while the work order waits for the
  customer and resumes after; reopening resumes it where it stopped (no reset).
* **Handoffs** (transfers to a department, agency or expert) have their own
  handling deadline; the work order's resolution clock keeps running meanwhile.
* Warnings fall at ``warning_ratio`` of a target (75 % by default), breaches at
  the target. Breaches are sticky: a breached work order stays breached.

All durations are business time of the work order's window calendar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from smeline.ticketing.calendar import BusinessCalendar
from smeline.ticketing.models import OPEN_STATUSES, Handoff, SlaState, Ticket, TicketStatus


class Clock(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    HANDOFF = "handoff"


class Level(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True)
class Targets:
    first_response_min: int
    resolution_min: int
    handoff_min: int


@dataclass(frozen=True)
class DueEvent:
    clock: Clock
    level: Level
    due_at: datetime


def _reached(instant: datetime | None, reached: bool, now: datetime) -> datetime | None:
    if not reached:
        return None
    return instant if instant is not None and instant <= now else now


def _placed(
    current: datetime | None, cal: BusinessCalendar, since: datetime, remaining: timedelta
) -> datetime:
    if remaining <= timedelta(0) and current is not None and current <= since:
        return current
    return cal.add_business_time(since, remaining)


class SlaRules:
    def __init__(self, warning_ratio: float) -> None:
        self.warning_ratio = warning_ratio

    def _warning_offset(self, target_min: int) -> timedelta:
        return timedelta(minutes=target_min * self.warning_ratio)

    # --- work order -----------------------------------------------------------------

    def start(self, t: Ticket, targets: Targets, cal: BusinessCalendar, now: datetime) -> None:
        t.first_response_target_min = targets.first_response_min
        t.resolution_target_min = targets.resolution_min
        t.first_response_warned = t.first_response_breached = False
        t.resolution_warned = t.resolution_breached = False
        t.first_response_due_at = cal.add_business_minutes(now, targets.first_response_min)
        t.first_response_warning_at = cal.add_business_time(
            now, self._warning_offset(targets.first_response_min)
        )
        t.resolution_elapsed_s = 0
        t.resolution_running_since = now
        self._place_resolution(t, cal, now)
        self.refresh(t, now)

    def bring_first_response_forward(self, t: Ticket, due: datetime, now: datetime) -> None:
        """An earlier first-response deadline than the policy's (never a later one)."""
        if due < t.first_response_due_at:
            t.first_response_due_at = due
            t.first_response_warning_at = min(t.first_response_warning_at, due)
            self.refresh(t, now)

    def retarget(self, t: Ticket, targets: Targets, cal: BusinessCalendar, now: datetime) -> None:
        """Category or priority changed: new targets, measured from the same start."""
        t.first_response_target_min = targets.first_response_min
        t.resolution_target_min = targets.resolution_min
        t.first_response_due_at = cal.add_business_minutes(t.created_at, targets.first_response_min)
        t.first_response_warning_at = cal.add_business_time(
            t.created_at, self._warning_offset(targets.first_response_min)
        )
        if t.resolution_running_since is not None:
            self._place_resolution(t, cal, t.resolution_running_since)
        elif t.status == TicketStatus.WAITING_CUSTOMER:
            self._freeze_resolution(t, now)
        # A warning raised under the old target no longer holds once the new warning time
        # lies ahead (e.g. urgent lowered to normal). Breaches stay: they are sticky. The
        # warning's event key is taken, so reaching the new warning time raises nothing twice.
        if t.first_response_warned and now < t.first_response_warning_at:
            t.first_response_warned = False
        warning_at = t.resolution_warning_at
        if t.resolution_warned and (warning_at is None or now < warning_at):
            t.resolution_warned = False
        self.refresh(t, now)

    def first_response(self, t: Ticket, now: datetime) -> bool:
        if t.first_response_at is not None:
            return False
        t.first_response_at = now
        if now >= t.first_response_due_at:
            t.first_response_breached = True
        self.refresh(t, now)
        return True

    def pause(self, t: Ticket, cal: BusinessCalendar, now: datetime) -> None:
        self._stop_resolution(t, cal, now)
        self._freeze_resolution(t, now)
        self.refresh(t, now)

    def _freeze_resolution(self, t: Ticket, now: datetime) -> None:
        """While paused, only deadlines already reached keep their instant.

        A deadline reached just before the pause may not have been raised yet (the
        scheduler runs every second or so, and not at all while it is down): it stays
        pending so the scheduler still raises it, and the work order reads as overdue
        while it waits for the customer.
        """
        used = timedelta(seconds=t.resolution_elapsed_s)
        target = timedelta(minutes=t.resolution_target_min)
        t.resolution_due_at = _reached(t.resolution_due_at, used >= target, now)
        t.resolution_warning_at = _reached(
            t.resolution_warning_at,
            used >= self._warning_offset(t.resolution_target_min),
            now,
        )

    def resume(self, t: Ticket, cal: BusinessCalendar, now: datetime) -> None:
        if t.resolution_running_since is not None:
            return
        t.resolution_running_since = now
        self._place_resolution(t, cal, now)
        self.refresh(t, now)

    def stop(self, t: Ticket, cal: BusinessCalendar, now: datetime) -> None:
        """Resolved: the clock stops; a resolution after the deadline counts as breached."""
        if t.resolution_due_at is not None and now >= t.resolution_due_at:
            t.resolution_breached = True
        self._stop_resolution(t, cal, now)
        self.refresh(t, now)

    def _stop_resolution(self, t: Ticket, cal: BusinessCalendar, now: datetime) -> None:
        if t.resolution_running_since is None:
            return
        used = cal.business_time_between(t.resolution_running_since, now)
        t.resolution_elapsed_s += max(0, math.floor(used.total_seconds()))
        t.resolution_running_since = None

    def _place_resolution(self, t: Ticket, cal: BusinessCalendar, since: datetime) -> None:
        used = timedelta(seconds=t.resolution_elapsed_s)
        remaining = timedelta(minutes=t.resolution_target_min) - used
        warn_remaining = self._warning_offset(t.resolution_target_min) - used
        # A deadline already reached before ``since`` keeps its instant rather than
        # moving to ``since`` (which is all the arithmetic can say for time used up).
        t.resolution_due_at = _placed(t.resolution_due_at, cal, since, remaining)
        t.resolution_warning_at = _placed(t.resolution_warning_at, cal, since, warn_remaining)

    def pending(self, t: Ticket) -> list[DueEvent]:
        """Events not yet raised, in time order."""
        out: list[DueEvent] = []
        if self._first_response_open(t):
            if not t.first_response_warned and not t.first_response_breached:
                out.append(
                    DueEvent(Clock.FIRST_RESPONSE, Level.WARNING, t.first_response_warning_at)
                )
            if not t.first_response_breached:
                out.append(DueEvent(Clock.FIRST_RESPONSE, Level.BREACH, t.first_response_due_at))
        if self._resolution_open(t) and t.resolution_due_at is not None:
            if (
                not t.resolution_warned
                and not t.resolution_breached
                and t.resolution_warning_at is not None
            ):
                out.append(DueEvent(Clock.RESOLUTION, Level.WARNING, t.resolution_warning_at))
            if not t.resolution_breached:
                out.append(DueEvent(Clock.RESOLUTION, Level.BREACH, t.resolution_due_at))
        out.sort(key=lambda e: (e.due_at, e.level == Level.BREACH))
        return out

    @staticmethod
    def _first_response_open(t: Ticket) -> bool:
        # The clock does not pause for waiting_customer; it ends with the work order.
        return t.first_response_at is None and t.status in OPEN_STATUSES

    @staticmethod
    def _resolution_open(t: Ticket) -> bool:
        """Running, or paused in waiting_customer (then only reached deadlines are set)."""
        return t.resolution_running_since is not None or t.status == TicketStatus.WAITING_CUSTOMER

    def take_due(self, t: Ticket, now: datetime) -> list[DueEvent]:
        """Marks and returns the events whose time has come."""
        due = [e for e in self.pending(t) if e.due_at <= now]
        for e in due:
            if e.clock is Clock.FIRST_RESPONSE:
                if e.level is Level.WARNING:
                    t.first_response_warned = True
                else:
                    t.first_response_breached = True
            elif e.level is Level.WARNING:
                t.resolution_warned = True
            else:
                t.resolution_breached = True
        self.refresh(t, now)
        return due

    def refresh(self, t: Ticket, now: datetime) -> None:
        pending = self.pending(t)
        t.next_sla_check_at = pending[0].due_at if pending else None
        t.sla_state = self.state(t, now)

    def state(self, t: Ticket, now: datetime) -> SlaState:
        """As of ``now``: a deadline that has passed reads as breached before the
        scheduler has raised it, just as a warning time that has passed reads as warning."""
        if t.first_response_breached or t.resolution_breached:
            return SlaState.BREACHED
        first_open = self._first_response_open(t)
        resolution_open = self._resolution_open(t)
        due_at, warning_at = t.resolution_due_at, t.resolution_warning_at
        if (first_open and now >= t.first_response_due_at) or (
            resolution_open and due_at is not None and now >= due_at
        ):
            return SlaState.BREACHED
        if first_open and (t.first_response_warned or now >= t.first_response_warning_at):
            return SlaState.WARNING
        if (
            resolution_open
            and warning_at is not None
            and (t.resolution_warned or now >= warning_at)
        ):
            return SlaState.WARNING
        return SlaState.OK

    # --- handoff --------------------------------------------------------------------

    def start_handoff(
        self, h: Handoff, target_min: int, cal: BusinessCalendar, now: datetime
    ) -> None:
        h.target_min = target_min
        h.due_at = cal.add_business_minutes(now, target_min)
        h.warning_at = cal.add_business_time(now, self._warning_offset(target_min))
        h.sla_state = SlaState.OK
        h.next_check_at = h.warning_at

    def take_due_handoff(self, h: Handoff, now: datetime) -> list[DueEvent]:
        if h.completed_at is not None:
            h.next_check_at = None
            return []
        due: list[DueEvent] = []
        if h.sla_state == SlaState.OK and h.warning_at <= now:
            due.append(DueEvent(Clock.HANDOFF, Level.WARNING, h.warning_at))
            h.sla_state = SlaState.WARNING
        if h.sla_state != SlaState.BREACHED and h.due_at <= now:
            due.append(DueEvent(Clock.HANDOFF, Level.BREACH, h.due_at))
            h.sla_state = SlaState.BREACHED
        h.next_check_at = {
            SlaState.OK: h.warning_at,
            SlaState.WARNING: h.due_at,
            SlaState.BREACHED: None,
        }[SlaState(h.sla_state)]
        return due

    @staticmethod
    def handoff_state(h: Handoff, now: datetime) -> SlaState:
        """As of ``now``, like the work order's own state: no waiting for a tick."""
        if h.sla_state == SlaState.BREACHED or (h.completed_at is None and now >= h.due_at):
            return SlaState.BREACHED
        if h.completed_at is None and now >= h.warning_at:
            return SlaState.WARNING
        return SlaState(h.sla_state)

    def complete_handoff(self, h: Handoff, outcome: str, now: datetime) -> None:
        h.completed_at = now
        h.outcome = outcome
        if h.sla_state != SlaState.BREACHED and now >= h.due_at:
            h.sla_state = SlaState.BREACHED
        h.next_check_at = None
