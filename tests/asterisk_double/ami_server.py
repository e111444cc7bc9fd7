"""The AMI side of the Asterisk test double.

An asyncio TCP server speaking AMI exactly as the recordings of a real
Asterisk 22.10.1 in ``tests/recordings/`` show it: banner without a blank line,
CRLF lines, ``Key: `` for empty values, the ActionID as the second line of a
reply but the *last* field of QueueParams / QueueMember / QueueEntry /
QueueSummary items (and the second line of EndpointList, CoreShowChannel and
Confbridge* items), error texts word for word, and the events an action causes
in the order Asterisk sent them.

Behind it sits a small state model (queues and members, PJSIP endpoints,
channels, ConfBridge rooms, cached device states) that the actions read and
change. Where a behaviour is not recorded the double stays conservative and
says so in a comment; ``docs/ami.md`` lists what it covers and what it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from smeline.telephony.ami_protocol import (
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    encode_message,
    iter_raw_recording,
    parse_message,
)

Pairs = list[tuple[str, str]]
MessageLike = AmiMessage | Mapping[str, str] | Sequence[tuple[str, str]]
OriginateOutcome = Literal["answered", "no_answer", "busy", "unknown"]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
SYSTEM_NAME = "cctest"
VERSION_LINE = (
    "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-22 10:31:52 UTC"
)

#: app_queue's member ``Status`` numbers (AST_DEVICE_*), keyed by the state
#: names DeviceStateChange carries.
DEVICE_STATE_CODE = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}
_CODE_STATE = {code: name for name, code in DEVICE_STATE_CODE.items()}
#: EndpointList's ``DeviceState`` text. Only "Not in use" and "Unavailable" are
#: recorded; the others are Asterisk's ast_devstate2str() wording.
DEVICE_STATE_TEXT = {
    "UNKNOWN": "Unknown",
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "INVALID": "Invalid",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
}
#: ChannelStateDesc; 0, 4, 5 and 6 are recorded, the rest is ast_state2str().
CHANNEL_STATE_DESC = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}
#: Hangup ``Cause-txt`` as recorded. Any other cause answers "Unknown" — the
#: double does not know ast_cause2str()'s full table and does not guess it.
CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    58: "Bearer capability not available",
}
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
# Devices whose availability app_queue treats as "can take a call" (NOT_INUSE,
# UNKNOWN) and the busy-ish ones that count only with ringinuse.
_FREE_CODES = frozenset({0, 1})
_BUSY_CODES = frozenset({2, 3, 6, 7, 8})
# app_queue keeps members in an ao2 hash container of 37 buckets (one bucket
# for linear / rrordered); QueueStatus lists them in bucket order. The dyn
# recording shows it: "Local/101@agents/n", added second, is listed first.
_MEMBER_BUCKETS = 37


def _ast_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _event_tv(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _member_bucket(interface: str) -> int:
    """app_queue's member_hash_fn(): up to five chars from the first '/'."""
    slash = interface.find("/")
    chars = interface[slash:] if slash >= 0 else interface
    total = 0
    for i, char in enumerate(chars[:5]):
        code = ord(char)
        compressed = 0 if code < 32 else (code - 64 if code > 96 else code - 32)
        total += compressed << (i * 6)
    return total % _MEMBER_BUCKETS


_CALLERID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<num>[^>]*)>\s*$')


def _parse_callerid(value: str | None) -> tuple[str, str]:
    """``"CC outbound" <5550100>`` → (number, name); missing parts are ``<unknown>``."""
    if not value:
        return "<unknown>", "<unknown>"
    match = _CALLERID.match(value)
    if match:
        return match["num"].strip() or "<unknown>", match["name"].strip() or "<unknown>"
    text = value.strip()
    if text.lstrip("+").isdigit():
        return text, "<unknown>"
    return "<unknown>", text


def _as_pairs(message: MessageLike) -> Pairs:
    if isinstance(message, AmiMessage):
        return list(message.fields)
    if isinstance(message, Mapping):
        return [(str(k), str(v)) for k, v in message.items()]
    return [(str(k), str(v)) for k, v in message]


# -- state model ---------------------------------------------------------------


@dataclass(slots=True)
class Member:
    interface: str
    name: str
    state_interface: str
    dynamic: bool
    penalty: int = 0
    paused: bool = False
    paused_reason: str = ""
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    status: int = 0
    ringinuse: bool = False
    wrapuptime: int = 0


@dataclass(slots=True)
class QueueEntry:
    channel: str
    joined: float
    priority: int = 0


@dataclass(slots=True)
class Queue:
    name: str
    strategy: str = "ringall"
    members: list[Member] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)
    max_callers: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    servicelevel: int = 0
    servicelevel_perf: float = 0.0
    servicelevel_perf2: float = 0.0
    weight: int = 0
    ringinuse: bool = False
    wrapuptime: int = 0

    def member(self, interface: str) -> Member | None:
        # app_queue's member_cmp_fn compares interfaces with strcasecmp.
        wanted = interface.lower()
        for member in self.members:
            if member.interface.lower() == wanted:
                return member
        return None


@dataclass(slots=True)
class Endpoint:
    name: str
    contacts: list[str] = field(default_factory=list)
    transport: str = ""
    auths: str = ""
    outbound_auths: str = ""


@dataclass(slots=True)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    state: int = 6
    caller_id_num: str = "<unknown>"
    caller_id_name: str = "<unknown>"
    connected_line_num: str = "<unknown>"
    connected_line_name: str = "<unknown>"
    language: str = "en"
    account_code: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""
    created: float = field(default_factory=time.monotonic)
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Participant:
    channel: str
    admin: bool = False
    marked: bool = False
    muted: bool = False


@dataclass(slots=True)
class Conference:
    name: str
    participants: list[Participant] = field(default_factory=list)
    locked: bool = False
    muted: bool = False


@dataclass(frozen=True, slots=True)
class _Script:
    outcome: OriginateOutcome
    delay: float


# -- annotated recordings --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedBlock:
    """One ``### time …`` block of an annotated ``*--ami-*.txt`` recording."""

    kind: str  # "SENT", "RECV", "BANNER" or "NOTE"
    connection: str  # "" for the main connection, else its label ("bad")
    time: str
    message: AmiMessage | None
    text: str


_LABEL = re.compile(r"^(\w+):(\S.*)$")


