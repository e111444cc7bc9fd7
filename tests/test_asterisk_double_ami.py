"""The AMI double follows the recordings of a real Asterisk, field by field.

Each test seeds the double with what the recorded Asterisk had (queues,
members, endpoints, channels), sends the *recorded* actions over a raw socket
and compares every reply, list item and event with the recorded ones. Only
volatile values (timestamps, session ids, ports, login times) are compared by
shape instead of by value.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from smeline.telephony.ami_protocol import AmiMessage, AmiParser, encode_message
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.ami_server import (
    BANNER,
    AmiDouble,
    RecordedBlock,
    parse_annotated_recording,
)

IO_TIMEOUT = 5.0

_TV = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000"
_ADDRESS = r"IPV4/TCP/127\.0\.0\.1/\d+"
#: Values generated at run time: compared by shape. LastPause / LastCall are
#: volatile only when set (0 means "never" and must match exactly).
VOLATILE: dict[str, str] = {
    "Timestamp": r"\d+\.\d{6}",
    "SessionID": r"0x[0-9a-f]+",
    "LocalAddress": _ADDRESS,
    "RemoteAddress": _ADDRESS,
    "EventTV": _TV,
    "SessionTV": _TV,
    "Uptime": r"\d+",
    "LastReload": r"\d+",
    "LoginTime": r"\d+",
    "LastPause": r"[1-9]\d*",
    "LastCall": r"[1-9]\d*",
    "Duration": r"\d\d:\d\d:\d\d",
    "AnsweredTime": r"\d+",
}


def _volatile(key: str, expected_value: str, expected: AmiMessage) -> str | None:
    if key in ("LastPause", "LastCall") and expected_value == "0":
        return None
    if key == "Value" and expected.get("Variable") == "EPOCH":
        return r"\d{10}"
    if key == "Channel" and expected.event == "OriginateResponse":
        # The name of an answered originated channel carries Asterisk's
        # global channel counter.
        if re.fullmatch(r".+-[0-9a-f]{8}", expected_value):
            return re.escape(expected_value[:-8]) + r"[0-9a-f]{8}"
    return VOLATILE.get(key)


def assert_same(actual: AmiMessage, expected: AmiMessage, where: str) -> None:
    actual_keys = [k for k, _ in actual.fields]
    expected_keys = [k for k, _ in expected.fields]
    assert actual_keys == expected_keys, f"{where}: fields differ\n{actual}\n{expected}"
    for (key, got), (_, want) in zip(actual.fields, expected.fields, strict=True):
        pattern = _volatile(key, want, expected)
        if pattern is None:
            assert got == want, f"{where}: {key} is {got!r}, recorded {want!r}"
        else:
            assert re.fullmatch(pattern, got), f"{where}: {key}={got!r} !~ {pattern}"


def assert_all_same(
    actual: Sequence[AmiMessage], expected: Sequence[AmiMessage], where: str
) -> None:
    names = [m.event or f"Response:{m.get('Response')}" for m in actual]
    wanted = [m.event or f"Response:{m.get('Response')}" for m in expected]
    assert names == wanted, f"{where}: messages differ"
    for got, want in zip(actual, expected, strict=True):
        assert_same(got, want, f"{where} {want.event or 'reply'}")


# -- a raw AMI peer -----------------------------------------------------------------


@dataclass
class RawAmi:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    banner: bytes
    parser: AmiParser = field(default_factory=lambda: AmiParser(expect_banner=False))
    buffered: list[AmiMessage] = field(default_factory=list)
    sentinels: int = 0

    @classmethod
    async def connect(cls, port: int) -> RawAmi:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(IO_TIMEOUT):
            banner = await reader.readline()
        return cls(reader, writer, banner)

    def send(self, message: AmiMessage | Sequence[tuple[str, str]]) -> None:
        pairs = message.fields if isinstance(message, AmiMessage) else message
        self.writer.write(encode_message(pairs))

    async def next(self) -> AmiMessage | None:
        """The next message, or None at EOF."""
        async with asyncio.timeout(IO_TIMEOUT):
            while not self.buffered:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.buffered.extend(self.parser.feed(data))
        return self.buffered.pop(0)

    async def exchange(
        self,
        message: AmiMessage | Sequence[tuple[str, str]],
        until: Callable[[list[AmiMessage]], bool] | None = None,
    ) -> list[AmiMessage]:
        """Send ``message``; return what came back.

        Without ``until``, a Ping sentinel follows: the double handles one
        action at a time, so everything the action caused precedes its reply.
        """
        self.send(message)
        sentinel = None
        if until is None:
            self.sentinels += 1
            sentinel = f"sentinel-{self.sentinels}"
            self.send([("Action", "Ping"), ("ActionID", sentinel)])
        received: list[AmiMessage] = []
        while True:
            got = await self.next()
            assert got is not None, f"connection closed; received {received}"
            if sentinel is not None and not got.is_event and got.action_id == sentinel:
                return received
            received.append(got)
            if until is not None and until(received):
                return received

    async def until_eof(self) -> list[AmiMessage]:
        received: list[AmiMessage] = []
        while (got := await self.next()) is not None:
            received.append(got)
        return received

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# -- the recordings, attributed to the action that caused each message ---------------


def _cause(message: AmiMessage, sent: list[AmiMessage]) -> str | None:
    """The recorded action an event without ActionID belongs to, if it names one.

    Asterisk queues events asynchronously, so with several actions in flight an
    event may follow a later reply: RequestBadFormat names its action in
    RequestType, a global VarSet names the Setvar's variable.
    """
    if message.event == "RequestBadFormat":
        action = (message.get("RequestType") or "").removeprefix("Action: ")
        for request in sent:
            if request.get("Action") == action:
                return request.action_id
    if message.event == "VarSet" and message.get("Channel") == "none":
        for request in sent:
            if request.get("Action") == "Setvar" and request.get("Variable") == message.get(
                "Variable"
            ):
                return request.action_id
    return None


def recorded_by_action(
    blocks: list[RecordedBlock], connection: str = ""
) -> tuple[list[AmiMessage], dict[str, list[AmiMessage]]]:
    own = [b for b in blocks if b.connection == connection and b.message is not None]
    sent = [b.message for b in own if b.kind == "SENT" and b.message is not None]
    by_action: dict[str, list[AmiMessage]] = {m.action_id or "": [] for m in sent}
    last: str | None = None
    for block in own:
        message = block.message
        assert message is not None
        if block.kind == "SENT":
            last = message.action_id
            continue
        owner = message.action_id if message.action_id in by_action else None
        owner = owner or _cause(message, sent) or last
        assert owner is not None
        by_action[owner].append(message)
    return sent, by_action


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def double() -> AsyncIterator[AmiDouble]:
    server = AmiDouble(bad_login_delay=0.05)  # recorded ~1 s; shortened for speed
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def seed_probe(double: AmiDouble) -> None:
    """What the probe's Asterisk had: one static member, three endpoints."""
    double.add_endpoint("agent1", contacts=["sip:agent1@127.0.0.1:5070"])
    double.add_endpoint("agent2", contacts=["sip:agent2@127.0.0.1:5071"])
    double.add_endpoint("sipp")
    # _avail left at its load-time INUSE: the recorded pause emits no change.
    double.add_queue("county-meijiang", "ringall")
    double.add_static_member("county-meijiang", "PJSIP/agent1", "Agent One")


