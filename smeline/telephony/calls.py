"""From the AMI event stream to call records and domain events — pure, no I/O.

One call record per call, keyed by Asterisk's ``Linkedid`` (the Uniqueid of
the channel that started the call; every channel the call creates carries it).
What the recordings of a real Asterisk 22 show, and what this builder relies
on (see ``tests/recordings/``):

- a queued call: ``QueueCallerJoin`` → ``AgentCalled``/``DialBegin`` … →
  ``QueueCallerLeave`` → ``AgentConnect`` (``HoldTime``: seconds waited in that
  queue) → bridge → ``HangupRequest`` → ``AgentComplete`` (``TalkTime``,
  ``Reason: caller|agent``) → ``Hangup`` of both legs. QueueCallerLeave comes
  *before* AgentConnect.
- a queue **timeout also emits QueueCallerAbandon** (with HoldTime), then
  QueueCallerLeave. It is told from a real abandon by what came before it: a
  caller who hangs up produces ``HangupRequest``/``SoftHangupRequest`` on its
  channel first; a timeout does not. An AMI ``Hangup`` action produces no
  HangupRequest either; such a call is still closed as abandoned when its
  channel goes (it was never answered).
- a county queue that times out and a city queue that answers is ONE call: the
  same channel joins the second queue; the wait is the sum of both HoldTimes.
- a three-way escalation redirects caller and agent into a ConfBridge and
  originates the third party; the originated leg gets a Linkedid of its own,
  so it is attached to the call through the conference room it joins (and,
  when smeline originated it, through the ``SMELINE_LINKEDID`` variable).
  Redirecting both legs does not end the queue call: AgentComplete only comes
  when the caller hangs up and its TalkTime includes the conference.
- ``MixMonitorStart`` carries no file name: the file comes from the
  ``SMELINE_RECORDING`` / ``MIXMONITOR_FILENAME`` variables.
- the post-call survey runs in the dialplan after the agent hangs up (Queue
  option ``c``); the dialplan sets ``SMELINE_SURVEY=offered`` before asking and
  the survey AGI sets the digit. A caller who hangs up during the survey stays
  at ``offered``, recorded as *no answer* — never as 不满意.

Events carry ``Timestamp`` when ``timestampevents=yes`` (the shipped
manager.conf); otherwise the time the event was received is used. Durations
come from Asterisk's own HoldTime/TalkTime where it gives them, so replaying
the same stream twice gives the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from smeline.telephony.ami_protocol import AmiMessage


class CallOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    ABANDONED = "abandoned"  # left a queue (hung up) without being answered
    VOICEMAIL = "voicemail"  # left a message after hours / when nobody was there
    CALLBACK = "callback"  # asked to be called back instead of waiting
    UNQUEUED = "unqueued"  # hung up before reaching a queue (IVR, routing)


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class SurveyAnswer(StrEnum):
    SATISFIED = "satisfied"  # 满意
    NEUTRAL = "neutral"  # 一般
    DISSATISFIED = "dissatisfied"  # 不满意
    NO_ANSWER = "no_answer"  # offered, but the caller hung up or pressed nothing valid


SURVEY_DIGITS = {
    "1": SurveyAnswer.SATISFIED,
    "2": SurveyAnswer.NEUTRAL,
    "3": SurveyAnswer.DISSATISFIED,
}

#: Channel variables smeline reads from VarSet events. Everything else is
#: filtered out by manager.conf's eventfilter and ignored here if it comes.
TRACKED_VARIABLES = frozenset(
    {
        "SMELINE_COUNTY",
        "SMELINE_WINDOW",
        "SMELINE_CATEGORY",
        "SMELINE_CALLER_KEY",
        "SMELINE_DIRECTION",
        "SMELINE_TICKET",
        "SMELINE_LINKEDID",
        "SMELINE_ESCALATION",
        "SMELINE_SURVEY",
        "SMELINE_RECORDING",
        "SMELINE_OUTCOME",
        "MIXMONITOR_FILENAME",
    }
)


@dataclass(slots=True)
class Escalation:
    conference: str
    channel: str
    uniqueid: str
    target: str | None = None  # kind:id set by smeline when it originated the leg
    joined_at: datetime | None = None
    left_at: datetime | None = None


@dataclass(slots=True)
class CallRecordData:
    linkedid: str
    direction: CallDirection
    caller_channel: str
    caller_uniqueid: str
    caller_number: str  # as Asterisk gave it; normalised by the service
    caller_name: str
    started_at: datetime
    county: str | None = None
    category: str | None = None
    windows: list[str] = field(default_factory=list)  # every window queued at, in order
    queues: list[str] = field(default_factory=list)
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    wait_seconds: int = 0
    talk_seconds: int = 0
    handle_seconds: int | None = None
    agent_interface: str | None = None
    agent_name: str | None = None
    answered_queue: str | None = None
    outcome: CallOutcome = CallOutcome.IN_PROGRESS
    overflowed: bool = False
    recording_file: str | None = None
    survey: SurveyAnswer | None = None
    ticket_ref: str | None = None
    escalations: list[Escalation] = field(default_factory=list)
    # internal bookkeeping, not persisted
    agent_uniqueid: str | None = None
    agent_answered_at: datetime | None = None
    hangup_requested: bool = False
    in_queue: str | None = None
    queue_entered_at: datetime | None = None
    survey_offered: bool = False
    channels: set[str] = field(default_factory=set)

    @property
    def is_joint(self) -> bool:
        """An escalated call is a joint service (协同服务)."""
        return bool(self.escalations)

    def row(self) -> dict[str, Any]:
        """The persisted columns (see ``telephony.models.CallRecord``)."""
        return {
            "linkedid": self.linkedid,
            "direction": self.direction.value,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "county_code": self.county,
            "category_code": self.category,
            "windows": list(self.windows),
            "queues": list(self.queues),
            "started_at": self.started_at,
            "queued_at": self.queued_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "wait_seconds": self.wait_seconds,
            "talk_seconds": self.talk_seconds,
            "handle_seconds": self.handle_seconds,
            "agent_interface": self.agent_interface,
            "agent_name": self.agent_name,
            "answered_window": self.answered_queue,
            "outcome": self.outcome.value,
            "overflowed": self.overflowed,
            "joint": self.is_joint,
            "recording_file": self.recording_file,
            "survey": self.survey.value if self.survey else None,
            "ticket_ref": self.ticket_ref,
            "escalations": [
                {
                    "conference": e.conference,
                    "channel": e.channel,
                    "target": e.target,
                    "joined_at": e.joined_at.isoformat() if e.joined_at else None,
                    "left_at": e.left_at.isoformat() if e.left_at else None,
                }
                for e in self.escalations
            ],
        }


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A domain event for the bus: ``call.queued``, ``agent.state`` …"""

    name: str
    payload: dict[str, Any]


