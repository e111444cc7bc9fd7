"""What agents and supervisors ask Asterisk to do: click-to-call, transfer to
another window's queue, listen / whisper / barge — and the audit of it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.errors import ApiError, NotFound
from smeline.routing.numbers import NumberPlan, dial_string, normalise, presented_caller_id
from smeline.telephony.ami import AmiActions
from smeline.telephony.calls import CallTracker
from smeline.telephony.exceptions import require_connected, send_checked
from smeline.telephony.models import TelephonyAudit

logger = logging.getLogger(__name__)


class NotDiallable(ApiError):
    status = 422
    error_id = "not_diallable"


class SpyMode(StrEnum):
    LISTEN = "listen"  # hears both sides
    WHISPER = "whisper"  # the agent hears the supervisor, the caller does not
    BARGE = "barge"  # everyone hears everyone


# ChanSpy options: q = no beep/announcement of the spied channel name,
# w = whisper, B = barge (recorded: ChanSpy(PJSIP/agent1,qw) / ,qB / ,q).
_SPY_OPTIONS = {SpyMode.LISTEN: "q", SpyMode.WHISPER: "qw", SpyMode.BARGE: "qB"}


@dataclass(frozen=True, slots=True)
class Originated:
    channel_id: str  # ChannelId given to Asterisk: the Uniqueid of the new channel


class TelephonyActions:
    def __init__(
        self,
        *,
        ami: AmiActions | None,
        tracker: CallTracker | None,
        sessionmaker: async_sessionmaker[AsyncSession],
        plan: NumberPlan,
        now: Callable[[], datetime],
        originate_timeout_ms: int = 30_000,
    ) -> None:
        self._ami = ami
        self._tracker = tracker
        self._sessionmaker = sessionmaker
        self.plan = plan
        self._now = now
        self.originate_timeout_ms = originate_timeout_ms

    def _connected(self) -> AmiActions:
        return require_connected(self._ami)

    async def _send(self, action: str, fields: list[tuple[str, str]]) -> None:
        await send_checked(self._ami, action, fields)

    async def audit(
        self, actor_user_id: int | None, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        async with self._sessionmaker() as db, db.begin():
            db.add(
                TelephonyAudit(
                    at=self._now(),
                    actor_user_id=actor_user_id,
                    action=action,
                    target=target[:128],
                    detail=detail,
                )
            )

    def _call(self, linkedid: str) -> Any:
        call = self._tracker.calls.get(linkedid) if self._tracker is not None else None
        if call is None:
            raise NotFound("No such call in progress", details={"linkedid": linkedid})
        return call

    def _channel_name(self, uniqueid: str | None) -> str | None:
        if uniqueid is None or self._tracker is None:
            return None
        channel = self._tracker.channels.get(uniqueid)
        return channel.name if channel is not None else None

    # -- click-to-call -----------------------------------------------------------

    async def click_to_call(
        self,
        *,
        actor_user_id: int,
        agent_interface: str,
        number: str,
        ticket_ref: str | None,
    ) -> Originated:
        """Ring the agent's phone first; when they answer, the dialplan
        ([smeline-outbound]) records and dials the SME with the hotline's caller ID."""
        key = normalise(number, self.plan)
        if not key.diallable:
            raise NotDiallable("This number cannot be dialled", details={"kind": key.kind.value})
        try:
            digits = dial_string(key, self.plan)
            caller_id = presented_caller_id(self.plan)
        except ValueError as exc:
            raise NotDiallable(str(exc)) from exc
        channel_id = f"smeline-{uuid.uuid4().hex[:20]}"
        # SMELINE_DIRECTION first: the call record starts on it, and the
        # variables after it land on that record (the SME's number, the ticket).
        variables = ["SMELINE_DIRECTION=outbound", f"SMELINE_CALLER_KEY={key.key}"]
        if ticket_ref:
            variables.append(f"SMELINE_TICKET={ticket_ref}")
        await self._send(
            "Originate",
            [
                ("Channel", agent_interface),
                ("Context", "smeline-outbound"),
                ("Exten", digits),
                ("Priority", "1"),
                ("CallerID", f'"{caller_id}" <{caller_id}>'),
                # Originate's Timeout is in milliseconds (recorded: Timeout 5000 = 5 s).
                ("Timeout", str(self.originate_timeout_ms)),
                ("Async", "true"),
                # Recorded: with ChannelId the OriginateResponse and Hangup carry
                # that Uniqueid, so the outcome can be matched to this request.
                ("ChannelId", channel_id),
                *[("Variable", v) for v in variables],
            ],
        )
        await self.audit(
            actor_user_id,
            "click_to_call",
            channel_id,
            {"ticket": ticket_ref, "interface": agent_interface},
        )
        return Originated(channel_id)

    # -- transfer to another window's queue ---------------------------------------

    async def transfer_to_window(self, *, actor_user_id: int, linkedid: str, window: str) -> None:
        """A caller who reached the wrong county goes to the right window's
        queue, keeping its priority: QUEUE_PRIO is a channel variable that the
        Redirect does not touch, and Queue() reads it when the caller joins."""
        call = self._call(linkedid)
        channel = call.caller_channel
        for name, value in (("Q_NAME", window), ("Q_OVERFLOW", ""), ("SMELINE_WINDOW", window)):
            await self._send("Setvar", [("Channel", channel), ("Variable", name), ("Value", value)])
        await self._send(
            "Redirect",
            [
                ("Channel", channel),
                ("Context", "smeline-queue"),
                ("Exten", "wait"),
                ("Priority", "1"),
            ],
        )
        await self.audit(actor_user_id, "transfer", linkedid, {"window": window})

    # -- supervisors ---------------------------------------------------------------

    async def spy(
        self, *, actor_user_id: int, linkedid: str, mode: SpyMode, supervisor_interface: str
    ) -> Originated:
        """Listen / whisper / barge on the agent's leg of a call.

        ChanSpy matches channels by name *prefix*; the full channel name of
        the agent's leg (``PJSIP/agent-12-0000001a``) names exactly one.
        """
        call = self._call(linkedid)
        agent_channel = self._channel_name(call.agent_uniqueid)
        if agent_channel is None:
            raise ApiError(
                "The call has no agent leg to listen to",
                error_id="no_agent_leg",
                status=409,
            )
        channel_id = f"smeline-spy-{uuid.uuid4().hex[:16]}"
        # The audit row is written before the supervisor hears anything.
        await self.audit(
            actor_user_id,
            f"spy_{mode.value}",
            linkedid,
            {"agent_channel": agent_channel, "supervisor": supervisor_interface},
        )
        await self._send(
            "Originate",
            [
                ("Channel", supervisor_interface),
                ("Application", "ChanSpy"),
                ("Data", f"{agent_channel},{_SPY_OPTIONS[mode]}"),
                ("Timeout", str(self.originate_timeout_ms)),
                ("Async", "true"),
                ("ChannelId", channel_id),
            ],
        )
        return Originated(channel_id)