def parse_annotated_recording(path: Path) -> list[RecordedBlock]:
    text = path.read_text(encoding="utf-8")
    blocks: list[RecordedBlock] = []
    for chunk in re.split(r"(?m)^(?=### )", text):
        if not chunk.startswith("### "):
            continue
        head, _, body = chunk.partition("\n")
        parts = head.split(" ", 3)
        stamp, direction = parts[1], parts[2]
        rest = parts[3] if len(parts) > 3 else ""
        connection = ""
        label = _LABEL.match(rest)
        if label:
            connection, rest = label.group(1), label.group(2)
        if direction == "NOTE":
            kind = "NOTE"
        else:
            kind = rest.split(" ", 1)[0]
        message = None
        if kind in ("SENT", "RECV"):
            message = parse_message(body.strip("\n").encode("utf-8"))
        blocks.append(RecordedBlock(kind, connection, stamp, message, rest))
    return blocks


def load_recording(path: Path) -> list[AmiMessage]:
    """Every message Asterisk sent in a recording: ``*.ami`` as the exact
    bytes, an annotated ``*.txt`` by its RECV blocks."""
    if path.suffix == ".ami":
        return list(iter_raw_recording(path.read_bytes()))
    return [
        block.message
        for block in parse_annotated_recording(path)
        if block.kind == "RECV" and block.message is not None
    ]


# -- the server ----------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    replies: list[Pairs]  # to the requesting connection, in order
    events: list[Pairs] = field(default_factory=list)  # then to every logged-in one
    close: bool = False


class _Session:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = AmiParser(expect_banner=False)
        self.logged_in = False
        self.events = True
        self.account = ""
        self.session_id = f"0x{secrets.token_hex(6)}"
        self.session_tv = time.time()
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        self.local_address = f"IPV4/TCP/127.0.0.1/{port}"
        self.remote_address = f"IPV4/TCP/{peer[0]}/{peer[1]}"

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def write(self, data: bytes) -> None:
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.writer.drain()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.writer.close()


Handler = Callable[[_Session, AmiMessage], _Outcome]