def seed_dynmembers(double: AmiDouble) -> None:
    double.add_endpoint("agent1", contacts=["sip:agent1@127.0.0.1:5070"])
    double.add_endpoint("agent2", contacts=["sip:agent2@127.0.0.1:5071"])
    double.add_queue("dyn", "rrmemory")
    # city had taken a call (CallsTaken 1) before, so its _avail was current.
    double.add_queue("city", "ringall", avail_state="NOT_INUSE")
    double.add_static_member(
        "city", "PJSIP/agent2", "Agent Two", calls_taken=1, last_call=int(time.time()) - 14
    )


async def replay_actions(
    double: AmiDouble,
    blocks: list[RecordedBlock],
    *,
    skip: Callable[[AmiMessage], bool] = lambda m: False,
) -> int:
    """Send every recorded action of the main connection; compare what comes back."""
    sent, expected = recorded_by_action(blocks)
    banners = [b for b in blocks if b.kind == "BANNER" and b.connection == ""]
    peer = await RawAmi.connect(double.port)
    compared = 0
    try:
        assert peer.banner == ast.literal_eval(banners[0].text.split(" ", 1)[1]) == BANNER
        for request in sent:
            action_id = request.action_id or ""
            if skip(request):
                continue
            if request.get("Action") == "Logoff":
                actual = await peer.exchange(request, until=lambda got: True)
                assert await peer.until_eof() == []
            else:
                actual = await peer.exchange(request)
            assert_all_same(actual, expected[action_id], action_id)
            compared += 1
    finally:
        await peer.close()
    return compared


