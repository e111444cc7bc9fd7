"""The AMI double, extended with what the shipped dialplan and ConfBridge
profiles do around three-way escalation (``dialplan/extensions.conf``
``[smeline-conference]`` / ``[smeline-dial-target]``, ``dialplan/confbridge.conf``).

:class:`ConferenceDouble` subclasses :class:`AmiDouble` (``ami_server.py`` is
left as it is) and adds channel traffic around four actions:

* **Originate of a Local channel**: the ;1 / ;2 pair appears at once
  (Newchannel ×2, VarSet of every Originate variable on both halves,
  LocalBridge — recorded in that order, ``recordings--ami-confbridge.txt``),
  the ;2 half's Linkedid is the ;1 half's Uniqueid (recorded: the pair has a
  Linkedid of its own, not the call's). The ;2 half then runs the extension:
  ``[smeline-dial-target]`` rings per ``set_originate_outcome`` (a target that
  does not answer rings for the Originate's ``Timeout`` milliseconds, as
  recorded for PJSIP); ``s@smeline-conference`` joins a room, which answers
  it. Then ``OriginateResponse`` (fields as recorded) and the ;1 half goes to
  ``Context``/``Exten`` or runs ``Application`` (Playback is modelled: it is
  logged in :attr:`ConferenceDouble.playbacks` with who was in the room, and
  the pair hangs up when it ends).
* **Redirect into ``smeline-conference``**: the leg leaves the queue bridge or
  its room and joins the room named by its ``SMELINE_ROOM`` with the profile of
  its ``SMELINE_CONF_ROLE`` (ConfbridgeStart / ConfbridgeJoin, fields as
  recorded). A far leg (party / province) is refused when the room has no
  marked user, as the dialplan does.
* **Hangup**: the channel leaves its room and hangs up; a Local half takes the
  other half with it (recorded when a ;1 half was kicked). Asterisk also finds
  a channel by Uniqueid (``ast_channel_get_by_name`` falls back to it; not
  recorded), so the double does too.
* **ConfbridgeKick**: ConfBridge returns; the caller role goes on to the survey
  (the channel stays, in ``smeline-survey``), every other role reaches
  ``Hangup()``.

Teardown per the profiles: when the last marked user leaves a room, every
``end_marked`` participant is ejected and hangs up (``Hangup()`` after
ConfBridge in the dialplan). This is confbridge.conf's documented behaviour;
the recordings end the room with ``ConfbridgeKick all`` instead, so the exact
event order of an end_marked ejection is **not recorded** — the double uses
the order recorded for the kick (ConfbridgeLeave, Hangup of ;1, HangupRequest
and Hangup of ;2, ConfbridgeEnd).

Not modelled: the PJSIP trunk leg a ;2 half dials, Dial*/DeviceStateChange /
Cdr / BridgeEnter of rooms, music on hold, AgentComplete after a redirected
queue call, the survey itself.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from smeline.telephony.ami_protocol import AmiMessage, encode_message
from tests.asterisk_double.ami_server import (
    CAUSE_TEXT,
    AmiDouble,
    Channel,
    Conference,
    Pairs,
    Participant,
    _ast_true,
    _Outcome,
    _parse_callerid,
    _Script,
    _Session,
)

CONFERENCE = "smeline-conference"
DIAL_TARGET = "smeline-dial-target"
#: SMELINE_CONF_ROLE → (marked, end_marked), from dialplan/confbridge.conf.
#: ``consult`` is the private-consultation role (smeline-consult profile,
#: marked) that smeline.telephony.escalation needs in the dialplan.
PROFILES: dict[str, tuple[bool, bool]] = {
    "caller": (True, False),  # smeline-caller
    "agent": (False, True),  # smeline-party
    "party": (False, True),
    "province": (False, True),
    "consult": (True, False),  # smeline-consult
}
_ROOM_FILTER = re.compile(r"[^-.0-9A-Za-z_]")
_DIAL_TARGET = re.compile(r"^(q-[a-z0-9_]+|[ep]-[0-9]+)$")


@dataclass(frozen=True, slots=True)
class Playback:
    room: str
    file: str
    heard_by: tuple[str, ...]  # the channels in the room when it played


@dataclass(slots=True)
class _LocalPair:
    one: str
    two: str
    request: AmiMessage
    answered: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Room:
    bridge_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class ConferenceDouble(AmiDouble):
    """:class:`AmiDouble` plus the conference behaviour described above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Channel name → the role it joined its room with.
        self.roles: dict[str, str] = {}
        #: Channel name → the room it is in.
        self.rooms: dict[str, str] = {}
        self.end_marked: set[str] = set()
        #: Every Playback an originated Local channel ran into a room.
        self.playbacks: list[Playback] = []
        #: How long a Playback lasts (simulated time of the prompt, not a test wait).
        self.playback_seconds = 0.05
        self._pairs: dict[str, _LocalPair] = {}  # each half's name → its pair
        self._room_bridges: dict[str, _Room] = {}
        self._local_seq = 0x100
        # The shipped dialplan's extensions that AMI reaches.
        self.add_extension(CONFERENCE, "s")
        self._handlers["originate"] = self._conf_originate
        self._handlers["redirect"] = self._conf_redirect
        self._handlers["hangup"] = self._conf_hangup
        self._handlers["confbridgekick"] = self._conf_kick

    # -- for tests ---------------------------------------------------------------

    def local_channels(self) -> list[str]:
        return [name for name in self.channels if name.startswith("Local/")]

    def members(self, room: str) -> dict[str, str]:
        """Channel → role of everyone in ``room``."""
        return {name: self.roles[name] for name, r in self.rooms.items() if r == room}

    async def far_end_hangs_up(self, name: str, cause: int = 16) -> None:
        """The phone behind ``name`` hangs up (a BYE): HangupRequest first (recorded)."""
        channel = self.channels[name]
        events = [
            self._event(
                "HangupRequest", "call,all", [*self._fields(channel), ("Cause", str(cause))]
            )
        ]
        self._hangup_channel(name, events, cause)
        await self._send_events(events)

    # -- helpers ---------------------------------------------------------------------

    def _fields(self, channel: Channel) -> Pairs:
        return self._channel_fields(channel)

    async def _send_events(self, events: Iterable[Pairs]) -> None:
        await self._broadcast_bytes(b"".join(encode_message(e) for e in events))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _find(self, name_or_uniqueid: str) -> Channel | None:
        channel = self.channels.get(name_or_uniqueid)
        if channel is not None:
            return channel
        return next((c for c in self.channels.values() if c.uniqueid == name_or_uniqueid), None)

    def _bridge_fields(self, room: str) -> Pairs:
        bridge = self._room_bridges.setdefault(room, _Room())
        count = sum(1 for r in self.rooms.values() if r == room)
        # Recorded field set of ConfbridgeStart / Join / Leave / End.
        return [
            ("Conference", room),
            ("BridgeUniqueid", bridge.bridge_id),
            ("BridgeType", "base"),
            ("BridgeTechnology", "softmix"),
            ("BridgeCreator", "ConfBridge"),
            ("BridgeName", room),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]

    # -- the dialplan: [smeline-conference] ---------------------------------------------

    def _enter_conference(self, name: str, events: list[Pairs]) -> bool:
        """``[smeline-conference] s``: join per role, or refuse (hang up)."""
        channel = self.channels[name]
        channel.context, channel.exten, channel.priority = CONFERENCE, channel.exten, 1
        channel.language = "zh"
        room = _ROOM_FILTER.sub("", channel.variables.get("SMELINE_ROOM", ""))[:64]
        role = channel.variables.get("SMELINE_CONF_ROLE", "")
        if channel.exten.isdigit():  # exten _X. carries a numeric room
            room = channel.exten
        marked_present = any(
            p.marked for p in self.conferences.get(room, Conference(room)).participants
        )
        if (
            not room
            or role not in PROFILES
            or (role in ("party", "province") and not marked_present)
        ):
            # (refuse): no valid room or role, or a far leg arriving after the
            # caller has gone — NoOp, Hangup().
            self._hangup_channel(name, events, 16)
            return False
        marked, end_marked = PROFILES[role]
        new_room = room not in self.conferences
        conference = self.conferences.setdefault(room, Conference(name=room))
        conference.participants.append(Participant(channel=name, marked=marked))
        self.rooms[name] = room
        self.roles[name] = role
        if end_marked:
            self.end_marked.add(name)
        if new_room:
            self._room_bridges[room] = _Room()
            events.append(self._event("ConfbridgeStart", "call,all", self._bridge_fields(room)))
        channel.state = 6
        channel.application, channel.application_data = "ConfBridge", room
        events.append(
            self._event(
                "ConfbridgeJoin",
                "call,all",
                [
                    *self._bridge_fields(room),
                    *self._fields(channel),
                    ("Admin", "No"),
                    ("Muted", "No"),
                ],
            )
        )
        return True

    def _leave_room(self, name: str, events: list[Pairs], moving: frozenset[str]) -> None:
        room = self.rooms.get(name)
        if room is None:
            return
        conference = self.conferences[room]
        leaving = next(p for p in conference.participants if p.channel == name)
        channel = self.channels[name]
        events.append(
            self._event(
                "ConfbridgeLeave",
                "call,all",
                [*self._bridge_fields(room), *self._fields(channel), ("Admin", "No")],
            )
        )
        conference.participants.remove(leaving)
        del self.rooms[name]
        self.roles.pop(name, None)
        self.end_marked.discard(name)
        channel.application = channel.application_data = ""
        if leaving.marked and not any(p.marked for p in conference.participants):
            # The last marked user left: ConfBridge ejects every end_marked
            # user and the dialplan hangs it up (documented; not recorded).
            for participant in list(conference.participants):
                if participant.channel in self.end_marked and participant.channel not in moving:
                    self._hangup_channel(participant.channel, events, 16)
        if not conference.participants and room in self.conferences:
            events.append(self._event("ConfbridgeEnd", "call,all", self._bridge_fields(room)))
            del self.conferences[room]
            self._room_bridges.pop(room, None)

    def _hangup_channel(
        self, name: str, events: list[Pairs], cause: int, *, request_event: bool = False
    ) -> None:
        channel = self.channels.get(name)
        if channel is None:
            return
        if request_event:
            events.append(
                self._event(
                    "HangupRequest", "call,all", [*self._fields(channel), ("Cause", str(cause))]
                )
            )
        self._leave_room(name, events, frozenset())
        if channel.name not in self.channels:  # gone with the room's teardown
            return
        pair = self._pairs.get(name)
        if pair is not None and not pair.answered:
            # Hung up while the originate waits for an answer: Asterisk gives up
            # and reports a failure (Reason 1, AST_CONTROL_HANGUP; not recorded).
            if pair.task is not None and pair.task is not asyncio.current_task():
                pair.task.cancel()
            pair.answered = True  # no second response
            events.append(self._originate_response(pair.request, None, "1"))
        events.append(
            self._event(
                "Hangup",
                "call,all",
                [
                    *self._fields(channel),
                    ("Cause", str(cause)),
                    ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
                ],
            )
        )
        self._remove_channel(name)
        self._pairs.pop(name, None)
        if pair is not None:
            partner = pair.two if name == pair.one else pair.one
            # A Local half going takes the other half with it (recorded).
            self._hangup_channel(partner, events, cause, request_event=True)
        # A channel in a two-party (queue) bridge: the other party is hung up
        # when it is left alone (app_queue's bridge; not recorded).
        if channel.bridge_id:
            for other in list(self.channels.values()):
                if other.bridge_id == channel.bridge_id:
                    other.bridge_id = ""
                    self._hangup_channel(other.name, events, cause, request_event=True)

    # -- actions ----------------------------------------------------------------------

    def _conf_redirect(self, session: _Session, request: AmiMessage) -> _Outcome:
        outcome = self._redirect(session, request)
        if outcome.replies and outcome.replies[0][0] == ("Response", "Error"):
            return outcome
        names = [n for n in (request.get("Channel"), request.get("ExtraChannel")) if n]
        moving = frozenset(names)
        events: list[Pairs] = []
        for name in names:
            channel = self.channels[name]
            if channel.bridge_id:
                bridge = channel.bridge_id
                channel.bridge_id = ""
                events.append(
                    self._event(
                        "BridgeLeave",
                        "call,all",
                        [("BridgeUniqueid", bridge), *self._fields(channel)],
                    )
                )
                for other in list(self.channels.values()):
                    if other.bridge_id == bridge and other.name not in moving:
                        # Redirecting one leg alone breaks the queue bridge and
                        # hangs the other up; a dual Redirect moves both (recorded).
                        other.bridge_id = ""
                        self._hangup_channel(other.name, events, 16, request_event=True)
        for name in names:
            self._leave_room(name, events, moving)
        for name in names:
            moved = self.channels.get(name)
            if moved is not None and moved.context == CONFERENCE:
                self._enter_conference(name, events)
        outcome.events.extend(events)
        return outcome

    def _conf_hangup(self, session: _Session, request: AmiMessage) -> _Outcome:
        wanted = request.get("Channel") or ""
        channel = self._find(wanted)
        if channel is None:
            return self._hangup(session, request)  # the recorded error texts
        cause_text = request.get("Cause") or "0"
        cause = int(cause_text) if cause_text.isdigit() else 0
        events: list[Pairs] = []
        # Recorded: an AMI Hangup gives no HangupRequest for the channel itself.
        self._hangup_channel(channel.name, events, cause)
        return _Outcome([self._reply(request, "Success", "Channel Hungup")], events)

    def _conf_kick(self, session: _Session, request: AmiMessage) -> _Outcome:
        room = self._find_room(request)
        if isinstance(room, str):
            return self._error(request, room)
        target = request.get("Channel") or ""
        names = [p.channel for p in room.participants]
        if target != "all":
            if target not in names:
                return self._error(request, "No Channel by that name found in Conference.")
            names = [target]
        events: list[Pairs] = []
        for name in names:
            role = self.roles.get(name)
            self._leave_room(name, events, frozenset(names))
            channel = self.channels.get(name)
            if channel is None:
                continue
            if role == "caller":
                # ConfBridge returns; the caller's dialplan goes on to the survey.
                channel.context, channel.exten, channel.priority = "smeline-survey", "s", 1
            else:
                self._hangup_channel(name, events, 16)
        text = "All participants kicked" if target == "all" else "User kicked"
        return _Outcome([self._reply(request, "Success", text)], events)

    # -- Originate of Local channels ------------------------------------------------------

    def _conf_originate(self, session: _Session, request: AmiMessage) -> _Outcome:
        target = request.get("Channel") or ""
        if not target.lower().startswith("local/") or not _ast_true(request.get("Async")):
            return self._originate(session, request)
        application = request.get("Application")
        exten = request.get("Exten")
        context = request.get("Context") or "default"
        if not application and exten and (context, exten) not in self.extensions:
            return self._error(request, "Extension does not exist.")
        spec = target[len("local/") :].split("/", 1)[0]
        local_exten, _, local_context = spec.partition("@")
        self._local_seq += 1
        number, name = _parse_callerid(request.get("CallerID"))
        variables: dict[str, str] = {}
        for assignment in request.get_all("Variable"):
            key, _, value = assignment.partition("=")
            variables[key] = value
        one_id = request.get("ChannelId") or self._new_uniqueid()
        base = f"Local/{spec}-{self._local_seq:08x}"
        one = self.add_channel(
            f"{base};1",
            uniqueid=one_id,
            state=0,
            caller_id_num=number,
            caller_id_name=name,
            context=local_context,
            exten=local_exten,
            variables={k: v for k, v in variables.items() if "(" not in k},
        )
        two = self.add_channel(
            f"{base};2",
            uniqueid=request.get("OtherChannelId") or self._new_uniqueid(),
            linkedid=one_id,
            state=4,
            caller_id_num=number,
            caller_id_name=name,
            context=local_context,
            exten=local_exten,
            # chan_local copies the ;1 half's variables to the ;2 half (recorded).
            variables=dict(one.variables),
        )
        if variables.get("CHANNEL(language)"):
            one.language = variables["CHANNEL(language)"]
        pair = _LocalPair(one=one.name, two=two.name, request=request)
        self._pairs[one.name] = self._pairs[two.name] = pair
        events: list[Pairs] = [
            self._event("Newchannel", "call,all", self._fields(one)),
            self._event("Newchannel", "call,all", self._fields(two)),
        ]
        for half in (one, two):
            for key, value in half.variables.items():
                events.append(
                    self._event(
                        "VarSet",
                        "dialplan,all",
                        [*self._fields(half), ("Variable", key), ("Value", value)],
                    )
                )
        events.append(self._local_bridge(one, two))
        pair.task = self._spawn(self._run_local(pair, local_context, local_exten))
        return _Outcome([self._reply(request, "Success", "Originate successfully queued")], events)

    def _local_bridge(self, one: Channel, two: Channel) -> Pairs:
        fields: Pairs = []
        for prefix, half in (("LocalOne", one), ("LocalTwo", two)):
            fields += [(prefix + k, v) for k, v in self._fields(half)]
        # /n: "LocalOptimization: No" (the recording, without /n, says Yes).
        return self._event(
            "LocalBridge",
            "call,all",
            [*fields, ("Context", one.context), ("Exten", one.exten), ("LocalOptimization", "No")],
        )

    def _originate_response(
        self, request: AmiMessage, channel: Channel | None, reason: str
    ) -> Pairs:
        number, name = _parse_callerid(request.get("CallerID"))
        fields: Pairs = []
        action_id = request.get("ActionID")
        if action_id is not None:
            fields.append(("ActionID", action_id))
        target = request.get("Channel") or ""
        fields += [
            ("Response", "Success" if channel is not None else "Failure"),
            ("Channel", channel.name if channel is not None else target),
        ]
        if request.get("Application"):
            fields += [
                ("Application", request.get("Application") or ""),
                ("Data", request.get("Data") or ""),
            ]
        else:
            fields += [
                ("Context", request.get("Context") or ""),
                ("Exten", request.get("Exten") or ""),
            ]
        # Recorded: with a ChannelId the Uniqueid is that id, answered or not.
        uniqueid = (
            channel.uniqueid if channel is not None else request.get("ChannelId") or "<unknown>"
        )
        fields += [
            ("Reason", reason),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", number),
            ("CallerIDName", name),
        ]
        return self._event("OriginateResponse", "call,all", fields)

    async def _run_local(self, pair: _LocalPair, context: str, exten: str) -> None:
        request = pair.request
        events: list[Pairs] = []
        if context == CONFERENCE:
            # The ;2 half runs [smeline-conference]: ConfBridge answers it.
            script = _Script("answered", 0.0)
            if not self._enter_conference(pair.two, events):
                await self._send_events(events)
                return
        elif context == DIAL_TARGET and _DIAL_TARGET.match(exten):
            script = self._outcome_for(request.get("Channel") or "")
        else:
            # No such extension: the Local channel cannot be called (reported
            # like the recorded unknown endpoint: Reason 0).
            script = _Script("unknown", 0.0)
        await self._send_events(events)
        delay = script.delay
        if script.outcome == "no_answer" and delay == 0.0:
            # Rings until Originate's Timeout, in milliseconds (recorded:
            # Timeout 5000 → Reason 3 five seconds later).
            delay = int(request.get("Timeout") or "30000") / 1000
        if delay > 0:
            # Simulated ring time, not a test wait.
            await asyncio.sleep(delay)
        events = []
        one = self.channels.get(pair.one)
        if one is None or pair.answered:
            return
        pair.answered = True
        if script.outcome != "answered":
            reason = "3" if script.outcome == "no_answer" else "0"
            events.append(self._originate_response(request, None, reason))
            self._hangup_channel(pair.one, events, 19 if reason == "3" else 17)
            await self._send_events(events)
            return
        for name in (pair.one, pair.two):
            if name in self.channels:
                self.channels[name].state = 6
        events.append(self._originate_response(request, one, "4"))
        application = request.get("Application")
        if application:
            one.application, one.application_data = application, request.get("Data") or ""
            await self._send_events(events)
            if application.lower() == "playback":
                await self._playback(pair, request.get("Data") or "")
            return
        one.context = request.get("Context") or "default"
        one.exten = request.get("Exten") or "s"
        if one.context == CONFERENCE:
            self._enter_conference(pair.one, events)
        await self._send_events(events)

    async def _playback(self, pair: _LocalPair, file: str) -> None:
        room = self.rooms.get(pair.two, "")
        heard_by = tuple(n for n, r in self.rooms.items() if r == room and n != pair.two)
        self.playbacks.append(Playback(room=room, file=file, heard_by=heard_by))
        # Simulated length of the prompt, not a test wait.
        await asyncio.sleep(self.playback_seconds)
        events: list[Pairs] = []
        self._hangup_channel(pair.one, events, 16)
        await self._send_events(events)