class AmiDouble:
    """AMI server shaped like the recordings; see the module docstring."""

    def __init__(
        self,
        *,
        username: str = "cc",
        secret: str = "cc",
        bad_login_delay: float = 1.0,
        system_name: str = SYSTEM_NAME,
        host: str = "127.0.0.1",
    ) -> None:
        self.username = username
        self.secret = secret
        # Asterisk answers a bad login after about one second (recorded); tests
        # lower this to stay fast.
        self.bad_login_delay = bad_login_delay
        self.system_name = system_name
        self.host = host
        self.port = 0
        #: When True the double reads and records actions but answers nothing:
        #: a peer that stopped answering (half-open TCP).
        self.unresponsive = False
        #: Every message any client sent, in order.
        self.actions: list[AmiMessage] = []
        self.connections_accepted = 0

        self.queues: dict[str, Queue] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.channels: dict[str, Channel] = {}
        self.conferences: dict[str, Conference] = {}
        self.extensions: set[tuple[str, str]] = set()
        self.global_variables: dict[str, str] = {}
        #: Cached device states; a DeviceStateChange is emitted only when one
        #: changes (the recordings never repeat an unchanged state).
        self.device_states: dict[str, str] = {}

        self._scripts: dict[str, _Script] = {}
        self._sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel_seq = itertools.count(1)
        self._uniqueid_seq = itertools.count(1)
        self._booted = time.time()
        self._handlers: dict[str, Handler] = {
            "logoff": self._logoff,
            "ping": self._ping,
            "command": self._command,
            "queuestatus": self._queue_status,
            "queuesummary": self._queue_summary,
            "queueadd": self._queue_add,
            "queueremove": self._queue_remove,
            "queuepause": self._queue_pause,
            "queuepenalty": self._queue_penalty,
            "queuememberringinuse": self._queue_ringinuse,
            "getvar": self._getvar,
            "setvar": self._setvar,
            "originate": self._originate,
            "redirect": self._redirect,
            "hangup": self._hangup,
            "coreshowchannels": self._core_show_channels,
            "pjsipshowendpoints": self._pjsip_show_endpoints,
            "confbridgelistrooms": self._confbridge_list_rooms,
            "confbridgelist": self._confbridge_list,
            "confbridgekick": self._confbridge_kick,
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def drop_connections(self) -> None:
        """Close every client socket, as an Asterisk restart does."""
        sessions = list(self._sessions)
        for session in sessions:
            session.close()
        for session in sessions:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.writer.wait_closed()

    @property
    def logged_in_connections(self) -> int:
        return sum(1 for s in self._sessions if s.logged_in and not s.closed)

    # -- seeding ---------------------------------------------------------------

    def add_queue(
        self,
        name: str,
        strategy: str = "ringall",
        *,
        avail_state: str = "INUSE",
        ringinuse: bool = False,
        wrapuptime: int = 0,
    ) -> Queue:
        """A queue as loaded from queues.conf.

        app_queue sets ``Queue:<name>_avail`` to INUSE when it loads a queue
        and recomputes it only on a member's add / pause / remove / device
        change; seed ``avail_state="NOT_INUSE"`` for a queue whose members have
        changed state since (the probe recording shows the stale INUSE: the
        first pause emits no _avail change, the unpause emits NOT_INUSE).
        """
        queue = Queue(name=name, strategy=strategy, ringinuse=ringinuse, wrapuptime=wrapuptime)
        self.queues[name] = queue
        self.device_states[f"Queue:{name}_avail"] = avail_state
        return queue

    def add_static_member(
        self,
        queue: str,
        interface: str,
        name: str,
        *,
        state_interface: str | None = None,
        penalty: int = 0,
        paused: bool = False,
        paused_reason: str = "",
        calls_taken: int = 0,
        last_call: int = 0,
        login_time: int | None = None,
    ) -> Member:
        q = self._require_queue(queue)
        now = int(time.time())
        member = Member(
            interface=interface,
            name=name,
            state_interface=state_interface or interface,
            dynamic=False,
            penalty=penalty,
            paused=paused,
            paused_reason=paused_reason if paused else "",
            calls_taken=calls_taken,
            last_call=last_call,
            last_pause=now if paused else 0,
            login_time=now if login_time is None else login_time,
            ringinuse=q.ringinuse,
            wrapuptime=q.wrapuptime,
        )
        member.status = self._status_of(member.state_interface)
        q.members.append(member)
        # Loading the member sets its pause device state without an event
        # anyone here could have seen.
        self.device_states[self._pause_device(q, member)] = "INUSE" if paused else "NOT_INUSE"
        return member

    def add_endpoint(
        self, name: str, *, contacts: Sequence[str] = (), device_state: str | None = None
    ) -> Endpoint:
        """A PJSIP endpoint; ``contacts`` are URIs (``sip:agent1@127.0.0.1:5070``)."""
        endpoint = Endpoint(name=name, contacts=list(contacts))
        self.endpoints[name] = endpoint
        state = device_state or ("NOT_INUSE" if contacts else "UNAVAILABLE")
        self.device_states[f"PJSIP/{name}"] = state
        return endpoint

    def add_channel(
        self,
        name: str,
        *,
        uniqueid: str | None = None,
        linkedid: str | None = None,
        state: int = 6,
        caller_id_num: str = "<unknown>",
        caller_id_name: str = "<unknown>",
        connected_line_num: str = "<unknown>",
        connected_line_name: str = "<unknown>",
        context: str = "default",
        exten: str = "s",
        priority: int = 1,
        application: str = "",
        application_data: str = "",
        bridge_id: str = "",
        account_code: str = "",
        language: str = "en",
        variables: Mapping[str, str] | None = None,
        age: float = 0.0,
    ) -> Channel:
        """A live channel; ``age`` seconds back-dates it (Duration / AnsweredTime)."""
        uid = uniqueid or self._new_uniqueid()
        channel = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid or uid,
            state=state,
            caller_id_num=caller_id_num,
            caller_id_name=caller_id_name,
            connected_line_num=connected_line_num,
            connected_line_name=connected_line_name,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            application_data=application_data,
            bridge_id=bridge_id,
            account_code=account_code,
            language=language,
            created=time.monotonic() - age,
            variables=dict(variables or {}),
        )
        self.channels[name] = channel
        return channel

    def add_queue_entry(self, queue: str, channel: str, *, priority: int = 0) -> QueueEntry:
        """A caller waiting in ``queue`` (the channel must exist)."""
        if channel not in self.channels:
            raise KeyError(channel)
        entry = QueueEntry(channel=channel, joined=time.time(), priority=priority)
        self._require_queue(queue).entries.append(entry)
        return entry

    def add_conference_participant(
        self,
        conference: str,
        channel: str,
        *,
        admin: bool = False,
        marked: bool = False,
        muted: bool = False,
    ) -> Conference:
        if channel not in self.channels:
            raise KeyError(channel)
        room = self.conferences.setdefault(conference, Conference(name=conference))
        room.participants.append(
            Participant(channel=channel, admin=admin, marked=marked, muted=muted)
        )
        return room

    def add_extension(self, context: str, exten: str) -> None:
        """Make ``exten@context`` exist for Originate's dialplan check."""
        self.extensions.add((context, exten))

    def set_originate_outcome(
        self, target: str, outcome: OriginateOutcome, *, delay: float = 0.0
    ) -> None:
        """Script what an Originate to ``target`` (its ``Channel:``) does.

        Without a script: an endpoint with contacts (or a non-PJSIP target)
        answers, anything else is an unknown endpoint.
        """
        self._scripts[target.lower()] = _Script(outcome, delay)

    # -- pushing events --------------------------------------------------------

    async def emit(self, message: MessageLike) -> None:
        """Send one event to every logged-in connection."""
        await self._broadcast_bytes(encode_message(_as_pairs(message)))

    async def emit_raw(self, data: bytes) -> None:
        """Write raw bytes to every logged-in connection, then drain."""
        await self._broadcast_bytes(data)

    async def replay(self, recording_path: Path, *, events_only: bool = True) -> int:
        """Send a recording's received messages in order; returns how many.

        ``*.ami`` is read as the exact bytes, an annotated ``*.txt`` by its
        RECV blocks.
        """
        messages = load_recording(recording_path)
        if events_only:
            messages = [m for m in messages if m.is_event]
        await self._broadcast_bytes(b"".join(m.encode() for m in messages))
        return len(messages)

    async def set_device_state(self, device: str, state: str) -> None:
        """A device (``PJSIP/agent1``) changes state, as app_queue sees it.

        Recorded order: DeviceStateChange of the device, then per queue the
        member's QueueMemberStatus and, if it changed, ``Queue:<q>_avail``.
        Nothing happens when the state does not change.
        """
        events: list[Pairs] = []
        if self.device_states.get(device) == state:
            return
        self._set_device(device, state, events)
        code = DEVICE_STATE_CODE.get(state, 0)
        for queue in self.queues.values():
            touched = [m for m in queue.members if self._state_device(m) == device.lower()]
            for member in touched:
                member.status = code
                events.append(
                    self._event(
                        "QueueMemberStatus", "agent,all", self._member_fields(queue, member)
                    )
                )
            if touched:
                avail = any(self._available(queue, m) for m in queue.members)
                self._set_device(
                    f"Queue:{queue.name}_avail", "NOT_INUSE" if avail else "INUSE", events
                )
        await self._broadcast_bytes(b"".join(encode_message(e) for e in events))

    # -- connection handling -----------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(reader, writer, self.port)
        self._sessions.add(session)
        self.connections_accepted += 1
        try:
            writer.write(BANNER)
            await writer.drain()
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for message in session.parser.feed(data):
                    self.actions.append(message)
                    if self.unresponsive:
                        continue
                    await self._process(session, message)
                    if session.closed:
                        break
        except (ConnectionError, AmiProtocolError):
            pass
        finally:
            self._sessions.discard(session)
            session.close()

    async def _process(self, session: _Session, message: AmiMessage) -> None:
        action = message.get("Action")
        if action is None:
            # Not recorded; manager.c's text for a request without Action.
            outcome = _Outcome([self._reply(message, "Error", "Missing action in request")])
        else:
            name = action.lower()
            if not session.logged_in and name not in ("login", "logoff"):
                # Not recorded: manager.c refuses anything but Login / Logoff
                # (and Challenge, not supported here) before authentication
                # with this documented text.
                outcome = _Outcome([self._reply(message, "Error", "Permission denied")])
            elif name == "login":
                outcome = await self._login(session, message)
            else:
                handler = self._handlers.get(name)
                if handler is None:
                    outcome = self._unknown(session, message, action)
                else:
                    outcome = handler(session, message)
        await self._deliver(session, outcome)

    async def _deliver(self, session: _Session, outcome: _Outcome) -> None:
        # Asterisk writes a reply synchronously and events through its event
        # queue, so on the wire the reply (and list) comes first.
        session.write(b"".join(encode_message(r) for r in outcome.replies))
        targets = [s for s in self._sessions if s.logged_in and s.events and not s.closed]
        if outcome.events:
            data = b"".join(encode_message(e) for e in outcome.events)
            for target in targets:
                target.write(data)
        await session.drain()
        for target in targets:
            if target is not session:
                await target.drain()
        if outcome.close:
            session.close()

    async def _broadcast_bytes(self, data: bytes) -> None:
        targets = [s for s in self._sessions if s.logged_in and s.events and not s.closed]
        for target in targets:
            target.write(data)
        for target in targets:
            await target.drain()

    # -- message helpers -------------------------------------------------------

    def _reply(
        self,
        request: AmiMessage,
        response: str = "Success",
        message: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Pairs:
        pairs: Pairs = [("Response", response)]
        action_id = request.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        return pairs

    def _error(self, request: AmiMessage, message: str) -> _Outcome:
        return _Outcome([self._reply(request, "Error", message)])

    def _event(self, name: str, privilege: str, fields: Iterable[tuple[str, str]]) -> Pairs:
        return [
            ("Event", name),
            ("Privilege", privilege),
            ("SystemName", self.system_name),
            *fields,
        ]

    @staticmethod
    def _list_ack(request: AmiMessage, text: str) -> Pairs:
        pairs: Pairs = [("Response", "Success")]
        action_id = request.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        pairs += [("EventList", "start"), ("Message", text)]
        return pairs

    @staticmethod
    def _list_complete(request: AmiMessage, name: str, count: int) -> Pairs:
        pairs: Pairs = [("Event", name)]
        action_id = request.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        pairs += [("EventList", "Complete"), ("ListItems", str(count))]
        return pairs

    @staticmethod
    def _item_id_second(request: AmiMessage, name: str, fields: Iterable[tuple[str, str]]) -> Pairs:
        pairs: Pairs = [("Event", name)]
        action_id = request.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        pairs.extend(fields)
        return pairs

    @staticmethod
    def _item_id_last(request: AmiMessage, name: str, fields: Iterable[tuple[str, str]]) -> Pairs:
        pairs: Pairs = [("Event", name), *fields]
        action_id = request.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        return pairs

    def _list(self, request: AmiMessage, ack: str, complete: str, items: list[Pairs]) -> _Outcome:
        return _Outcome(
            [
                self._list_ack(request, ack),
                *items,
                self._list_complete(request, complete, len(items)),
            ]
        )

    def _new_uniqueid(self) -> str:
        return f"{self.system_name}-{int(time.time())}.{next(self._uniqueid_seq)}"

    # -- queues and device states ------------------------------------------------

    def _require_queue(self, name: str) -> Queue:
        queue = self._find_queue(name)
        if queue is None:
            raise KeyError(name)
        return queue

    def _find_queue(self, name: str) -> Queue | None:
        # app_queue finds queues with strcasecmp.
        wanted = name.lower()
        for queue in self.queues.values():
            if queue.name.lower() == wanted:
                return queue
        return None

    @staticmethod
    def _pause_device(queue: Queue, member: Member) -> str:
        return f"Queue:{queue.name}_pause_{member.interface}"

    @staticmethod
    def _state_device(member: Member) -> str:
        # device_state_cb() compares the state interface without a Local
        # channel's "/n"-style options.
        interface = member.state_interface
        if interface.lower().startswith("local/"):
            head, sep, _ = interface.partition("/")
            interface = head + sep + interface[len(head) + 1 :].split("/", 1)[0]
        return interface.lower()

    def _status_of(self, state_interface: str) -> int:
        for device, state in self.device_states.items():
            if device.lower() == state_interface.lower():
                return DEVICE_STATE_CODE.get(state, 0)
        if state_interface.lower().startswith("local/"):
            # Not recorded: chan_local reports NOT_INUSE for an existing
            # extension and INVALID otherwise.
            target = state_interface[6:].split("/", 1)[0]
            exten, _, context = target.partition("@")
            if (context or "default", exten) in self.extensions:
                return DEVICE_STATE_CODE["NOT_INUSE"]
        # Not recorded: a device Asterisk does not know is INVALID.
        return DEVICE_STATE_CODE["INVALID"]

    def _set_device(self, device: str, state: str, events: list[Pairs]) -> None:
        if self.device_states.get(device) == state:
            return
        self.device_states[device] = state
        events.append(
            self._event("DeviceStateChange", "call,all", [("Device", device), ("State", state)])
        )

    @staticmethod
    def _available(queue: Queue, member: Member) -> bool:
        """app_queue's is_member_available()."""
        if member.status in _FREE_CODES:
            available = not member.paused
        elif member.status in _BUSY_CODES and member.ringinuse:
            available = not member.paused
        else:
            available = False
        if member.last_call and queue.wrapuptime:
            if time.time() - queue.wrapuptime < member.last_call:
                available = False
        return available

    @staticmethod
    def _member_state(member: Member) -> Pairs:
        """The fields member events and QueueStatus's QueueMember items share
        (recorded: same names and order after the member's name and interface)."""
        return [
            ("StateInterface", member.state_interface),
            ("Membership", "dynamic" if member.dynamic else "static"),
            ("Penalty", str(member.penalty)),
            ("CallsTaken", str(member.calls_taken)),
            ("LastCall", str(member.last_call)),
            ("LastPause", str(member.last_pause)),
            ("LoginTime", str(member.login_time)),
            ("InCall", "1" if member.in_call else "0"),
            ("Status", str(member.status)),
            ("Paused", "1" if member.paused else "0"),
            ("PausedReason", member.paused_reason),
        ]

    def _member_fields(self, queue: Queue, member: Member) -> Pairs:
        """The body of QueueMemberAdded / Pause / Penalty / Ringinuse / Removed / Status."""
        return [
            ("Queue", queue.name),
            ("MemberName", member.name),
            ("Interface", member.interface),
            *self._member_state(member),
            ("Ringinuse", "1" if member.ringinuse else "0"),
            ("Wrapuptime", str(member.wrapuptime)),
        ]

    @staticmethod
    def _ordered_members(queue: Queue) -> list[Member]:
        if queue.strategy in ("linear", "rrordered"):
            return list(queue.members)
        return sorted(queue.members, key=lambda m: _member_bucket(m.interface))

    def _queues_matching(self, name: str | None) -> list[Queue]:
        # Across queues Asterisk lists in its own hash order (not recorded with
        # more than one queue); the double uses the order queues were added.
        if not name:
            return list(self.queues.values())
        queue = self._find_queue(name)
        return [queue] if queue is not None else []

    # -- actions: session --------------------------------------------------------

    async def _login(self, session: _Session, request: AmiMessage) -> _Outcome:
        if request.get("Username") != self.username or request.get("Secret") != self.secret:
            await asyncio.sleep(self.bad_login_delay)
            return _Outcome([self._reply(request, "Error", "Authentication failed")], close=True)
        now = time.time()
        session.logged_in = True
        session.account = self.username
        session.session_tv = now
        # "Events: off" silences events; a class list ("call,agent") is treated
        # as on — the double does not filter by class.
        session.events = (request.get("Events") or "on").strip().lower() != "off"
        replies = [self._reply(request, "Success", "Authentication accepted")]
        if session.events:
            uptime = str(int(now - self._booted))
            # FullyBooted is appended to this session only, without SystemName.
            replies.append(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
            # A security event; sent to the new session only (whether other
            # sessions see it is not recorded).
            replies.append(
                self._event(
                    "SuccessfulAuth",
                    "security,all",
                    [
                        ("EventTV", _event_tv(now)),
                        ("Severity", "Informational"),
                        ("Service", "AMI"),
                        ("EventVersion", "1"),
                        ("AccountID", session.account),
                        ("SessionID", session.session_id),
                        ("LocalAddress", session.local_address),
                        ("RemoteAddress", session.remote_address),
                        ("UsingPassword", "0"),
                        ("SessionTV", _event_tv(session.session_tv)),
                    ],
                )
            )
        return _Outcome(replies)

    def _logoff(self, session: _Session, request: AmiMessage) -> _Outcome:
        return _Outcome([self._reply(request, "Goodbye", "Thanks for all the fish.")], close=True)

    def _ping(self, session: _Session, request: AmiMessage) -> _Outcome:
        return _Outcome(
            [self._reply(request, extra=[("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])]
        )

    def _unknown(self, session: _Session, request: AmiMessage, action: str) -> _Outcome:
        text = (
            f"Invalid/unknown command: {action}. "
            "Use Action: ListCommands to show available commands."
        )
        event = self._event(
            "RequestBadFormat",
            "security,all",
            [
                ("EventTV", _event_tv(time.time())),
                ("Severity", "Error"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("SessionID", session.session_id),
                ("LocalAddress", session.local_address),
                ("RemoteAddress", session.remote_address),
                ("RequestType", f"Action: {action}"),
                ("SessionTV", _event_tv(session.session_tv)),
                ("AccountID", session.account),
            ],
        )
        return _Outcome([self._reply(request, "Error", text)], events=[event])

    def _command(self, session: _Session, request: AmiMessage) -> _Outcome:
        command = " ".join((request.get("Command") or "").split())
        if command.lower() == "core show version":
            return _Outcome(
                [
                    self._reply(
                        request, "Success", "Command output follows", [("Output", VERSION_LINE)]
                    )
                ]
            )
        # Only "core show version" is modelled. Anything else answers like an
        # unknown CLI command in Asterisk 22 (its source; not recorded), so a
        # test relying on other CLI output fails loudly instead of reading
        # made-up text.
        return _Outcome(
            [
                self._reply(
                    request,
                    "Error",
                    "Command output follows",
                    [
                        (
                            "Output",
                            f"No such command '{command}' "
                            f"(type 'core show help {command}' for other possible commands)",
                        )
                    ],
                )
            ]
        )

    # -- actions: queues -----------------------------------------------------------

    def _queue_status(self, session: _Session, request: AmiMessage) -> _Outcome:
        member_filter = request.get("Member") or ""
        now = time.time()
        items: list[Pairs] = []
        for queue in self._queues_matching(request.get("Queue")):
            items.append(
                self._item_id_last(
                    request,
                    "QueueParams",
                    [
                        ("Queue", queue.name),
                        ("Max", str(queue.max_callers)),
                        ("Strategy", queue.strategy),
                        ("Calls", str(len(queue.entries))),
                        ("Holdtime", str(queue.holdtime)),
                        ("TalkTime", str(queue.talktime)),
                        ("Completed", str(queue.completed)),
                        ("Abandoned", str(queue.abandoned)),
                        ("ServiceLevel", str(queue.servicelevel)),
                        ("ServicelevelPerf", f"{queue.servicelevel_perf:.1f}"),
                        ("ServicelevelPerf2", f"{queue.servicelevel_perf2:.1f}"),
                        ("Weight", str(queue.weight)),
                    ],
                )
            )
            for member in self._ordered_members(queue):
                # The Member filter matches the interface or the member name.
                if member_filter and member_filter not in (member.interface, member.name):
                    continue
                items.append(
                    self._item_id_last(
                        request,
                        "QueueMember",
                        [
                            ("Queue", queue.name),
                            ("Name", member.name),
                            ("Location", member.interface),
                            *self._member_state(member),
                            ("Wrapuptime", str(member.wrapuptime)),
                        ],
                    )
                )
            # Entries are not filtered by Member (app_queue filters only the
            # member list; not recorded with a filter and a caller waiting).
            for position, entry in enumerate(queue.entries, start=1):
                channel = self.channels.get(entry.channel)
                items.append(
                    self._item_id_last(
                        request,
                        "QueueEntry",
                        [
                            ("Queue", queue.name),
                            ("Position", str(position)),
                            ("Channel", entry.channel),
                            ("Uniqueid", channel.uniqueid if channel else ""),
                            ("CallerIDNum", channel.caller_id_num if channel else "<unknown>"),
                            ("CallerIDName", channel.caller_id_name if channel else "<unknown>"),
                            (
                                "ConnectedLineNum",
                                channel.connected_line_num if channel else "<unknown>",
                            ),
                            (
                                "ConnectedLineName",
                                channel.connected_line_name if channel else "<unknown>",
                            ),
                            ("Wait", str(int(now - entry.joined))),
                            ("Priority", str(entry.priority)),
                        ],
                    )
                )
        # An unknown queue: not recorded; app_queue just lists nothing.
        return self._list(request, "Queue status will follow", "QueueStatusComplete", items)

    def _queue_summary(self, session: _Session, request: AmiMessage) -> _Outcome:
        now = time.time()
        items: list[Pairs] = []
        for queue in self._queues_matching(request.get("Queue")):
            logged_in = [m for m in queue.members if m.status not in (4, 5)]
            available = [m for m in logged_in if m.status in _FREE_CODES and not m.paused]
            longest = max((int(now - e.joined) for e in queue.entries), default=0)
            items.append(
                self._item_id_last(
                    request,
                    "QueueSummary",
                    [
                        ("Queue", queue.name),
                        ("LoggedIn", str(len(logged_in))),
                        ("Available", str(len(available))),
                        ("Callers", str(len(queue.entries))),
                        ("HoldTime", str(queue.holdtime)),
                        ("TalkTime", str(queue.talktime)),
                        ("LongestHoldTime", str(longest)),
                    ],
                )
            )
        return self._list(request, "Queue summary will follow", "QueueSummaryComplete", items)

    def _queue_add(self, session: _Session, request: AmiMessage) -> _Outcome:
        name = request.get("Queue")
        interface = request.get("Interface")
        if not name or not interface:
            # Not recorded; app_queue's text.
            return self._error(request, "'Queue' or 'Interface' not set.")
        queue = self._find_queue(name)
        if queue is None:
            return self._error(request, "Unable to add interface to queue: No such queue")
        if queue.member(interface) is not None:
            return self._error(request, "Unable to add interface: Already there")
        now = int(time.time())
        paused = _ast_true(request.get("Paused"))
        state_interface = request.get("StateInterface") or interface
        member = Member(
            interface=interface,
            name=request.get("MemberName") or interface,
            state_interface=state_interface,
            dynamic=True,
            penalty=int(request.get("Penalty") or 0),
            paused=paused,
            paused_reason=(request.get("Reason") or "") if paused else "",
            last_pause=now if paused else 0,
            login_time=now,
            status=self._status_of(state_interface),
            ringinuse=queue.ringinuse,
        )
        queue.members.append(member)
        events: list[Pairs] = []
        self._set_device(
            self._pause_device(queue, member), "INUSE" if paused else "NOT_INUSE", events
        )
        events.append(
            self._event("QueueMemberAdded", "agent,all", self._member_fields(queue, member))
        )
        if self._available(queue, member):
            self._set_device(f"Queue:{queue.name}_avail", "NOT_INUSE", events)
        return _Outcome([self._reply(request, "Success", "Added interface to queue")], events)

    def _queue_remove(self, session: _Session, request: AmiMessage) -> _Outcome:
        name = request.get("Queue")
        interface = request.get("Interface")
        if not name or not interface:
            # Not recorded; app_queue's text.
            return self._error(request, "Need 'Queue' and 'Interface' parameters.")
        queue = self._find_queue(name)
        if queue is None:
            # Not recorded; app_queue's text.
            return self._error(request, "Unable to remove interface from queue: No such queue")
        member = queue.member(interface)
        if member is None:
            return self._error(request, "Unable to remove interface: Not there")
        if not member.dynamic:
            return self._error(request, "Member not dynamic")
        events = [
            self._event("QueueMemberRemoved", "agent,all", self._member_fields(queue, member))
        ]
        queue.members.remove(member)
        # Removing resets the pause device to NOT_INUSE after the event; only
        # unpaused members were removed in the recordings, so its order
        # relative to QueueMemberRemoved is not recorded.
        self._set_device(self._pause_device(queue, member), "NOT_INUSE", events)
        if not any(self._available(queue, m) for m in queue.members):
            self._set_device(f"Queue:{queue.name}_avail", "INUSE", events)
        return _Outcome([self._reply(request, "Success", "Removed interface from queue")], events)

    def _queue_pause(self, session: _Session, request: AmiMessage) -> _Outcome:
        interface = request.get("Interface")
        paused_value = request.get("Paused")
        if not interface or paused_value is None:
            # Not recorded; app_queue's text.
            return self._error(request, "Need 'Interface' and 'Paused' parameters.")
        paused = _ast_true(paused_value)
        reason = request.get("Reason") or ""
        targets = [
            (queue, member)
            for queue in self._queues_matching(request.get("Queue"))
            if (member := queue.member(interface)) is not None
        ]
        if not targets:
            return self._error(request, "Interface not found")
        now = int(time.time())
        events: list[Pairs] = []
        # Without Queue: one round of events per queue the interface is in.
        for queue, member in targets:
            member.paused = paused
            if paused:
                member.last_pause = now
            member.paused_reason = reason if paused else ""
            self._set_device(
                self._pause_device(queue, member), "INUSE" if paused else "NOT_INUSE", events
            )
            if self._available(queue, member):
                self._set_device(f"Queue:{queue.name}_avail", "NOT_INUSE", events)
            elif not any(self._available(queue, m) for m in queue.members):
                self._set_device(f"Queue:{queue.name}_avail", "INUSE", events)
            events.append(
                self._event("QueueMemberPause", "agent,all", self._member_fields(queue, member))
            )
        text = "Interface paused successfully" if paused else "Interface unpaused successfully"
        return _Outcome([self._reply(request, "Success", text)], events)

    def _queue_penalty(self, session: _Session, request: AmiMessage) -> _Outcome:
        interface = request.get("Interface")
        penalty_text = request.get("Penalty") or ""
        targets = [
            (queue, member)
            for queue in self._queues_matching(request.get("Queue"))
            if interface and (member := queue.member(interface)) is not None
        ]
        if not targets or not penalty_text.strip().isdigit():
            # Not recorded; app_queue's text for every failure.
            return self._error(request, "Invalid interface, queuename or penalty")
        events: list[Pairs] = []
        for queue, member in targets:
            member.penalty = int(penalty_text)
            events.append(
                self._event("QueueMemberPenalty", "agent,all", self._member_fields(queue, member))
            )
        return _Outcome(
            [self._reply(request, "Success", "Interface penalty set successfully")], events
        )

    def _queue_ringinuse(self, session: _Session, request: AmiMessage) -> _Outcome:
        interface = request.get("Interface")
        value = request.get("RingInUse")
        targets = [
            (queue, member)
            for queue in self._queues_matching(request.get("Queue"))
            if interface and (member := queue.member(interface)) is not None
        ]
        if not targets or value is None:
            # Not recorded; app_queue's text.
            return self._error(request, "Invalid interface, queuename, or ringinuse value")
        events: list[Pairs] = []
        for queue, member in targets:
            member.ringinuse = _ast_true(value)
            events.append(
                self._event("QueueMemberRinginuse", "agent,all", self._member_fields(queue, member))
            )
        return _Outcome(
            [self._reply(request, "Success", "Interface ringinuse set successfully")], events
        )

    # -- actions: variables ----------------------------------------------------------

    def _channel_fields(self, channel: Channel) -> Pairs:
        return [
            ("Channel", channel.name),
            ("ChannelState", str(channel.state)),
            ("ChannelStateDesc", CHANNEL_STATE_DESC.get(channel.state, "Unknown")),
            ("CallerIDNum", channel.caller_id_num),
            ("CallerIDName", channel.caller_id_name),
            ("ConnectedLineNum", channel.connected_line_num),
            ("ConnectedLineName", channel.connected_line_name),
            ("Language", channel.language),
            ("AccountCode", channel.account_code),
            ("Context", channel.context),
            ("Exten", channel.exten),
            ("Priority", str(channel.priority)),
            ("Uniqueid", channel.uniqueid),
            ("Linkedid", channel.linkedid),
        ]

    def _getvar(self, session: _Session, request: AmiMessage) -> _Outcome:
        variable = request.get("Variable")
        if not variable:
            # Not recorded; manager.c's text.
            return self._error(request, "No variable specified")
        channel_name = request.get("Channel")
        if channel_name:
            channel = self.channels.get(channel_name)
            if channel is None:
                return self._error(request, "No such channel")
            value = channel.variables.get(variable, "")
        elif variable == "EPOCH":
            value = str(int(time.time()))
        else:
            value = self.global_variables.get(variable, "")
        # An unset variable: not recorded; Asterisk answers an empty Value.
        return _Outcome([self._reply(request, extra=[("Variable", variable), ("Value", value)])])

    def _setvar(self, session: _Session, request: AmiMessage) -> _Outcome:
        variable = request.get("Variable")
        if not variable:
            # Not recorded; manager.c's text.
            return self._error(request, "No variable specified")
        value = request.get("Value") or ""
        channel_name = request.get("Channel")
        if channel_name:
            channel = self.channels.get(channel_name)
            if channel is None:
                return self._error(request, "No such channel")
            channel.variables[variable] = value
            body = self._channel_fields(channel)
        else:
            self.global_variables[variable] = value
            body = [("Channel", "none"), ("Uniqueid", "none")]
        event = self._event(
            "VarSet", "dialplan,all", [*body, ("Variable", variable), ("Value", value)]
        )
        return _Outcome([self._reply(request, "Success", "Variable Set")], [event])

    # -- actions: calls ----------------------------------------------------------------

    def _outcome_for(self, target: str) -> _Script:
        script = self._scripts.get(target.lower())
        if script is not None:
            return script
        tech, _, resource = target.partition("/")
        if tech.lower() == "pjsip":
            endpoint = self.endpoints.get(resource.split("/", 1)[0])
            if endpoint is not None and endpoint.contacts:
                return _Script("answered", 0.0)
            return _Script("unknown", 0.0)
        return _Script("answered", 0.0)

    def _new_channel_name(self, target: str) -> str:
        seq = next(self._channel_seq)
        if target.lower().startswith("local/"):
            return f"{target}-{seq:08x};1"
        return f"{target}-{seq:08x}"

    def _originate(self, session: _Session, request: AmiMessage) -> _Outcome:
        target = request.get("Channel")
        if not target:
            # Not recorded; manager.c's texts.
            return self._error(request, "Channel not specified")
        if "/" not in target:
            return self._error(request, "Invalid channel")
        application = request.get("Application")
        exten = request.get("Exten")
        context = request.get("Context") or "default"
        if not application and exten and (context, exten) not in self.extensions:
            return self._error(request, "Extension does not exist.")
        script = self._outcome_for(target)
        if not _ast_true(request.get("Async")):
            # Recorded: a synchronous Originate that fails only says
            # "Originate failed" (no OriginateResponse). A synchronous success
            # is not recorded; manager.c acknowledges it with the same text as
            # the async form.
            if script.outcome != "answered":
                return self._error(request, "Originate failed")
            self._answer_originate(request, target)
            return _Outcome([self._reply(request, "Success", "Originate successfully queued")])
        task = asyncio.create_task(self._originate_later(request, target, script))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _Outcome([self._reply(request, "Success", "Originate successfully queued")])

    def _answer_originate(self, request: AmiMessage, target: str) -> Channel:
        number, name = _parse_callerid(request.get("CallerID"))
        application = request.get("Application") or ""
        variables: dict[str, str] = {}
        for assignment in request.get_all("Variable"):
            key, _, value = assignment.partition("=")
            variables[key] = value
        return self.add_channel(
            self._new_channel_name(target),
            uniqueid=request.get("ChannelId") or None,
            caller_id_num=number,
            caller_id_name=name,
            connected_line_num=number,
            connected_line_name=name,
            # With Application the channel's dialplan position is the
            # endpoint's context (not modelled; "default"/"s" stand in).
            context=request.get("Context") or "default",
            exten=request.get("Exten") or "s",
            priority=int(request.get("Priority") or 1),
            application=application,
            application_data=(request.get("Data") or "") if application else "",
            variables=variables,
        )

    async def _originate_later(self, request: AmiMessage, target: str, script: _Script) -> None:
        if script.delay > 0:
            # Simulated ring time of the scripted target, not a test wait.
            await asyncio.sleep(script.delay)
        number, name = _parse_callerid(request.get("CallerID"))
        channel_id = request.get("ChannelId")
        if script.outcome == "answered":
            channel = self._answer_originate(request, target)
            response, channel_name, reason, uniqueid = (
                "Success",
                channel.name,
                "4",
                channel.uniqueid,
            )
        else:
            # Recorded: busy (486) is Reason 0, not 5; no answer is Reason 3;
            # an unknown endpoint is Reason 0 with Uniqueid <unknown>. A failed
            # call's Uniqueid is the ChannelId when one was given (recorded for
            # busy and no answer), else <unknown>.
            response, channel_name = "Failure", target
            reason = "3" if script.outcome == "no_answer" else "0"
            if script.outcome != "unknown" and channel_id:
                uniqueid = channel_id
            else:
                uniqueid = "<unknown>"
        fields: Pairs = []
        action_id = request.get("ActionID")
        if action_id is not None:
            fields.append(("ActionID", action_id))
        fields += [("Response", response), ("Channel", channel_name)]
        application = request.get("Application")
        if application:
            fields += [("Application", application), ("Data", request.get("Data") or "")]
        else:
            fields += [
                ("Context", request.get("Context") or ""),
                ("Exten", request.get("Exten") or ""),
            ]
        fields += [
            ("Reason", reason),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", number),
            ("CallerIDName", name),
        ]
        # Only the OriginateResponse is emitted: the Newchannel / Dial* /
        # Hangup / DeviceStateChange traffic around it is not synthesised
        # (tests needing it emit or replay it).
        await self._broadcast_bytes(
            encode_message(self._event("OriginateResponse", "call,all", fields))
        )

    def _redirect(self, session: _Session, request: AmiMessage) -> _Outcome:
        name = request.get("Channel")
        if not name:
            # Not recorded; manager.c's texts.
            return self._error(request, "Channel not specified")
        channel = self.channels.get(name)
        if channel is None:
            return self._error(request, f"Channel does not exist: {name}")
        extra_name = request.get("ExtraChannel")
        extra = None
        if extra_name:
            extra = self.channels.get(extra_name)
            if extra is None:
                return self._error(request, f"Channel does not exist: {extra_name}")
        priority_text = request.get("Priority") or "1"
        if not priority_text.isdigit():
            return self._error(request, "Invalid priority")
        context = request.get("Context") or channel.context
        exten = request.get("Exten") or channel.exten
        channel.context, channel.exten, channel.priority = context, exten, int(priority_text)
        if extra is not None:
            extra_priority = request.get("ExtraPriority") or priority_text
            extra.context = request.get("ExtraContext") or context
            extra.exten = request.get("ExtraExten") or exten
            extra.priority = int(extra_priority) if extra_priority.isdigit() else 1
            # Recorded text for the dual form.
            return _Outcome([self._reply(request, "Success", "Dual Redirect successful")])
        # The single form is not recorded; manager.c's text. Neither form
        # synthesises the bridge / ConfBridge events that follow in Asterisk.
        return _Outcome([self._reply(request, "Success", "Redirect successful")])

    def _hangup(self, session: _Session, request: AmiMessage) -> _Outcome:
        name = request.get("Channel")
        if not name:
            # Not recorded; manager.c's text.
            return self._error(request, "No channel specified")
        channel = self.channels.get(name)
        if channel is None:
            # Not recorded for Hangup; the same text as Getvar / Setvar.
            return self._error(request, "No such channel")
        cause_text = request.get("Cause") or "0"
        cause = int(cause_text) if cause_text.isdigit() else 0
        self._remove_channel(name)
        # Recorded: AMI Hangup gives no HangupRequest, the Hangup event carries
        # the cause given (0 / "Unknown" without one). Cdr and device-state
        # events that follow in Asterisk are not synthesised.
        event = self._event(
            "Hangup",
            "call,all",
            [
                *self._channel_fields(channel),
                ("Cause", str(cause)),
                ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
            ],
        )
        return _Outcome([self._reply(request, "Success", "Channel Hungup")], [event])

    def _remove_channel(self, name: str) -> None:
        self.channels.pop(name, None)
        for queue in self.queues.values():
            queue.entries = [e for e in queue.entries if e.channel != name]
        for room in list(self.conferences.values()):
            room.participants = [p for p in room.participants if p.channel != name]
            if not room.participants:
                del self.conferences[room.name]

    def _core_show_channels(self, session: _Session, request: AmiMessage) -> _Outcome:
        now = time.monotonic()
        items: list[Pairs] = []
        for channel in self.channels.values():
            seconds = int(now - channel.created)
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            items.append(
                self._item_id_second(
                    request,
                    "CoreShowChannel",
                    [
                        *self._channel_fields(channel),
                        ("Application", channel.application),
                        ("ApplicationData", channel.application_data),
                        ("Duration", duration),
                        ("BridgeId", channel.bridge_id),
                    ],
                )
            )
        return self._list(request, "Channels will follow", "CoreShowChannelsComplete", items)

    def _pjsip_show_endpoints(self, session: _Session, request: AmiMessage) -> _Outcome:
        if not self.endpoints:
            # Not recorded; res_pjsip's text when nothing is configured.
            return self._error(request, "No endpoints found")
        items: list[Pairs] = []
        for endpoint in self.endpoints.values():
            prefix = f"PJSIP/{endpoint.name}-"
            active = sum(1 for name in self.channels if name.startswith(prefix))
            state = self.device_states.get(f"PJSIP/{endpoint.name}", "UNAVAILABLE")
            items.append(
                self._item_id_second(
                    request,
                    "EndpointList",
                    [
                        ("ObjectType", "endpoint"),
                        ("ObjectName", endpoint.name),
                        ("Transport", endpoint.transport),
                        ("Aor", endpoint.name),
                        ("Auths", endpoint.auths),
                        ("OutboundAuths", endpoint.outbound_auths),
                        ("Contacts", "".join(f"{endpoint.name}/{c}," for c in endpoint.contacts)),
                        ("DeviceState", DEVICE_STATE_TEXT.get(state, "Unknown")),
                        ("ActiveChannels", str(active)),
                    ],
                )
            )
        return self._list(
            request,
            "A listing of Endpoints follows, presented as EndpointList events",
            "EndpointListComplete",
            items,
        )

    # -- actions: ConfBridge -----------------------------------------------------------
    # Error texts below are app_confbridge's; only the successful replies are
    # recorded.

    def _confbridge_list_rooms(self, session: _Session, request: AmiMessage) -> _Outcome:
        if not self.conferences:
            return self._error(request, "No active conferences.")
        items = [
            self._item_id_second(
                request,
                "ConfbridgeListRooms",
                [
                    ("Conference", room.name),
                    ("Parties", str(len(room.participants))),
                    ("Marked", str(sum(1 for p in room.participants if p.marked))),
                    ("Locked", "Yes" if room.locked else "No"),
                    ("Muted", "Yes" if room.muted else "No"),
                ],
            )
            for room in self.conferences.values()
        ]
        return self._list(
            request, "Confbridge conferences will follow", "ConfbridgeListRoomsComplete", items
        )

    def _find_room(self, request: AmiMessage) -> Conference | str:
        name = request.get("Conference")
        if not name:
            return "No Conference name provided."
        if not self.conferences:
            return "No active conferences."
        room = self.conferences.get(name)
        if room is None:
            return "No Conference by that name found."
        return room

    def _confbridge_list(self, session: _Session, request: AmiMessage) -> _Outcome:
        room = self._find_room(request)
        if isinstance(room, str):
            return self._error(request, room)
        now = time.monotonic()
        items: list[Pairs] = []
        for participant in room.participants:
            channel = self.channels[participant.channel]
            items.append(
                self._item_id_second(
                    request,
                    "ConfbridgeList",
                    [
                        ("Conference", room.name),
                        ("Admin", "Yes" if participant.admin else "No"),
                        ("MarkedUser", "Yes" if participant.marked else "No"),
                        ("WaitMarked", "No"),
                        ("EndMarked", "No"),
                        ("EndMarkedAny", "No"),
                        ("Waiting", "No"),
                        ("Muted", "Yes" if participant.muted else "No"),
                        ("Talking", "No"),
                        ("AnsweredTime", str(int(now - channel.created))),
                        *self._channel_fields(channel),
                    ],
                )
            )
        return self._list(
            request, "Confbridge user list will follow", "ConfbridgeListComplete", items
        )

    def _confbridge_kick(self, session: _Session, request: AmiMessage) -> _Outcome:
        room = self._find_room(request)
        if isinstance(room, str):
            return self._error(request, room)
        target = request.get("Channel") or ""
        if target == "all":
            room.participants.clear()
            text = "All participants kicked"
        else:
            kept = [p for p in room.participants if p.channel != target]
            if len(kept) == len(room.participants):
                return self._error(request, "No Channel by that name found in Conference.")
            room.participants = kept
            text = "User kicked"
        if not room.participants:
            del self.conferences[room.name]
        # ConfbridgeLeave / ConfbridgeEnd and what the kicked channels do next
        # are not synthesised.
        return _Outcome([self._reply(request, "Success", text)])
