"""Three-way escalation: bring the city centre, another county window, the
provincial platform or an expert into a call, over AMI only.

Rooms and roles
---------------
Every escalated call gets one ConfBridge room, ``esc-<linkedid>``, and for a
private consultation a second one, ``esc-<linkedid>-hold``. Legs enter rooms
only through ``[smeline-conference]`` with ``SMELINE_ROOM`` and
``SMELINE_CONF_ROLE`` (set with Setvar before a Redirect, or as Originate
variables), so **teardown lives in Asterisk's ConfBridge profiles**: the
caller is the marked user, every other leg is ``end_marked``; when the caller
hangs up Asterisk ends the rest even if smeline is down. smeline hangs every
leftover leg up as well (belt and braces).

Positions of caller and agent (per call):

``queue``     still in the queue's two-party bridge (before the first escalation);
``together``  both in the main room: caller ``caller`` (marked), agent ``agent``;
``hold``      caller alone in the hold room (marked, so
              ``music_on_hold_when_empty`` gives hold music), agent in the main
              room as ``consult`` (marked: the far leg, end_marked, can join —
              the dialplan lets a far leg in only while a marked user is there —
              and is ended by Asterisk if the agent hangs up).

AMI sequences
-------------
queue → together (recorded, ``ami-confbridge*.txt``: a dual Redirect moves both
legs out of the queue bridge without hanging either up)::

    Setvar caller SMELINE_ROOM=<room>, SMELINE_CONF_ROLE=caller
    Setvar agent  SMELINE_ROOM=<room>, SMELINE_CONF_ROLE=agent
    Redirect Channel=<caller> ExtraChannel=<agent> Context/ExtraContext=smeline-conference
             Exten/ExtraExten=s Priority/ExtraPriority=1

queue → hold: the same dual Redirect, caller into ``<room>-hold`` (role
caller), agent into ``<room>`` (role ``consult``). A single Redirect of the
caller would break the queue bridge and hang the agent up.

together → hold: the agent first (Setvar role consult, Redirect, wait for its
ConfbridgeJoin), then the caller (Setvar room hold, Redirect). In that order
the main room always holds a marked user, so end_marked never fires on the far
leg.

hold → together: the caller first (Setvar room, Redirect, wait for its
ConfbridgeJoin in the main room), then the agent (Setvar role agent,
Redirect) so that from then on only the caller is marked. If the caller's join
is not seen in time the agent stays marked: the far leg is never cut by a
marked user leaving an otherwise unmarked room.

The far leg (``Local`` with ``/n`` so the pair is not optimised away and both
halves stay visible)::

    Originate Channel=Local/<q-window|e-digits|p-digits>@smeline-dial-target/n
              Context=smeline-conference Exten=s Priority=1 Async=true
              Timeout=<escalation_timeout_seconds * 1000>   (milliseconds)
              ChannelId=<id>  (Uniqueid of the ;1 half; the ;2 half gets
                               Linkedid=<id>, recorded)
              Variable=SMELINE_ROOM=<room>, SMELINE_CONF_ROLE=party|province,
                       SMELINE_LINKEDID=<the call's Linkedid>

The originated pair gets a Linkedid of its own (recorded), hence
``SMELINE_LINKEDID``; the legs are followed here by their Newchannel events
(Uniqueid or Linkedid equal to the ChannelId). The ``OriginateResponse`` is
matched by its Uniqueid, which is the ChannelId (recorded): Reason 4 is an
answer; 3 no answer; 5 busy; anything else (0 is both "busy" and
"unknown" in the recordings) a failure. smeline also gives up on its own a few
seconds after the timeout if no OriginateResponse came.

Not answered → back together with an announcement: the caller (if on hold)
and the agent are brought back together (above), the legs that may be left
are hung up, and the announcement is played *into the main room* by a Local
channel whose ;2 half joins the room as a party while the ;1 half plays the
file; when Playback ends the pair hangs up and leaves::

    Originate Channel=Local/s@smeline-conference/n Application=Playback
              Data=smeline/escalate-no-answer Timeout=10000 Async=true ChannelId=<id>
              Variable=SMELINE_ROOM=<room>, SMELINE_CONF_ROLE=party,
                       SMELINE_LINKEDID=<linkedid>, CHANNEL(language)=zh

Agent actions: *leave* (hand-off) = ``Hangup`` of the agent's leg (the room
keeps the caller and the far leg); *drop* = ``Hangup`` of the far leg's
channels; *cancel* = the same while it is still ringing or consulting. When the
caller ends up alone (agent and far leg gone) smeline sends
``ConfbridgeKick`` of the caller, whose dialplan then runs the survey.

Caller hangs up (Hangup event of the caller's channel): every leg smeline
originated and the agent's leg are hung up (``Hangup``; an already gone
channel's error is ignored).

One escalation at a time per call: a second attempt while one is ringing,
consulting or merged answers 409 ``escalation_in_progress``. Every attempt is
a ``consultations`` row against the call and the expert; an answered one
attaches an escalation to the call record, which makes it joint (协同服务).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from smeline.errors import ApiError, NotFound, ValidationFailed, field_error
from smeline.expert_pool.services import ExpertCandidate, ExpertService
from smeline.routing.numbers import NumberPlan, dial_string, normalise
from smeline.telephony.ami import AmiActions
from smeline.telephony.ami_protocol import AmiMessage
from smeline.telephony.calls import CallRecordData, CallTracker, Escalation
from smeline.telephony.exceptions import (
    TelephonyNotConfigured,
    require_connected,
    send_checked,
)

logger = logging.getLogger(__name__)

CONFERENCE_CONTEXT = "smeline-conference"
DIAL_TARGET_CONTEXT = "smeline-dial-target"
NO_ANSWER_PROMPT = "smeline/escalate-no-answer"
_ROOM_SAFE = re.compile(r"[^-.0-9A-Za-z_]")


class EscalationAmi(AmiActions, Protocol):
    """The part of :class:`~smeline.telephony.ami.AmiClient` this module uses."""

    def add_event_listener(self, callback: Callable[[AmiMessage], None]) -> None: ...


class TargetKind(StrEnum):
    CITY = "city"  # the city centre window's queue
    WINDOW = "window"  # another county window's queue
    PROVINCE = "province"  # the provincial platform (its IVR), through the trunk
    EXPERT = "expert"  # an expert's phone, through the trunk


class Phase(StrEnum):
    IDLE = "idle"
    CONSULTING = "consulting"  # caller on hold; the far leg rings or talks to the agent
    RINGING = "ringing"  # caller and agent together; the far leg rings
    MERGED = "merged"  # the far leg is in the room with the caller


class Outcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CALLER_LEFT = "caller_left"
    DROPPED = "dropped"
    AGENT_LEFT = "agent_left"


class Position(StrEnum):
    QUEUE = "queue"
    TOGETHER = "together"
    HOLD = "hold"


class EscalationInProgress(ApiError):
    status = 409
    error_id = "escalation_in_progress"


class EscalationStateError(ApiError):
    status = 409
    error_id = "escalation_state"


class CallNotFound(NotFound):
    error_id = "call_not_found"


class WindowNotFound(NotFound):
    error_id = "window_not_found"


@dataclass(frozen=True, slots=True)
class TargetRequest:
    """What the agent asked for; resolved into a :class:`Target`."""

    kind: TargetKind
    window_code: str | None = None
    expert_id: int | None = None
    category: str | None = None  # for choosing an expert; default: the call's category


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    ref: str  # window code, expert id or "province"
    exten: str  # the extension in [smeline-dial-target]: q-<window>, e-<digits>, p-<digits>
    role: str  # SMELINE_CONF_ROLE: party | province
    expert: ExpertCandidate | None = None

    @property
    def channel(self) -> str:
        return f"Local/{self.exten}@{DIAL_TARGET_CONTEXT}/n"


@dataclass(frozen=True, slots=True)
class EscalationView:
    linkedid: str
    phase: Phase
    consult: bool
    room: str
    target_kind: TargetKind | None
    target_ref: str | None
    expert_id: int | None
    expert_name: str | None
    consultation_id: int | None
    answered: bool


@dataclass(eq=False)
class _Attempt:
    target: Target
    consult: bool
    consultation_id: int
    channel_id: str  # ChannelId of the Originate = Uniqueid of the Local ;1 half
    phase: Phase
    answered_at: datetime | None = None
    legs: dict[str, str] = field(default_factory=dict)  # uniqueid -> channel name
    ring_task: asyncio.Task[None] | None = None
    #: The OriginateResponse, matched by its Uniqueid (= our ChannelId, recorded).
    response: asyncio.Future[AmiMessage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    agent_left: bool = False
    done: bool = False


@dataclass(eq=False)
class _Call:
    linkedid: str
    room: str
    hold_room: str
    caller_channel: str
    caller_uniqueid: str
    agent_channel: str
    agent_uniqueid: str
    position: Position = Position.QUEUE
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    attempt: _Attempt | None = None
    agent_present: bool = True
    caller_gone: bool = False
    notices: dict[str, dict[str, str]] = field(default_factory=dict)  # channel id -> legs
    join_waiters: dict[tuple[str, str], asyncio.Future[None]] = field(default_factory=dict)

    @property
    def caller_room(self) -> str:
        return self.hold_room if self.position is Position.HOLD else self.room


def room_of(linkedid: str) -> str:
    """Room names the dialplan accepts: ``-.0-9A-Za-z_``, at most 64 characters."""
    return f"esc-{_ROOM_SAFE.sub('_', linkedid)[:50]}"


class EscalationService:
    def __init__(
        self,
        *,
        ami: EscalationAmi | None,
        tracker: CallTracker | None,
        experts: ExpertService,
        plan: NumberPlan,
        windows: Callable[[], Collection[str]],
        now: Callable[[], datetime],
        timeout_seconds: int = 45,
        province_number: str = "",
        answer_grace_seconds: float = 5.0,
        join_wait_seconds: float = 5.0,
    ) -> None:
        self._ami = ami
        self._tracker = tracker
        self.experts = experts
        self._plan = plan
        self._windows = windows
        self._now = now
        #: Seconds the far leg may ring (Originate's Timeout is this * 1000 ms).
        self.timeout_seconds = timeout_seconds
        #: The provincial platform's number, as dialled through the trunk.
        self.province_number = province_number
        self.answer_grace_seconds = answer_grace_seconds
        self.join_wait_seconds = join_wait_seconds
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        if ami is not None:
            ami.add_event_listener(self._on_event)

    # -- public ------------------------------------------------------------------

    def view(self, linkedid: str) -> EscalationView | None:
        state = self._calls.get(linkedid)
        return None if state is None else self._view(state)

    def busy_expert_ids(self) -> set[int]:
        return {
            a.target.expert.id
            for s in self._calls.values()
            if (a := s.attempt) is not None and a.target.expert is not None
        }

    async def start(
        self,
        linkedid: str,
        target: TargetRequest,
        *,
        consult: bool,
        actor_user_id: int | None,
        agent_interface: str | None = None,
    ) -> EscalationView:
        """Ring the far leg; caller and agent go together into the room (or,
        with ``consult``, the caller waits on hold while the agent briefs)."""
        self._connected()
        call = self._tracked_call(linkedid, agent_interface)
        self._forget_ended_calls()
        busy = self._calls.get(linkedid)
        if busy is not None and (busy.lock.locked() or busy.attempt is not None):
            raise EscalationInProgress("This call is already being escalated")
        resolved = await self._resolve(target, call)
        state = self._calls.get(linkedid) or self._new_state(call)
        # No await between this check and taking the lock: two requests for
        # the same call cannot both get past it.
        if state.lock.locked() or state.attempt is not None:
            raise EscalationInProgress("This call is already being escalated")
        self._calls[linkedid] = state
        async with state.lock:
            now = self._now()
            consultation_id = await self.experts.start_consultation(
                linkedid=linkedid,
                target_kind=resolved.kind.value,
                target_ref=resolved.ref,
                expert_id=resolved.expert.id if resolved.expert else None,
                agent_user_id=actor_user_id,
                at=now,
            )
            attempt = _Attempt(
                target=resolved,
                consult=consult,
                consultation_id=consultation_id,
                channel_id=f"smeline-esc-{uuid.uuid4().hex[:20]}",
                phase=Phase.CONSULTING if consult else Phase.RINGING,
            )
            state.attempt = attempt
            try:
                if consult:
                    await self._to_hold(state)
                else:
                    await self._to_together(state)
            except ApiError:
                state.attempt = None
                await self._log_outcome(attempt, Outcome.FAILED, ended=True)
                raise
            try:
                # Answered with "Originate successfully queued"; the outcome
                # comes later as an OriginateResponse event with our ChannelId.
                await self._send("Originate", self._originate_fields(state, attempt))
            except ApiError:
                await self._end_attempt(state, attempt, Outcome.FAILED)
                await self._after_target_gone(state)
                raise
            attempt.ring_task = self._spawn(self._ring(state, attempt))
            return self._view(state)

    async def merge(self, linkedid: str, *, agent_interface: str | None = None) -> EscalationView:
        """After a private consultation: the caller joins the agent and the far leg."""
        state = self._state(linkedid, agent_interface)
        async with state.lock:
            attempt = state.attempt
            if attempt is None or attempt.phase is not Phase.CONSULTING:
                raise EscalationStateError(
                    "There is no private consultation to merge", error_id="not_consulting"
                )
            await self._to_together(state)
            attempt.phase = Phase.MERGED if attempt.answered_at else Phase.RINGING
            return self._view(state)

    async def agent_leave(
        self, linkedid: str, *, agent_interface: str | None = None
    ) -> EscalationView:
        """Hand-off: the agent hangs up, caller and far leg stay in the room."""
        state = self._state(linkedid, agent_interface)
        async with state.lock:
            attempt = state.attempt
            if attempt is None or attempt.phase is not Phase.MERGED or not state.agent_present:
                raise EscalationStateError(
                    "The agent can leave only once the far party is in the room",
                    error_id="not_merged",
                )
            attempt.agent_left = True
            state.agent_present = False
            await self._send("Hangup", [("Channel", state.agent_channel)])
            await self._log_outcome(attempt, Outcome.AGENT_LEFT, ended=False)
            return self._view(state)

    async def drop_target(
        self, linkedid: str, *, agent_interface: str | None = None
    ) -> EscalationView:
        """The far party is let go; caller and agent carry on together."""
        state = self._state(linkedid, agent_interface)
        async with state.lock:
            attempt = state.attempt
            if attempt is None or attempt.answered_at is None:
                raise EscalationStateError(
                    "No far party is connected (cancel a ringing escalation instead)",
                    error_id="target_not_connected",
                )
            await self._end_attempt(state, attempt, Outcome.DROPPED)
            await self._after_target_gone(state)
            return self._view(state)

    async def cancel(self, linkedid: str, *, agent_interface: str | None = None) -> EscalationView:
        """Give up on a far leg that is still ringing (or a consultation not merged)."""
        state = self._state(linkedid, agent_interface)
        async with state.lock:
            attempt = state.attempt
            if attempt is None or attempt.phase is Phase.MERGED:
                raise EscalationStateError(
                    "Nothing to cancel (drop a connected far party instead)",
                    error_id="nothing_to_cancel",
                )
            await self._end_attempt(state, attempt, Outcome.DROPPED)
            await self._after_target_gone(state)
            return self._view(state)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- lookups -------------------------------------------------------------------

    def _connected(self) -> EscalationAmi:
        if self._tracker is None:
            raise TelephonyNotConfigured("Telephony is not configured (no Asterisk)")
        return require_connected(self._ami)

    def _tracked_call(self, linkedid: str, agent_interface: str | None) -> CallRecordData:
        call = self._tracker.calls.get(linkedid) if self._tracker is not None else None
        if call is None:
            raise CallNotFound("No such call in progress", details={"linkedid": linkedid})
        if agent_interface is not None and call.agent_interface != agent_interface:
            raise ApiError(
                "Only the agent on the call escalates it",
                error_id="not_your_call",
                status=403,
            )
        return call

    def _forget_ended_calls(self) -> None:
        """Calls whose end smeline did not see (a reconnect gap) are closed by
        the tracker; their escalation state goes with them."""
        tracker = self._tracker
        if tracker is None:
            return
        for linkedid, state in list(self._calls.items()):
            if linkedid not in tracker.calls and not state.lock.locked():
                del self._calls[linkedid]

    def _new_state(self, call: CallRecordData) -> _Call:
        tracker = self._tracker
        agent = (
            tracker.channels.get(call.agent_uniqueid)
            if tracker is not None and call.agent_uniqueid
            else None
        )
        if agent is None or call.agent_uniqueid is None:
            raise ApiError(
                "The call has no agent leg to escalate from", error_id="no_agent_leg", status=409
            )
        room = room_of(call.linkedid)
        return _Call(
            linkedid=call.linkedid,
            room=room,
            hold_room=f"{room}-hold",
            caller_channel=call.caller_channel,
            caller_uniqueid=call.caller_uniqueid,
            agent_channel=agent.name,
            agent_uniqueid=call.agent_uniqueid,
        )

    def _state(self, linkedid: str, agent_interface: str | None) -> _Call:
        self._connected()
        state = self._calls.get(linkedid)
        if state is None or state.caller_gone:
            if self._tracker is not None and linkedid in self._tracker.calls:
                raise EscalationStateError(
                    "This call is not being escalated", error_id="no_escalation"
                )
            raise CallNotFound("No such call in progress", details={"linkedid": linkedid})
        self._tracked_call(linkedid, agent_interface)
        return state

    async def _resolve(self, request: TargetRequest, call: CallRecordData) -> Target:
        kind = request.kind
        if kind in (TargetKind.CITY, TargetKind.WINDOW):
            window = "city" if kind is TargetKind.CITY else (request.window_code or "")
            if window not in self._windows():
                raise WindowNotFound("No such window", details={"window_code": window})
            return Target(kind, window, f"q-{window}", "party")
        if kind is TargetKind.PROVINCE:
            key = normalise(self.province_number, self._plan)
            if not self.province_number or not key.diallable:
                raise ApiError(
                    "The provincial platform's number is not configured",
                    error_id="province_not_configured",
                    status=409,
                )
            # DTMF reaches the platform's IVR: the room's profiles pass it through.
            return Target(kind, "province", f"p-{dial_string(key, self._plan)}", "province")
        now = self._now()
        if request.expert_id is not None:
            expert = await self.experts.check_available(request.expert_id, None, now)
        else:
            category = request.category or call.category
            if not category:
                raise ValidationFailed(
                    "Choose a service category (the call has none) or an expert",
                    details=[field_error("category_code", "missing", "no category")],
                )
            chosen = await self.experts.choose(category, now, extra_busy=self.busy_expert_ids())
            if chosen is None:
                raise ApiError(
                    "No expert for this category can be asked now",
                    error_id="no_expert_available",
                    status=409,
                    details={"category": category},
                )
            expert = chosen
        key = normalise(expert.phone_key, self._plan)
        if not key.diallable:
            raise ApiError(
                "The expert's number cannot be dialled", error_id="not_diallable", status=422
            )
        return Target(kind, str(expert.id), f"e-{dial_string(key, self._plan)}", "party", expert)

    def _view(self, state: _Call) -> EscalationView:
        attempt = state.attempt
        target = attempt.target if attempt else None
        return EscalationView(
            linkedid=state.linkedid,
            phase=attempt.phase if attempt else Phase.IDLE,
            consult=attempt.consult if attempt else False,
            room=state.room,
            target_kind=target.kind if target else None,
            target_ref=target.ref if target else None,
            expert_id=target.expert.id if target and target.expert else None,
            expert_name=target.expert.name if target and target.expert else None,
            consultation_id=attempt.consultation_id if attempt else None,
            answered=bool(attempt and attempt.answered_at),
        )

    # -- AMI -----------------------------------------------------------------------

    async def _send(self, action: str, fields: Sequence[tuple[str, str]]) -> None:
        self._connected()
        await send_checked(self._ami, action, fields)

    async def _try(self, action: str, fields: Sequence[tuple[str, str]]) -> bool:
        """For clean-up: a channel that is already gone is not an error."""
        try:
            await self._send(action, fields)
        except ApiError as exc:
            logger.debug("escalation clean-up %s: %s", action, exc.details)
            return False
        return True

    async def _setvars(self, channel: str, **values: str) -> None:
        for name, value in values.items():
            await self._send("Setvar", [("Channel", channel), ("Variable", name), ("Value", value)])

    async def _redirect(self, channel: str, extra: str | None = None) -> None:
        fields = [
            ("Channel", channel),
            ("Context", CONFERENCE_CONTEXT),
            ("Exten", "s"),
            ("Priority", "1"),
        ]
        if extra is not None:
            fields += [
                ("ExtraChannel", extra),
                ("ExtraContext", CONFERENCE_CONTEXT),
                ("ExtraExten", "s"),
                ("ExtraPriority", "1"),
            ]
        await self._send("Redirect", fields)

    async def _redirect_and_wait_join(self, state: _Call, channel: str, uniqueid: str) -> bool:
        """Redirect one leg into the main room; True once its ConfbridgeJoin is seen."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (uniqueid, state.room)
        state.join_waiters[key] = future
        try:
            await self._redirect(channel)
            await asyncio.wait_for(future, self.join_wait_seconds)
            return True
        except TimeoutError:
            logger.warning("escalation %s: %s did not join %s", state.linkedid, channel, state.room)
            return False
        finally:
            state.join_waiters.pop(key, None)

    async def _to_together(self, state: _Call) -> None:
        if state.position is Position.TOGETHER:
            return
        if state.position is Position.QUEUE:
            await self._setvars(
                state.caller_channel, SMELINE_ROOM=state.room, SMELINE_CONF_ROLE="caller"
            )
            await self._setvars(
                state.agent_channel, SMELINE_ROOM=state.room, SMELINE_CONF_ROLE="agent"
            )
            # A dual Redirect: one at a time would break the queue bridge and
            # hang the other leg up (recorded: both arrive in the room).
            await self._redirect(state.caller_channel, state.agent_channel)
            state.position = Position.TOGETHER
            return
        # From hold: the caller joins the main room first, so that it always
        # has a marked user; only then does the agent rejoin as end_marked.
        await self._setvars(state.caller_channel, SMELINE_ROOM=state.room)
        joined = await self._redirect_and_wait_join(
            state, state.caller_channel, state.caller_uniqueid
        )
        state.position = Position.TOGETHER
        if joined and state.agent_present:
            await self._setvars(state.agent_channel, SMELINE_CONF_ROLE="agent")
            await self._redirect(state.agent_channel)

    async def _to_hold(self, state: _Call) -> None:
        if state.position is Position.HOLD:
            return
        if state.position is Position.QUEUE:
            await self._setvars(
                state.caller_channel, SMELINE_ROOM=state.hold_room, SMELINE_CONF_ROLE="caller"
            )
            await self._setvars(
                state.agent_channel, SMELINE_ROOM=state.room, SMELINE_CONF_ROLE="consult"
            )
            await self._redirect(state.caller_channel, state.agent_channel)
            state.position = Position.HOLD
            return
        # From the room: the agent rejoins as a marked user before the caller
        # (the only other marked user) leaves, or end_marked would fire.
        await self._setvars(state.agent_channel, SMELINE_CONF_ROLE="consult")
        await self._redirect_and_wait_join(state, state.agent_channel, state.agent_uniqueid)
        await self._setvars(state.caller_channel, SMELINE_ROOM=state.hold_room)
        await self._redirect(state.caller_channel)
        state.position = Position.HOLD

    def _originate_fields(self, state: _Call, attempt: _Attempt) -> list[tuple[str, str]]:
        return [
            ("Channel", attempt.target.channel),
            ("Context", CONFERENCE_CONTEXT),
            ("Exten", "s"),
            ("Priority", "1"),
            # Originate's Timeout is in milliseconds (recorded: 5000 rang 5 s).
            ("Timeout", str(self.timeout_seconds * 1000)),
            # The ;1 half's Uniqueid: the OriginateResponse carries it, and the
            # ;2 half's Linkedid is it (recorded), so every leg can be found.
            ("ChannelId", attempt.channel_id),
            ("Async", "true"),
            ("Variable", f"SMELINE_ROOM={state.room}"),
            ("Variable", f"SMELINE_CONF_ROLE={attempt.target.role}"),
            # The originated pair gets a Linkedid of its own (recorded); this
            # ties it to the call in the call records.
            ("Variable", f"SMELINE_LINKEDID={state.linkedid}"),
        ]

    async def _ring(self, state: _Call, attempt: _Attempt) -> None:
        try:
            message = await asyncio.wait_for(
                asyncio.shield(attempt.response),
                self.timeout_seconds + self.answer_grace_seconds,
            )
        except TimeoutError:
            # No OriginateResponse although Asterisk's own Timeout has passed
            # (a lost event, a reconnect): smeline gives up itself.
            outcome = Outcome.NO_ANSWER
        else:
            outcome = _originate_outcome(message)
        async with state.lock:
            await self._originate_result(state, attempt, outcome)

    async def _originate_result(self, state: _Call, attempt: _Attempt, outcome: Outcome) -> None:
        if state.attempt is not attempt or attempt.done:
            if outcome is Outcome.ANSWERED:
                # Answered after smeline gave up on it: not wanted any more.
                await self._hangup_legs(attempt.channel_id, attempt.legs)
            return
        if outcome is Outcome.ANSWERED:
            attempt.answered_at = self._now()
            if attempt.phase is Phase.RINGING:
                attempt.phase = Phase.MERGED  # the dialplan put it into the room
            await self._db(
                self.experts.consultation_answered, attempt.consultation_id, attempt.answered_at
            )
            self._mark_joint(state, attempt)
            return
        await self._end_attempt(state, attempt, outcome)
        await self._after_target_gone(state, announce=True)

    async def _end_attempt(self, state: _Call, attempt: _Attempt, outcome: Outcome) -> None:
        attempt.done = True
        state.attempt = None
        task = attempt.ring_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        await self._hangup_legs(attempt.channel_id, attempt.legs)
        await self._log_outcome(attempt, outcome, ended=True)

    async def _after_target_gone(self, state: _Call, *, announce: bool = False) -> None:
        """Caller and agent back together; the caller alone is let go (survey)."""
        if state.caller_gone:
            return
        if not state.agent_present:
            await self._try(
                "ConfbridgeKick",
                [("Conference", state.caller_room), ("Channel", state.caller_channel)],
            )
            return
        try:
            await self._to_together(state)
        except ApiError as exc:
            logger.warning("escalation %s: could not reunite: %s", state.linkedid, exc.details)
            return
        if announce:
            await self._announce(state)

    async def _announce(self, state: _Call) -> None:
        channel_id = f"smeline-note-{uuid.uuid4().hex[:20]}"
        state.notices[channel_id] = {}
        await self._try(
            "Originate",
            [
                ("Channel", f"Local/s@{CONFERENCE_CONTEXT}/n"),
                ("Application", "Playback"),
                ("Data", NO_ANSWER_PROMPT),
                ("Timeout", "10000"),
                ("Async", "true"),
                ("ChannelId", channel_id),
                # The ;2 half joins the room (a party: only while the caller is
                # there) and carries into it what the ;1 half plays.
                ("Variable", f"SMELINE_ROOM={state.room}"),
                ("Variable", "SMELINE_CONF_ROLE=party"),
                ("Variable", f"SMELINE_LINKEDID={state.linkedid}"),
                # Playback runs on the ;1 half, which never passes through the
                # dialplan that sets the language: zh prompts, not en.
                ("Variable", "CHANNEL(language)=zh"),
            ],
        )

    async def _hangup_legs(self, channel_id: str, legs: dict[str, str]) -> None:
        names = list(legs.values())
        if not names:
            # No Newchannel seen yet: Asterisk finds a channel by its Uniqueid
            # too, and the ChannelId is the ;1 half's Uniqueid.
            names = [channel_id]
        for name in names:
            await self._try("Hangup", [("Channel", name)])

    def _mark_joint(self, state: _Call, attempt: _Attempt) -> None:
        """An escalated call is a joint service (协同服务). The tracker attaches
        far legs it sees join the room; a leg that announced its call through
        SMELINE_LINKEDID first is already the call's own, so it is attached
        here, with what smeline knows of the target."""
        call = self._tracker.calls.get(state.linkedid) if self._tracker else None
        if call is None:
            return
        target = f"{attempt.target.kind.value}:{attempt.target.ref}"
        for escalation in call.escalations:
            if escalation.uniqueid in attempt.legs or escalation.uniqueid == attempt.channel_id:
                escalation.target = target
                return
        call.escalations.append(
            Escalation(
                conference=state.room,
                channel=attempt.legs.get(attempt.channel_id, attempt.target.channel),
                uniqueid=attempt.channel_id,
                target=target,
                joined_at=attempt.answered_at,
            )
        )

    async def _log_outcome(self, attempt: _Attempt, outcome: Outcome, *, ended: bool) -> None:
        await self._db(
            self.experts.consultation_outcome,
            attempt.consultation_id,
            outcome.value,
            ended_at=self._now() if ended else None,
        )

    async def _db(
        self, fn: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kw: Any
    ) -> None:
        # The call goes on if the database hiccups; the log says what is missing.
        try:
            await fn(*args, **kw)
        except Exception:
            logger.exception("escalation: consultation log not written")

    # -- events --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("escalation task failed", exc_info=task.exception())

    def _on_event(self, message: AmiMessage) -> None:
        if not self._calls:
            return
        name = message.event
        if name == "Newchannel":
            self._on_newchannel(message)
        elif name == "OriginateResponse":
            uniqueid = message.get("Uniqueid")
            for state in self._calls.values():
                attempt = state.attempt
                if attempt is not None and attempt.channel_id == uniqueid:
                    if not attempt.response.done():
                        attempt.response.set_result(message)
        elif name in ("HangupRequest", "SoftHangupRequest"):
            # The caller is going (recorded: HangupRequest comes first, then
            # ConfBridge ends the end_marked legs, and the caller's own Hangup
            # only after theirs). From now on a far leg or the agent going is
            # part of the caller leaving, not a hand-off or a drop.
            uniqueid = message.get("Uniqueid")
            for state in self._calls.values():
                if uniqueid == state.caller_uniqueid:
                    state.caller_gone = True
                elif uniqueid == state.agent_uniqueid:
                    # Likewise the agent: a far leg ended by the agent leaving
                    # a consultation went with the agent, it did not hang up.
                    state.agent_present = False
        elif name == "Hangup":
            self._on_hangup(message)
        elif name == "ConfbridgeJoin":
            key = (message.get("Uniqueid") or "", message.get("Conference") or "")
            for state in self._calls.values():
                future = state.join_waiters.get(key)
                if future is not None and not future.done():
                    future.set_result(None)

    def _on_newchannel(self, message: AmiMessage) -> None:
        uniqueid = message.get("Uniqueid") or ""
        linkedid = message.get("Linkedid") or ""
        channel = message.get("Channel") or ""
        for state in self._calls.values():
            attempt = state.attempt
            # ;1 has the ChannelId as Uniqueid, ;2 (and what it dials) as Linkedid.
            if attempt is not None and attempt.channel_id in (uniqueid, linkedid):
                attempt.legs[uniqueid] = channel
                return
            for channel_id, legs in state.notices.items():
                if channel_id in (uniqueid, linkedid):
                    legs[uniqueid] = channel
                    return

    def _on_hangup(self, message: AmiMessage) -> None:
        uniqueid = message.get("Uniqueid") or ""
        for state in list(self._calls.values()):
            if uniqueid == state.caller_uniqueid:
                state.caller_gone = True
                self._spawn(self._caller_left(state))
                return
            if uniqueid == state.agent_uniqueid:
                self._spawn(self._agent_gone(state))
                return
            for channel_id, legs in list(state.notices.items()):
                if legs.pop(uniqueid, None) is not None and not legs:
                    del state.notices[channel_id]
            attempt = state.attempt
            if attempt is not None and attempt.legs.pop(uniqueid, None) is not None:
                if attempt.answered_at is not None and not attempt.done:
                    self._spawn(self._target_gone(state, attempt))
                return

    async def _caller_left(self, state: _Call) -> None:
        """Every leftover leg goes, even though end_marked would see to most."""
        async with state.lock:
            self._calls.pop(state.linkedid, None)
            attempt = state.attempt
            if attempt is not None:
                await self._end_attempt(state, attempt, Outcome.CALLER_LEFT)
            for channel_id, legs in list(state.notices.items()):
                await self._hangup_legs(channel_id, legs)
            state.notices.clear()
            if state.agent_present:
                state.agent_present = False
                await self._try("Hangup", [("Channel", state.agent_channel)])
            for future in state.join_waiters.values():
                if not future.done():
                    future.cancel()

    async def _agent_gone(self, state: _Call) -> None:
        async with state.lock:
            if state.caller_gone:
                return
            state.agent_present = False
            attempt = state.attempt
            if attempt is not None and attempt.phase in (Phase.MERGED, Phase.RINGING):
                # The caller stays in the room with the far party (or with it
                # ringing): a hand-off the agent did not announce.
                if not attempt.agent_left:
                    attempt.agent_left = True
                    await self._log_outcome(attempt, Outcome.AGENT_LEFT, ended=False)
                return
            if attempt is not None:
                # Consulting: the far leg was with the agent; the caller is on hold.
                await self._end_attempt(state, attempt, Outcome.AGENT_LEFT)
            await self._after_target_gone(state)

    async def _target_gone(self, state: _Call, attempt: _Attempt) -> None:
        """The far party hung up on its own."""
        async with state.lock:
            if state.attempt is not attempt or attempt.done or state.caller_gone:
                return
            agent_left = attempt.agent_left or not state.agent_present
            outcome = Outcome.AGENT_LEFT if agent_left else Outcome.ANSWERED
            await self._end_attempt(state, attempt, outcome)
            await self._after_target_gone(state)


def _originate_outcome(message: AmiMessage) -> Outcome:
    reason = message.get("Reason")
    if (message.get("Response") or "").lower() == "success" and reason == "4":
        return Outcome.ANSWERED
    if reason == "3":  # rang until Originate's Timeout (recorded)
        return Outcome.NO_ANSWER
    if reason == "5":  # AST_CONTROL_BUSY; a PJSIP 486 was recorded as 0, though
        return Outcome.BUSY
    return Outcome.FAILED


__all__ = [
    "CallNotFound",
    "EscalationAmi",
    "EscalationInProgress",
    "EscalationService",
    "EscalationStateError",
    "EscalationView",
    "Outcome",
    "Phase",
    "TargetKind",
    "TargetRequest",
    "WindowNotFound",
    "room_of",
]