@dataclass(slots=True)
class _Channel:
    name: str
    uniqueid: str
    linkedid: str
    owner: str | None  # linkedid of the call record this channel belongs to


def event_time(message: AmiMessage, received_at: datetime) -> datetime:
    stamp = message.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), tz=UTC)
        except ValueError:
            pass
    return received_at


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _duration(value: str | None) -> timedelta:
    """CoreShowChannel's ``Duration: 00:00:01``."""
    try:
        hours, minutes, seconds = (int(part) for part in (value or "").split(":"))
    except ValueError:
        return timedelta(0)
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _strip_unknown(value: str | None) -> str:
    return "" if value in (None, "<unknown>") else str(value)


def default_window_of_queue(queue: str) -> str:
    """smeline names each window's queue after the window (``meijiang``, ``city``)."""
    return queue


class CallTracker:
    """Consumes AMI events, keeps the calls in progress, returns domain events.

    ``inbound_contexts`` are the dialplan contexts where a new channel starts
    an inbound call record (the trunk's context); a call also starts when a
    channel joins a queue. ``outbound`` calls start from channels smeline
    originated (``SMELINE_DIRECTION=outbound``).
    """

    def __init__(
        self,
        *,
        inbound_contexts: frozenset[str] = frozenset({"inbound", "smeline-inbound"}),
        window_of_queue: Callable[[str], str | None] = default_window_of_queue,
        survey_variable: str = "SMELINE_SURVEY",
    ) -> None:
        self.inbound_contexts = inbound_contexts
        self.survey_variable = survey_variable
        self._tracked = TRACKED_VARIABLES | {survey_variable}
        self.window_of_queue = window_of_queue
        self.calls: dict[str, CallRecordData] = {}
        self.channels: dict[str, _Channel] = {}
        self.conferences: dict[str, str] = {}  # conference name -> owning linkedid
        self._pending_conference: dict[str, list[tuple[_Channel, datetime]]] = {}
        self.finished: list[CallRecordData] = []
        self._handlers: dict[str, Callable[[AmiMessage, datetime], list[CallEvent]]] = {
            "Newchannel": self._on_newchannel,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "QueueCallerLeave": self._on_queue_leave,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_complete,
            "HangupRequest": self._on_hangup_request,
            "SoftHangupRequest": self._on_hangup_request,
            "Hangup": self._on_hangup,
            "VarSet": self._on_varset,
            "ConfbridgeJoin": self._on_conf_join,
            "ConfbridgeLeave": self._on_conf_leave,
            "ConfbridgeEnd": self._on_conf_end,
            "QueueMemberStatus": self._on_member,
            "QueueMemberPause": self._on_member,
            "QueueMemberAdded": self._on_member,
            "QueueMemberRemoved": self._on_member,
        }

    # -- public -----------------------------------------------------------

    def feed(self, message: AmiMessage, received_at: datetime) -> list[CallEvent]:
        name = message.event
        if name is None:
            return []
        handler = self._handlers.get(name)
        if handler is None:
            return []
        return handler(message, event_time(message, received_at))

    def drain_finished(self) -> list[CallRecordData]:
        done, self.finished = self.finished, []
        return done

    def reconcile(self, live_uniqueids: set[str], at: datetime) -> list[CallEvent]:
        """After a (re)connect: close every call none of whose channels is live.

        ``live_uniqueids`` come from CoreShowChannels. A call that ended while
        smeline was not listening must not stay on the wallboard (no phantom
        calls); its end time is ``at`` unless the service corrects it from the
        queue_log.
        """
        events: list[CallEvent] = []
        for uniqueid in [u for u in self.channels if u not in live_uniqueids]:
            channel = self.channels.pop(uniqueid)
            call = self.calls.get(channel.owner or "")
            if call is not None:
                call.channels.discard(uniqueid)
        for linkedid in [k for k, c in self.calls.items() if not c.channels]:
            events.extend(self._close(self.calls[linkedid], at))
        return events

    def adopt_live(self, channels: Iterable[AmiMessage], at: datetime) -> list[CallEvent]:
        """After a (re)connect: calls that started while smeline was away.

        ``channels`` are CoreShowChannel items. A channel whose Uniqueid is
        its Linkedid started a call; if it came in on an inbound context or
        sits in Queue(), it gets a record (started ``Duration`` ago), the
        other channels of that call are attached. Their later events (Agent*,
        Hangup) then land on a known call instead of being dropped.
        """
        items = list(channels)
        events: list[CallEvent] = []
        for item in items:
            uniqueid = item.get("Uniqueid") or ""
            linkedid = item.get("Linkedid") or uniqueid
            if linkedid in self.calls or uniqueid != linkedid:
                continue
            application = item.get("Application") or ""
            if item.get("Context") not in self.inbound_contexts and application != "Queue":
                continue
            call = self._start_call(
                item, at - _duration(item.get("Duration")), CallDirection.INBOUND
            )
            if application == "Queue":
                queue = (item.get("ApplicationData") or "").split(",", 1)[0]
                if queue:
                    call.queues.append(queue)
                    window = self.window_of_queue(queue)
                    if window:
                        call.windows.append(window)
                    if item.get("BridgeId"):
                        # Already talking to an agent; the answer time is unknown.
                        call.answered_at = at
                        call.outcome = CallOutcome.ANSWERED
                        call.answered_queue = window or queue
                    else:
                        call.in_queue = queue
                        call.queue_entered_at = at
                        call.queued_at = at
            if call.in_queue is not None:
                payload = self._public(call)
                payload.update(position=0, priority=None)
                events.append(CallEvent("call.queued", payload))
            elif call.answered_at is not None:
                payload = self._public(call)
                payload["agent_name"] = None
                events.append(CallEvent("call.answered", payload))
        for item in items:
            uniqueid = item.get("Uniqueid") or ""
            linkedid = item.get("Linkedid") or uniqueid
            known = self.calls.get(linkedid)
            if known is not None and uniqueid not in known.channels:
                self._adopt(uniqueid, item.get("Channel") or "", linkedid, known)
                if known.answered_at is not None and known.agent_uniqueid is None:
                    # The other leg of an answered queue call is the agent's.
                    known.agent_uniqueid = uniqueid
        return events

    def restore_conference(
        self, conference: str, members: Iterable[AmiMessage], at: datetime
    ) -> None:
        """After a (re)connect: who is in a ConfBridge room (ConfbridgeList)."""
        listed = list(members)
        owner: CallRecordData | None = None
        for item in listed:
            channel = self.channels.get(item.get("Uniqueid") or "")
            if channel is not None and channel.owner in self.calls:
                owner = self.calls[channel.owner]
                break
        if owner is None:
            return
        self.conferences[conference] = owner.linkedid
        known = {e.uniqueid for e in owner.escalations}
        for item in listed:
            uniqueid = item.get("Uniqueid") or ""
            if uniqueid in owner.channels or uniqueid in known:
                continue
            channel = self.channels.get(uniqueid) or self._adopt(
                uniqueid, item.get("Channel") or "", item.get("Linkedid") or uniqueid, None
            )
            self._attach(owner, conference, channel, at)

    # -- helpers ----------------------------------------------------------

    def _call_of(self, message: AmiMessage) -> CallRecordData | None:
        uniqueid = message.get("Uniqueid")
        channel = self.channels.get(uniqueid or "")
        if channel is not None and channel.owner is not None:
            return self.calls.get(channel.owner)
        return self.calls.get(message.get("Linkedid") or "")

    def _start_call(
        self, message: AmiMessage, at: datetime, direction: CallDirection
    ) -> CallRecordData:
        linkedid = message.get("Linkedid") or message.get("Uniqueid") or ""
        uniqueid = message.get("Uniqueid") or linkedid
        call = CallRecordData(
            linkedid=linkedid,
            direction=direction,
            caller_channel=message.get("Channel") or "",
            caller_uniqueid=uniqueid,
            caller_number=_strip_unknown(message.get("CallerIDNum")),
            caller_name=_strip_unknown(message.get("CallerIDName")),
            started_at=at,
        )
        self.calls[linkedid] = call
        self._adopt(uniqueid, message.get("Channel") or "", linkedid, call)
        return call

    def _adopt(
        self, uniqueid: str, name: str, linkedid: str, call: CallRecordData | None
    ) -> _Channel:
        channel = self.channels.get(uniqueid)
        if channel is None:
            channel = _Channel(name=name, uniqueid=uniqueid, linkedid=linkedid, owner=None)
            self.channels[uniqueid] = channel
        if call is not None:
            channel.owner = call.linkedid
            call.channels.add(uniqueid)
        return channel

    def _public(self, call: CallRecordData) -> dict[str, Any]:
        return {
            "linkedid": call.linkedid,
            "direction": call.direction.value,
            "caller_number": call.caller_number,
            "county": call.county,
            "category": call.category,
            "window": call.windows[-1] if call.windows else None,
            "queue": call.in_queue or call.answered_queue,
            "agent_interface": call.agent_interface,
            "wait_seconds": call.wait_seconds,
            "outcome": call.outcome.value,
        }

    def _close(self, call: CallRecordData, at: datetime) -> list[CallEvent]:
        if call.ended_at is not None:
            return []
        call.ended_at = at
        if call.agent_answered_at is not None and call.handle_seconds is None:
            call.handle_seconds = max(0, round((at - call.agent_answered_at).total_seconds()))
        events: list[CallEvent] = []
        if call.outcome is CallOutcome.IN_PROGRESS:
            if call.in_queue is not None or call.queues:
                call.outcome = CallOutcome.ABANDONED
                if call.in_queue is not None:
                    # Closed while still waiting (AMI Hangup, reconnect gap):
                    # the wait ran until now.
                    call.wait_seconds += self._waited(call, at)
                    call.in_queue = None
                events.append(CallEvent("call.abandoned", self._public(call)))
            else:
                call.outcome = CallOutcome.UNQUEUED
        if call.survey_offered and call.survey is None:
            call.survey = SurveyAnswer.NO_ANSWER
        for escalation in call.escalations:
            if escalation.left_at is None:
                escalation.left_at = at
        for uniqueid in call.channels:
            channel = self.channels.get(uniqueid)
            if channel is not None and channel.owner == call.linkedid:
                del self.channels[uniqueid]
        call.channels.clear()
        for conference in [k for k, v in self.conferences.items() if v == call.linkedid]:
            del self.conferences[conference]
        del self.calls[call.linkedid]
        self.finished.append(call)
        payload = self._public(call)
        payload.update(
            talk_seconds=call.talk_seconds,
            ended_at=at.isoformat(),
            survey=call.survey.value if call.survey else None,
            joint=call.is_joint,
        )
        events.append(CallEvent("call.ended", payload))
        return events

    @staticmethod
    def _waited(call: CallRecordData, at: datetime) -> int:
        if call.queue_entered_at is None:
            return 0
        return max(0, round((at - call.queue_entered_at).total_seconds()))

    # -- handlers ---------------------------------------------------------

    def _on_newchannel(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        uniqueid = message.get("Uniqueid") or ""
        linkedid = message.get("Linkedid") or uniqueid
        owner = self.calls.get(linkedid)
        if owner is not None:
            self._adopt(uniqueid, message.get("Channel") or "", linkedid, owner)
            return []
        if uniqueid == linkedid and message.get("Context") in self.inbound_contexts:
            self._start_call(message, at, CallDirection.INBOUND)
            return []
        self._adopt(uniqueid, message.get("Channel") or "", linkedid, None)
        return []

    def _on_queue_join(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        call = self._call_of(message)
        if call is None:
            call = self._start_call(message, at, CallDirection.INBOUND)
        queue = message.get("Queue") or ""
        events: list[CallEvent] = []
        if call.queues and call.in_queue is None and call.answered_at is None:
            # Joined a second queue after leaving the first unanswered: overflow.
            call.overflowed = True
            payload = self._public(call)
            payload.update(from_queue=call.queues[-1], to_queue=queue)
            events.append(CallEvent("call.overflowed", payload))
        call.queues.append(queue)
        window = self.window_of_queue(queue)
        if window and (not call.windows or call.windows[-1] != window):
            call.windows.append(window)
        call.in_queue = queue
        call.queue_entered_at = at
        if call.queued_at is None:
            call.queued_at = at
        payload = self._public(call)
        payload.update(position=_int(message.get("Position")), priority=message.get("Priority"))
        events.append(CallEvent("call.queued", payload))
        return events

    def _on_queue_abandon(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        call = self._call_of(message)
        if call is None:
            return []
        call.wait_seconds += _int(message.get("HoldTime"))
        call.in_queue = None
        call.queue_entered_at = None
        if call.hangup_requested:
            call.outcome = CallOutcome.ABANDONED
            return [CallEvent("call.abandoned", self._public(call))]
        # No hang-up before it: the queue timed out and the dialplan goes on
        # (overflow to the city, voicemail, or callback).
        payload = self._public(call)
        payload["from_queue"] = message.get("Queue")
        return [CallEvent("call.queue_timeout", payload)]

    def _on_queue_leave(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        return []  # AgentConnect / QueueCallerAbandon carry what matters

    def _on_agent_connect(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        call = self._call_of(message)
        if call is None:
            return []
        call.wait_seconds += _int(message.get("HoldTime"))
        call.answered_at = call.answered_at or at
        call.agent_answered_at = at
        call.agent_interface = message.get("Interface")
        call.agent_name = message.get("MemberName")
        queue = message.get("Queue") or ""
        call.answered_queue = self.window_of_queue(queue) or queue
        call.in_queue = None
        call.queue_entered_at = None
        call.outcome = CallOutcome.ANSWERED
        agent_uniqueid = message.get("DestUniqueid")
        if agent_uniqueid:
            call.agent_uniqueid = agent_uniqueid
            self._adopt(agent_uniqueid, message.get("DestChannel") or "", call.linkedid, call)
        payload = self._public(call)
        payload["agent_name"] = call.agent_name
        return [CallEvent("call.answered", payload)]

    def _on_agent_complete(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        call = self._call_of(message)
        if call is None:
            return []
        call.talk_seconds = _int(message.get("TalkTime"))
        payload = self._public(call)
        payload.update(talk_seconds=call.talk_seconds, reason=message.get("Reason"))
        return [CallEvent("call.agent_completed", payload)]

    def _on_hangup_request(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        call = self._call_of(message)
        if call is not None and message.get("Uniqueid") == call.caller_uniqueid:
            call.hangup_requested = True
        return []

    def _on_hangup(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        uniqueid = message.get("Uniqueid") or ""
        channel = self.channels.pop(uniqueid, None)
        call = self.calls.get(channel.owner or "") if channel is not None else None
        if call is None:
            return []
        call.channels.discard(uniqueid)
        if uniqueid == call.agent_uniqueid and call.agent_answered_at is not None:
            call.handle_seconds = max(0, round((at - call.agent_answered_at).total_seconds()))
        for escalation in call.escalations:
            if escalation.uniqueid == uniqueid and escalation.left_at is None:
                escalation.left_at = at
        if uniqueid == call.caller_uniqueid:
            return self._close(call, at)
        return []

    def _on_varset(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        variable = message.get("Variable") or ""
        if variable not in self._tracked:
            return []
        value = message.get("Value") or ""
        if variable == "SMELINE_LINKEDID":
            # An originated leg (escalation target, outbound call) told which
            # call it belongs to: its own Linkedid differs.
            call = self.calls.get(value)
            uniqueid = message.get("Uniqueid") or ""
            if call is not None and uniqueid:
                self._adopt(uniqueid, message.get("Channel") or "", value, call)
            return []
        call = self._call_of(message)
        if call is None:
            if variable == "SMELINE_DIRECTION" and value == CallDirection.OUTBOUND:
                self._start_call(message, at, CallDirection.OUTBOUND)
            return []
        if variable == "SMELINE_COUNTY":
            call.county = value or None
        elif variable == "SMELINE_CATEGORY":
            call.category = value or None
        elif variable == "SMELINE_WINDOW":
            if value and (not call.windows or call.windows[-1] != value):
                call.windows.append(value)
        elif variable == "SMELINE_CALLER_KEY":
            call.caller_number = value or call.caller_number
        elif variable in ("SMELINE_RECORDING", "MIXMONITOR_FILENAME"):
            call.recording_file = value or call.recording_file
        elif variable == "SMELINE_TICKET":
            call.ticket_ref = value or None
        elif variable == self.survey_variable:
            if value == "offered":
                call.survey_offered = True
            else:
                call.survey_offered = True
                call.survey = SURVEY_DIGITS.get(value, SurveyAnswer.NO_ANSWER)
        elif variable == "SMELINE_OUTCOME":
            if value in (CallOutcome.VOICEMAIL, CallOutcome.CALLBACK):
                call.outcome = CallOutcome(value)
                call.in_queue = None
        elif variable == "SMELINE_DIRECTION" and value == CallDirection.OUTBOUND:
            call.direction = CallDirection.OUTBOUND
        return []

    def _on_conf_join(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        conference = message.get("Conference") or ""
        uniqueid = message.get("Uniqueid") or ""
        channel = self.channels.get(uniqueid) or self._adopt(
            uniqueid,
            message.get("Channel") or "",
            message.get("Linkedid") or uniqueid,
            None,
        )
        owner = self.calls.get(channel.owner or "")
        events: list[CallEvent] = []
        if owner is not None:
            self.conferences.setdefault(conference, owner.linkedid)
            for pending, joined in self._pending_conference.pop(conference, []):
                events.extend(self._attach(owner, conference, pending, joined))
            if uniqueid not in (owner.caller_uniqueid, owner.agent_uniqueid) and not any(
                e.uniqueid == uniqueid for e in owner.escalations
            ):
                # A far leg that told its call through SMELINE_LINKEDID before
                # joining (the VarSet comes first) is already the call's own
                # channel, and still an escalation target.
                return [*events, *self._attach(owner, conference, channel, at)]
            events.append(
                self._member_event("conference.member_joined", owner, conference, message)
            )
            return events
        room_owner = self.calls.get(self.conferences.get(conference, ""))
        if room_owner is None:
            # Joined before any leg of the call it serves (an originate that
            # answered at once): attach when the call's own legs arrive.
            self._pending_conference.setdefault(conference, []).append((channel, at))
            return []
        return self._attach(room_owner, conference, channel, at)

    def _attach(
        self, call: CallRecordData, conference: str, channel: _Channel, at: datetime
    ) -> list[CallEvent]:
        channel.owner = call.linkedid
        call.channels.add(channel.uniqueid)
        # A Local channel pair (";1" / ";2") is one party: attach the pair's
        # other half too, so its hangup is known.
        for other in self.channels.values():
            if other.owner is None and other.linkedid == channel.linkedid:
                other.owner = call.linkedid
                call.channels.add(other.uniqueid)
        call.escalations.append(
            Escalation(
                conference=conference, channel=channel.name, uniqueid=channel.uniqueid, joined_at=at
            )
        )
        payload = self._public(call)
        payload.update(conference=conference, channel=channel.name, role="target")
        return [CallEvent("conference.member_joined", payload)]

    def _member_event(
        self, name: str, call: CallRecordData, conference: str, message: AmiMessage
    ) -> CallEvent:
        uniqueid = message.get("Uniqueid")
        role = (
            "caller"
            if uniqueid == call.caller_uniqueid
            else "agent"
            if uniqueid == call.agent_uniqueid
            else "target"
        )
        payload = self._public(call)
        payload.update(conference=conference, channel=message.get("Channel"), role=role)
        return CallEvent(name, payload)

    def _on_conf_leave(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        conference = message.get("Conference") or ""
        call = self.calls.get(self.conferences.get(conference, ""))
        if call is None:
            return []
        uniqueid = message.get("Uniqueid")
        for escalation in call.escalations:
            if escalation.uniqueid == uniqueid and escalation.left_at is None:
                escalation.left_at = at
        return [self._member_event("conference.member_left", call, conference, message)]

    def _on_conf_end(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        self._pending_conference.pop(message.get("Conference") or "", None)
        return []

    def _on_member(self, message: AmiMessage, at: datetime) -> list[CallEvent]:
        payload = {
            "queue": message.get("Queue"),
            "interface": message.get("Interface"),
            "member_name": message.get("MemberName"),
            "status": _int(message.get("Status")),
            "paused": message.get("Paused") == "1",
            "paused_reason": message.get("PausedReason") or None,
            "in_call": message.get("InCall") == "1",
            "event": message.event,
        }
        return [CallEvent("agent.state", payload)]