# -- conformance --------------------------------------------------------------------------


async def test_probe_bad_login_as_recorded(double: AmiDouble) -> None:
    seed_probe(double)
    blocks = parse_annotated_recording(RECORDINGS / "recordings--ami-probe.txt")
    sent, expected = recorded_by_action(blocks, "bad")
    peer = await RawAmi.connect(double.port)
    try:
        assert peer.banner == BANNER
        started = time.monotonic()
        peer.send(sent[0])
        actual = await peer.until_eof()  # the reply, then Asterisk closes
        assert time.monotonic() - started >= double.bad_login_delay
    finally:
        await peer.close()
    assert_all_same(actual, expected[sent[0].action_id or ""], "bad login")


async def test_probe_actions_as_recorded(double: AmiDouble) -> None:
    seed_probe(double)
    blocks = parse_annotated_recording(RECORDINGS / "recordings--ami-probe.txt")

    def skip(request: AmiMessage) -> bool:
        # The double models only "core show version"; its conservative answer
        # to other CLI commands is checked in test_other_cli_commands_are_refused.
        return (request.get("Command") or "").startswith("queue show")

    compared = await replay_actions(double, blocks, skip=skip)
    assert compared == 18  # 19 recorded actions of the good connection, minus one


async def test_dynmembers_actions_as_recorded(double: AmiDouble) -> None:
    seed_dynmembers(double)
    blocks = parse_annotated_recording(RECORDINGS / "recordings-2--ami-dynmembers.txt")
    compared = await replay_actions(double, blocks)
    assert compared == 23
    assert double.queues["dyn"].members == []


async def test_originate_outcomes_as_recorded(double: AmiDouble) -> None:
    double.add_endpoint("agent2", contacts=["sip:agent2@127.0.0.1:5071"])
    double.add_extension("outdial", "s")
    double.set_originate_outcome("PJSIP/extbusy", "busy")
    double.set_originate_outcome("PJSIP/noans", "no_answer")
    blocks = parse_annotated_recording(RECORDINGS / "recordings-2--ami-originate.txt")
    sent, expected = recorded_by_action(blocks)
    peer = await RawAmi.connect(double.port)
    try:
        await peer.exchange(sent[0])
        for request in sent[1:-1]:  # between Login and Logoff
            action_id = request.action_id
            wanted = [m for m in expected[action_id or ""] if m.action_id == action_id]

            def done(
                got: list[AmiMessage], n: int = len(wanted), aid: str | None = action_id
            ) -> bool:
                # The reply, and for Async the OriginateResponse after it.
                return sum(1 for m in got if m.action_id == aid) == n

            actual = await peer.exchange(request, until=done)
            assert_all_same([m for m in actual if m.action_id == action_id], wanted, str(action_id))
    finally:
        await peer.close()
    # The answered one left a live channel named like Asterisk's.
    assert [c.uniqueid for c in double.channels.values()] == ["cc-orig-0001"]


