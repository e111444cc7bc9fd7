"""Agents in queues: log in, ready, pause with a reason, after-call work,
console lost, log out — each a real queue state in Asterisk.

smeline keeps the state it wants in ``queue_memberships`` and applies it
with QueueAdd / QueuePause / QueueRemove. After every AMI (re)connect the
queues are compared with those rows and put right (members re-added,
pauses re-applied, strays removed), so a restart of Asterisk or of smeline
loses nobody. After-call work is a QueuePause with reason ``wrapup`` that
smeline lifts when the time is up; queues.conf's ``wrapuptime`` is the
safety net when smeline is down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.errors import ApiError
from smeline.telephony.ami import AmiActions, AmiNotConnected, AmiResult
from smeline.telephony.ami_protocol import AmiMessage
from smeline.telephony.exceptions import TelephonyNotConfigured
from smeline.telephony.models import QueueMembership

logger = logging.getLogger(__name__)

#: Interfaces smeline manages (rendered agent endpoints). Only these are ever
#: removed as strays, so members an administrator configured by hand stay.
MANAGED_INTERFACE = re.compile(r"^PJSIP/agent-[0-9]+$")
REASON = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
LOGGED_IN_REFRESH_SECONDS = 30.0


class AgentState(StrEnum):
    READY = "ready"
    PAUSED = "paused"
    WRAPUP = "wrapup"  # after-call work
    DISCONNECTED = "disconnected"  # the console's connection dropped


class AgentAction(StrEnum):
    READY = "ready"
    PAUSE = "pause"
    WRAPUP = "wrapup"
    DISCONNECT = "disconnect"


#: The agent lifecycle as a named state machine: which action is allowed in
#: which state (logging in and out is allowed from every state).
TRANSITIONS: dict[AgentState, dict[AgentAction, AgentState]] = {
    AgentState.READY: {
        AgentAction.PAUSE: AgentState.PAUSED,
        AgentAction.WRAPUP: AgentState.WRAPUP,
        AgentAction.DISCONNECT: AgentState.DISCONNECTED,
    },
    AgentState.PAUSED: {
        AgentAction.READY: AgentState.READY,
        AgentAction.PAUSE: AgentState.PAUSED,
        AgentAction.DISCONNECT: AgentState.DISCONNECTED,
    },
    AgentState.WRAPUP: {
        AgentAction.READY: AgentState.READY,
        AgentAction.PAUSE: AgentState.PAUSED,
        AgentAction.WRAPUP: AgentState.WRAPUP,
        AgentAction.DISCONNECT: AgentState.DISCONNECTED,
    },
    # Back from a lost connection the agent says "ready" themselves.
    AgentState.DISCONNECTED: {
        AgentAction.READY: AgentState.READY,
        AgentAction.PAUSE: AgentState.PAUSED,
        AgentAction.DISCONNECT: AgentState.DISCONNECTED,
    },
}

_PAUSE_REASON = {
    AgentState.WRAPUP: "wrapup",
    AgentState.DISCONNECTED: "disconnected",
}


class AgentNotLoggedIn(ApiError):
    status = 409
    error_id = "agent_not_logged_in"


class AgentTransitionInvalid(ApiError):
    status = 409
    error_id = "invalid_agent_transition"


@dataclass(frozen=True, slots=True)
class AgentStatus:
    user_id: int
    window_code: str
    interface: str
    state: AgentState
    reason: str | None
    since: datetime
    wrapup_until: datetime | None
    applied: bool  # False: Asterisk could not be told now; it will be on reconnect


class ReadyGuard(Protocol):
    async def ensure_free(self, user_id: int, *, now: datetime) -> None:
        """Raise (an ApiError) while the agent may not take the next contact."""


class AgentService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        ami: AmiActions | None,
        now: Callable[[], datetime],
        wrapup_seconds: int = 30,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ami = ami
        self._now = now
        self.wrapup_seconds = wrapup_seconds
        self._timers: dict[int, asyncio.TimerHandle] = {}
        #: Asked before after-call work ends on its own: an agent who owes a
        #: required wrap-up stays paused (docs/wrapup.md). Set by the app.
        self.ready_guard: ReadyGuard | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # interface → user id of the logged-in agents: AMI events of other
        # interfaces never cost a database query. Refreshed now and then for
        # logins made by another process.
        self._logged_in: dict[str, int] = {}
        self._logged_in_at = 0.0

    # -- AMI -----------------------------------------------------------------

    def _require_ami(self) -> AmiActions:
        if self._ami is None:
            raise TelephonyNotConfigured("Telephony is not configured (no Asterisk)")
        return self._ami

    async def _send(self, action: str, fields: list[tuple[str, str]]) -> AmiResult | None:
        ami = self._require_ami()
        if not ami.connected:
            return None
        try:
            return await ami.send_action(action, fields)
        except AmiNotConnected:
            return None

    async def _apply_pause(self, row: QueueMembership) -> bool:
        paused = row.state != AgentState.READY
        fields = [
            ("Queue", row.window_code),
            ("Interface", row.interface),
            ("Paused", "true" if paused else "false"),
        ]
        if paused:
            fields.append(("Reason", row.reason or "paused"))
        result = await self._send("QueuePause", fields)
        return result is not None and result.ok

    async def _apply_add(self, row: QueueMembership) -> bool:
        fields = [
            ("Queue", row.window_code),
            ("Interface", row.interface),
            # The device state of the endpoint itself: Asterisk then knows when
            # the agent's phone is busy or unregistered.
            ("StateInterface", row.interface),
            ("MemberName", row.member_name),
            ("Paused", "false" if row.state == AgentState.READY else "true"),
        ]
        if row.state != AgentState.READY:
            fields.append(("Reason", row.reason or "paused"))
        result = await self._send("QueueAdd", fields)
        if result is None:
            return False
        if not result.ok and "Already there" in (result.message or ""):
            # Recorded error text of a duplicate add: set the pause state instead.
            return await self._apply_pause(row)
        return result.ok

    # -- state ---------------------------------------------------------------

    @staticmethod
    def _status(row: QueueMembership, applied: bool) -> AgentStatus:
        return AgentStatus(
            user_id=row.user_id,
            window_code=row.window_code,
            interface=row.interface,
            state=AgentState(row.state),
            reason=row.reason,
            since=row.since,
            wrapup_until=row.wrapup_until,
            applied=applied,
        )

    async def status(self, user_id: int) -> AgentStatus | None:
        async with self._sessionmaker() as db:
            row = await db.get(QueueMembership, user_id)
        return None if row is None else self._status(row, True)

    async def login(
        self, user_id: int, *, window_code: str, interface: str, member_name: str
    ) -> AgentStatus:
        self._require_ami()
        if not MANAGED_INTERFACE.match(interface):
            raise ValueError(f"not an agent interface: {interface!r}")
        now = self._now()
        async with self._sessionmaker() as db, db.begin():
            previous = await db.get(QueueMembership, user_id)
            if previous is not None and previous.window_code != window_code:
                # Changing windows: leave the old queue first.
                await self._send(
                    "QueueRemove", [("Queue", previous.window_code), ("Interface", interface)]
                )
            if previous is not None:
                await db.delete(previous)
                await db.flush()
            row = QueueMembership(
                user_id=user_id,
                window_code=window_code,
                interface=interface,
                member_name=member_name[:100],
                state=AgentState.READY.value,
                reason=None,
                wrapup_until=None,
                since=now,
            )
            db.add(row)
        self._logged_in[interface] = user_id
        applied = await self._apply_add(row)
        logger.info("agent user_id=%s logged in to %s applied=%s", user_id, window_code, applied)
        return self._status(row, applied)

    async def logout(self, user_id: int) -> None:
        self._require_ami()
        self._cancel_timer(user_id)
        async with self._sessionmaker() as db, db.begin():
            row = await db.get(QueueMembership, user_id)
            if row is None:
                raise AgentNotLoggedIn("The agent is not logged in", details={"user_id": user_id})
            await db.execute(delete(QueueMembership).where(QueueMembership.user_id == user_id))
        self._logged_in.pop(row.interface, None)
        await self._send("QueueRemove", [("Queue", row.window_code), ("Interface", row.interface)])
        logger.info("agent user_id=%s logged out of %s", user_id, row.window_code)

    async def act(
        self, user_id: int, action: AgentAction, *, reason: str | None = None
    ) -> AgentStatus:
        self._require_ami()
        if reason is not None and not REASON.match(reason):
            raise ValueError("a pause reason is 1-40 letters, digits, '_' or '-'")
        now = self._now()
        async with self._sessionmaker() as db, db.begin():
            row = await db.get(QueueMembership, user_id, with_for_update=True)
            if row is None:
                raise AgentNotLoggedIn("The agent is not logged in", details={"user_id": user_id})
            current = AgentState(row.state)
            target = TRANSITIONS[current].get(action)
            if target is None:
                raise AgentTransitionInvalid(
                    f"Cannot {action.value} while {current.value}",
                    details={"state": current.value, "action": action.value},
                )
            row.state = target.value
            row.reason = reason if target is AgentState.PAUSED else _PAUSE_REASON.get(target)
            row.wrapup_until = (
                now + timedelta(seconds=self.wrapup_seconds)
                if target is AgentState.WRAPUP
                else None
            )
            if target is not current or action is AgentAction.PAUSE:
                row.since = now
        if target is AgentState.WRAPUP and row.wrapup_until is not None:
            self._schedule_end_of_wrapup(user_id, row.wrapup_until)
        else:
            self._cancel_timer(user_id)
        applied = await self._apply_pause(row)
        return self._status(row, applied)

    # -- after-call work ------------------------------------------------------

    def _cancel_timer(self, user_id: int) -> None:
        timer = self._timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    def _schedule_end_of_wrapup(self, user_id: int, until: datetime) -> None:
        self._cancel_timer(user_id)
        loop = asyncio.get_running_loop()
        delay = max(0.0, (until - self._now()).total_seconds())
        self._timers[user_id] = loop.call_later(delay, self._end_wrapup_soon, user_id)

    def _end_wrapup_soon(self, user_id: int) -> None:
        self._timers.pop(user_id, None)
        self._spawn(self._end_wrapup(user_id))

    async def _end_wrapup(self, user_id: int) -> None:
        try:
            status = await self.status(user_id)
            if status is None or status.state is not AgentState.WRAPUP:
                return
            if self.ready_guard is not None:
                try:
                    await self.ready_guard.ensure_free(user_id, now=self._now())
                except ApiError as owed:
                    # The time is up but the wrap-up is not written: the agent
                    # stays in after-call work (paused) until it is.
                    logger.info(
                        "agent user_id=%s stays in after-call work: %s", user_id, owed.error_id
                    )
                    return
            await self.act(user_id, AgentAction.READY)
        except Exception:
            logger.exception("ending after-call work failed for user_id=%s", user_id)

    async def wrapup_recorded(self, user_id: int) -> None:
        """The agent wrote a wrap-up: after-call work whose time is up ends now
        (while its time runs, the timer ends it)."""
        if user_id in self._timers or self._ami is None:
            return
        await self._end_wrapup(user_id)

    async def load_logged_in(self) -> None:
        async with self._sessionmaker() as db:
            rows = (
                await db.execute(select(QueueMembership.interface, QueueMembership.user_id))
            ).all()
        self._logged_in = {interface: user_id for interface, user_id in rows}
        self._logged_in_at = time.monotonic()

    async def resume_wrapup_timers(self) -> None:
        """After a restart: wrap-ups that were running end when they should."""
        await self.load_logged_in()
        async with self._sessionmaker() as db:
            rows = (
                await db.scalars(
                    select(QueueMembership).where(QueueMembership.state == AgentState.WRAPUP)
                )
            ).all()
        for row in rows:
            self._schedule_end_of_wrapup(row.user_id, row.wrapup_until or self._now())

    def on_event(self, message: AmiMessage) -> None:
        """AgentComplete → the member starts after-call work (a real QueuePause);
        QueueMemberPause → a pause Asterisk made itself is kept (see below)."""
        interface = message.get("Interface") or ""
        if time.monotonic() - self._logged_in_at > LOGGED_IN_REFRESH_SECONDS:
            self._logged_in_at = time.monotonic()
            self._spawn(self.load_logged_in())
        if interface not in self._logged_in:
            return
        if message.event == "AgentComplete" and self.wrapup_seconds > 0:
            self._spawn(self._wrapup_interface(interface))
        elif message.event == "QueueMemberPause":
            self._spawn(
                self._mirror_pause(
                    interface, message.get("Paused") == "1", message.get("PausedReason") or ""
                )
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror_pause(self, interface: str, paused: bool, reason: str) -> None:
        """Asterisk paused or unpaused a member on its own — autopause after a
        ring with no answer (reason ``Auto-Pause`` in app_queue's source; not
        in the recordings), or an administrator at the CLI. The wanted state
        follows, so the next reconnect does not undo it. Our own QueuePause
        comes back as the same event and changes nothing."""
        try:
            async with self._sessionmaker() as db, db.begin():
                row = await db.scalar(
                    select(QueueMembership)
                    .where(QueueMembership.interface == interface)
                    .with_for_update()
                )
                if row is None:
                    return
                is_ready = row.state == AgentState.READY
                if paused and is_ready:
                    row.state = AgentState.PAUSED.value
                    row.reason = (reason if REASON.match(reason) else "auto")[:40]
                    row.since = self._now()
                elif not paused and not is_ready:
                    row.state = AgentState.READY.value
                    row.reason = None
                    row.wrapup_until = None
                    row.since = self._now()
                else:
                    return
                user_id = row.user_id
            self._cancel_timer(user_id)
            logger.info("agent user_id=%s %s by Asterisk", user_id, "paused" if paused else "ready")
        except Exception:
            logger.exception("mirroring a pause of %s failed", interface)

    async def _wrapup_interface(self, interface: str) -> None:
        try:
            async with self._sessionmaker() as db:
                row = await db.scalar(
                    select(QueueMembership).where(QueueMembership.interface == interface)
                )
            if row is not None and row.state == AgentState.READY:
                await self.act(row.user_id, AgentAction.WRAPUP)
        except Exception:
            logger.exception("starting after-call work failed for %s", interface)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        for user_id in list(self._timers):
            self._cancel_timer(user_id)

    # -- reconnect -----------------------------------------------------------

    async def reconcile(self, queue_status_items: Iterable[AmiMessage]) -> list[str]:
        """Make Asterisk's queues match ``queue_memberships``; returns what was done."""
        actual: dict[tuple[str, str], AmiMessage] = {}
        for item in queue_status_items:
            if item.event == "QueueMember":
                actual[(item.get("Queue") or "", item.get("Location") or "")] = item
        async with self._sessionmaker() as db:
            rows = list((await db.scalars(select(QueueMembership))).all())
        wanted = {(r.window_code, r.interface): r for r in rows}
        done: list[str] = []
        for key, row in wanted.items():
            member = actual.get(key)
            if member is None:
                if await self._apply_add(row):
                    done.append(f"add {row.interface} to {row.window_code}")
                continue
            paused = member.get("Paused") == "1"
            if paused != (row.state != AgentState.READY):
                if await self._apply_pause(row):
                    done.append(f"pause {row.interface}={row.state != AgentState.READY}")
        for (queue, interface), member in actual.items():
            if (queue, interface) in wanted or member.get("Membership") == "static":
                continue
            if MANAGED_INTERFACE.match(interface):
                result = await self._send(
                    "QueueRemove", [("Queue", queue), ("Interface", interface)]
                )
                if result is not None and result.ok:
                    done.append(f"remove {interface} from {queue}")
        if done:
            logger.info("queue members reconciled: %s", "; ".join(done))
        return done