async def test_confbridge_lists_as_recorded(double: AmiDouble) -> None:
    """ConfbridgeListRooms / ConfbridgeList / CoreShowChannels / ConfbridgeKick."""
    # The four channels as CoreShowChannels listed them three seconds after
    # the dual Redirect.
    bridge = "0c70b9fd-869d-49d8-9235-9cf5537d1a93"
    double.add_channel(
        "PJSIP/sipp-00000007",
        uniqueid="cctest-1795343804.11",
        caller_id_num="sipp",
        caller_id_name="sipp",
        connected_line_num="100",
        context="confbridge",
        exten="conf",
        priority=3,
        application="ConfBridge",
        application_data="testconf",
        bridge_id=bridge,
        age=6,
    )
    double.add_channel(
        "PJSIP/agent1-00000008",
        uniqueid="cctest-1795343805.12",
        linkedid="cctest-1795343804.11",
        caller_id_num="100",
        connected_line_num="sipp",
        connected_line_name="sipp",
        context="confbridge",
        exten="conf",
        priority=3,
        application="ConfBridge",
        application_data="testconf",
        bridge_id=bridge,
        age=5,
    )
    for name, uniqueid, context, exten, priority, app, data, bridge_id in (
        ("Local/party@third-00000002;2", ".14", "third", "party", 2, "Wait", "30", ""),
        (
            "Local/party@third-00000002;1",
            ".13",
            "confbridge",
            "conf",
            3,
            "ConfBridge",
            "testconf",
            bridge,
        ),
    ):
        double.add_channel(
            name,
            uniqueid=f"cctest-1795343808{uniqueid}",
            linkedid="cctest-1795343808.13",
            caller_id_num="999",
            caller_id_name="Supervisor",
            connected_line_num="999",
            connected_line_name="Supervisor",
            context=context,
            exten=exten,
            priority=priority,
            application=app,
            application_data=data,
            bridge_id=bridge_id,
            age=3,
        )
    for channel in ("PJSIP/agent1-00000008", "Local/party@third-00000002;1", "PJSIP/sipp-00000007"):
        double.add_conference_participant("testconf", channel)

    blocks = parse_annotated_recording(RECORDINGS / "recordings--ami-confbridge.txt")
    sent, expected = recorded_by_action(blocks)
    peer = await RawAmi.connect(double.port)
    try:
        await peer.exchange(sent[0])
        for request in sent:
            if not (request.get("Action") or "").startswith(("Confbridge", "CoreShow")):
                continue
            action_id = request.action_id
            # The kick's ConfbridgeLeave / Hangup traffic is not synthesised:
            # compare what carries the ActionID.
            wanted = [m for m in expected[action_id or ""] if m.action_id == action_id]
            actual = await peer.exchange(request)
            assert_all_same(actual, wanted, str(action_id))
    finally:
        await peer.close()
    assert double.conferences == {}


async def test_dual_redirect_and_async_originate_replies_as_recorded(double: AmiDouble) -> None:
    double.add_channel("PJSIP/sipp-00000007")
    double.add_channel("PJSIP/agent1-00000008")
    double.add_extension("confbridge", "conf")
    blocks = parse_annotated_recording(RECORDINGS / "recordings--ami-confbridge.txt")
    sent, expected = recorded_by_action(blocks)
    peer = await RawAmi.connect(double.port)
    try:
        await peer.exchange(sent[0])
        for request in sent[1:3]:
            action_id = request.action_id
            replies = [m for m in expected[action_id or ""] if not m.is_event]
            actual = [m for m in await peer.exchange(request) if not m.is_event]
            assert_all_same(actual, replies, str(action_id))
    finally:
        await peer.close()
    moved = double.channels["PJSIP/agent1-00000008"]
    assert (moved.context, moved.exten, moved.priority) == ("confbridge", "conf", 1)


async def test_ami_hangup_as_recorded(double: AmiDouble) -> None:
    double.add_channel(
        "PJSIP/agent2-00000027",
        uniqueid="cctest-1795344950.39",
        caller_id_num="900",
        caller_id_name="Supervisor",
        connected_line_num="900",
        connected_line_name="Supervisor",
        context="agents",
        exten="s",
    )
    blocks = parse_annotated_recording(RECORDINGS / "recordings-2--ami-spy-amihangup-media.txt")
    sent, expected = recorded_by_action(blocks)
    hangup = next(m for m in sent if m.get("Action") == "Hangup")
    recorded = expected[hangup.action_id or ""]
    reply = next(m for m in recorded if not m.is_event)
    event = next(
        m for m in recorded if m.event == "Hangup" and m.get("Channel") == hangup.get("Channel")
    )
    peer = await RawAmi.connect(double.port)
    try:
        await peer.exchange(sent[0])
        actual = await peer.exchange(hangup)
        # Recorded: no HangupRequest for an AMI Hangup.
        assert_all_same(actual, [reply, event], "hangup")
        again = await peer.exchange(hangup)
        assert again[0].get("Response") == "Error"
    finally:
        await peer.close()
    assert "PJSIP/agent2-00000027" not in double.channels


# -- behaviour that is not recorded: conservative answers ---------------------------------


async def _logged_in(double: AmiDouble) -> RawAmi:
    peer = await RawAmi.connect(double.port)
    reply = await peer.exchange([("Action", "Login"), ("Username", "cc"), ("Secret", "cc")])
    assert reply[0].get("Response") == "Success"
    return peer


async def test_action_before_login_is_refused(double: AmiDouble) -> None:
    peer = await RawAmi.connect(double.port)
    try:
        peer.send([("Action", "QueueStatus"), ("ActionID", "early-1")])
        reply = await peer.next()
        assert reply is not None
        assert (reply.get("Response"), reply.get("Message")) == ("Error", "Permission denied")
        assert [m.get("Action") for m in double.actions] == ["QueueStatus"]
    finally:
        await peer.close()


async def test_other_cli_commands_are_refused(double: AmiDouble) -> None:
    peer = await _logged_in(double)
    try:
        [reply] = await peer.exchange(
            [("Action", "Command"), ("ActionID", "c-1"), ("Command", "queue show x")]
        )
    finally:
        await peer.close()
    assert reply.get("Response") == "Error"
    assert reply.get_all("Output") == [
        "No such command 'queue show x' (type 'core show help queue show x' for other "
        "possible commands)"
    ]


async def test_events_reach_every_logged_in_connection_only(double: AmiDouble) -> None:
    first = await _logged_in(double)
    second = await _logged_in(double)
    stranger = await RawAmi.connect(double.port)
    try:
        await double.emit({"Event": "UserEvent", "UserEvent": "hello"})
        for peer in (first, second):
            got = await peer.next()
            assert got is not None and got.get("UserEvent") == "hello"
        # A pause by one connection is seen by the other as events only.
        double.add_queue("q")
        double.add_static_member("q", "PJSIP/a", "A")
        replies = await first.exchange(
            [
                ("Action", "QueuePause"),
                ("ActionID", "p-1"),
                ("Interface", "PJSIP/a"),
                ("Paused", "1"),
            ]
        )
        assert [m.event for m in replies] == [None, "DeviceStateChange", "QueueMemberPause"]
        seen = [await second.next(), await second.next()]
        assert [m.event for m in seen if m is not None] == ["DeviceStateChange", "QueueMemberPause"]
        stranger.send([("Action", "Ping"), ("ActionID", "s-1")])
        refused = await stranger.next()
        assert refused is not None and refused.get("Message") == "Permission denied"
    finally:
        for peer in (first, second, stranger):
            await peer.close()


async def test_drop_connections_closes_every_socket(double: AmiDouble) -> None:
    peer = await _logged_in(double)
    try:
        assert double.logged_in_connections == 1
        await double.drop_connections()
        assert await peer.until_eof() == []
    finally:
        await peer.close()
    assert double.connections_accepted == 1


async def test_device_state_change_updates_members_in_recorded_order(double: AmiDouble) -> None:
    double.add_endpoint("agent1")  # no contact: UNAVAILABLE
    double.add_queue("county-x")
    member = double.add_static_member("county-x", "PJSIP/agent1", "Agent One")
    assert member.status == 5
    peer = await _logged_in(double)
    try:
        await double.set_device_state("PJSIP/agent1", "NOT_INUSE")
        got = [await peer.next() for _ in range(3)]
        await double.set_device_state("PJSIP/agent1", "NOT_INUSE")  # unchanged: silent
        after = await peer.exchange([("Action", "Ping"), ("ActionID", "x")])
    finally:
        await peer.close()
    assert [(m.event, m.get("Device") or m.get("Status")) for m in got if m] == [
        ("DeviceStateChange", "PJSIP/agent1"),
        ("QueueMemberStatus", "1"),
        ("DeviceStateChange", "Queue:county-x_avail"),
    ]
    assert len(after) == 1 and not after[0].is_event


async def test_replay_sends_the_recorded_events_in_order(double: AmiDouble) -> None:
    peer = await _logged_in(double)
    path = RECORDINGS / "recordings--ami-events-call.ami"
    try:
        count = await double.replay(path)
        got = [await peer.next() for _ in range(count)]
    finally:
        await peer.close()
    recorded = [
        b.message
        for b in parse_annotated_recording(path.with_suffix(".txt"))
        if b.kind == "RECV" and b.message is not None and b.message.is_event
    ]
    assert count == len(recorded) > 100
    assert [m.fields for m in got if m] == [m.fields for m in recorded]
