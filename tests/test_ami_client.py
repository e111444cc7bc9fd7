"""AmiClient against the AMI double (which follows the recorded Asterisk)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from smeline.telephony.ami import (
    DEFAULT_IGNORED_EVENTS,
    MAX_FIELD_BYTES,
    AmiActionError,
    AmiClient,
    AmiNotConnected,
    AmiTimeout,
)
from smeline.telephony.ami_protocol import MAX_MESSAGE_BYTES, AmiMessage, encode_message
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.ami_server import AmiDouble, load_recording
from tests.polling import until

DEADLINE = 5.0
CHINESE_NAME = "梅州市某某科技有限公司"

ClientFactory = Callable[..., AmiClient]


@pytest.fixture
async def double() -> AsyncIterator[AmiDouble]:
    server = AmiDouble(bad_login_delay=0.01)  # recorded ~1 s; shortened for speed
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make_client(double: AmiDouble) -> AsyncIterator[ClientFactory]:
    clients: list[AmiClient] = []

    def make(**overrides: Any) -> AmiClient:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": double.port,
            "username": "cc",
            "secret": "cc",
            "connect_timeout": 2.0,
            "action_timeout": 2.0,
            "backoff_initial": 0.02,
            "backoff_max": 0.1,
        }
        settings.update(overrides)
        client = AmiClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.stop()


async def started(make_client: ClientFactory, **overrides: Any) -> AmiClient:
    client = make_client(**overrides)
    await client.start()
    await client.wait_connected(DEADLINE)
    return client


def sent_actions(double: AmiDouble, *skip: str) -> list[AmiMessage]:
    return [m for m in double.actions if m.get("Action") not in ("Login", "Ping", *skip)]


# -- login, back-off, reconnect ------------------------------------------------------


async def test_logs_in_with_actionid_second_and_receives_events(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client, name="pbx")
    seen: list[AmiMessage] = []
    client.add_event_listener(seen.append)
    login = double.actions[0]
    assert login.fields == (
        ("Action", "Login"),
        ("ActionID", "pbx-1"),
        ("Username", "cc"),
        ("Secret", "cc"),
        ("Events", "on"),
    )
    assert client.connected and double.logged_in_connections == 1
    await double.emit({"Event": "UserEvent", "UserEvent": "hello"})
    await until(lambda: any(m.event == "UserEvent" for m in seen))
    assert client.events_received >= 3  # FullyBooted, SuccessfulAuth, UserEvent


async def test_bad_password_is_logged_and_backed_off_then_recovers(
    double: AmiDouble, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smeline.telephony.ami")
    double.secret = "other"
    client = make_client(secret="wrong-secret", backoff_initial=0.05, backoff_max=0.2)
    await client.start()
    await until(lambda: client.connect_attempts >= 2)
    began, first = time.monotonic(), client.connect_attempts
    await until(lambda: client.connect_attempts >= first + 3)
    elapsed = time.monotonic() - began
    # Waits after attempts 2, 3, 4 are at least half of 0.1, 0.2, 0.2 s
    # (jitter); a tight loop would make hundreds of attempts in that time.
    assert elapsed >= 0.25
    assert client.connect_attempts - first <= 4
    assert not client.connected
    rejected = [r for r in caplog.records if "login rejected" in r.getMessage()]
    assert rejected and all(r.levelno == logging.ERROR for r in rejected)
    assert "Authentication failed" in rejected[0].getMessage()
    assert all("wrong-secret" not in r.getMessage() for r in caplog.records)

    double.secret = "wrong-secret"  # the operator fixes manager.conf
    await client.wait_connected(DEADLINE)
    assert client.reconnects == 0  # the first successful login


async def test_reconnects_after_drop_and_fails_pending_actions(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = make_client()
    connects: list[int] = []
    disconnects: list[int] = []

    async def on_connect() -> None:
        result = await client.send_action("Ping")
        connects.append(1 if result.ok else 0)

    client.add_connect_listener(on_connect)
    client.add_disconnect_listener(lambda: disconnects.append(1))
    await client.start()
    await until(lambda: connects == [1])

    double.unresponsive = True
    pending = asyncio.create_task(client.send_action("CoreShowChannels"))
    await until(lambda: any(m.get("Action") == "CoreShowChannels" for m in double.actions))
    double.unresponsive = False
    await double.drop_connections()
    with pytest.raises(AmiNotConnected):
        await pending
    await until(lambda: connects == [1, 1])
    assert disconnects == [1]
    assert client.reconnects == 1 and client.connected
    assert double.connections_accepted == 2


async def test_ping_keepalive_detects_a_peer_that_stops_answering(
    double: AmiDouble, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smeline.telephony.ami")
    client = await started(make_client, ping_interval=0.05, action_timeout=0.2)
    await until(lambda: any(m.get("Action") == "Ping" for m in double.actions))
    lost: list[int] = []
    client.add_disconnect_listener(lambda: lost.append(1))
    double.unresponsive = True  # the socket stays open: only Ping can tell
    await until(lambda: lost == [1])
    assert any("keep-alive" in r.getMessage() for r in caplog.records)
    double.unresponsive = False
    await client.wait_connected(DEADLINE)
    await until(lambda: client.reconnects == 1)


async def test_protocol_error_reconnects(double: AmiDouble, make_client: ClientFactory) -> None:
    client = await started(make_client)
    await double.emit_raw(b"Event: Runaway\r\nData: " + b"x" * (MAX_MESSAGE_BYTES + 10))
    await until(lambda: client.reconnects == 1 and client.connected)


async def test_stop_logs_off(double: AmiDouble, make_client: ClientFactory) -> None:
    client = await started(make_client)
    await client.stop()
    assert double.actions[-1].get("Action") == "Logoff"
    assert not client.connected
    await until(lambda: double.logged_in_connections == 0)


# -- actions ---------------------------------------------------------------------------


async def test_not_connected_and_timeout(double: AmiDouble, make_client: ClientFactory) -> None:
    idle = make_client()
    with pytest.raises(AmiNotConnected):
        await idle.send_action("Ping")
    client = await started(make_client)
    double.unresponsive = True
    began = time.monotonic()
    with pytest.raises(AmiTimeout):
        await client.send_action("Ping", timeout=0.1)
    assert time.monotonic() - began < 1.0
    double.unresponsive = False


async def test_error_reply_and_check(double: AmiDouble, make_client: ClientFactory) -> None:
    client = await started(make_client)
    result = await client.send_action("NoSuchAction")
    assert not result.ok
    assert result.message == (
        "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available "
        "commands."
    )
    with pytest.raises(AmiActionError) as raised:
        await client.send_action("Getvar", {"Channel": "PJSIP/x-1", "Variable": "A"}, check=True)
    assert (raised.value.action, raised.value.message) == ("Getvar", "No such channel")
    goodbye = await client.send_action("Logoff")
    assert goodbye.ok and goodbye.response.get("Response") == "Goodbye"


async def test_queue_status_collects_items(double: AmiDouble, make_client: ClientFactory) -> None:
    double.add_endpoint("agent1", contacts=["sip:agent1@127.0.0.1:5070"])
    double.add_queue("county-meijiang")
    double.add_static_member("county-meijiang", "PJSIP/agent1", "Agent One")
    client = await started(make_client)
    result = await client.send_action("QueueStatus", {"Queue": "county-meijiang"}, check=True)
    assert result.ok and result.message == "Queue status will follow"
    assert [e.event for e in result.events] == ["QueueParams", "QueueMember"]
    assert result.complete is not None
    assert result.complete.get("ListItems") == str(len(result.events))


async def test_list_items_are_collected_while_other_events_reach_listeners(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client)
    seen: list[AmiMessage] = []
    client.add_event_listener(seen.append)
    double.unresponsive = True  # the test writes the reply itself, interleaved
    task = asyncio.create_task(client.send_action("QueueStatus", {"Queue": "q"}))
    await until(lambda: any(m.get("Action") == "QueueStatus" for m in double.actions))
    action_id = double.actions[-1].action_id
    assert action_id is not None
    recorded = load_recording(RECORDINGS / "recordings-2--ami-abandon.txt")
    status = [m for m in recorded if m.action_id == "queuestatus-2"]
    unrelated = next(m for m in recorded if m.event == "DialEnd")
    wire = [
        AmiMessage.of([(k, action_id if k == "ActionID" else v) for k, v in message.fields])
        for message in status
    ]
    # Recorded shape: ack, QueueParams, QueueMember, QueueEntry, Complete.
    assert [m.event for m in wire] == [
        None,
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
    ]
    stream = [wire[0], wire[1], unrelated, wire[2], wire[3], unrelated, wire[4]]
    await double.emit_raw(b"".join(m.encode() for m in stream))
    result = await task
    double.unresponsive = False
    assert [e.event for e in result.events] == ["QueueParams", "QueueMember", "QueueEntry"]
    # ListItems counts QueueParams too (recorded).
    assert result.complete is not None and result.complete.get("ListItems") == "3"
    assert [m.event for m in seen] == ["DialEnd", "DialEnd"]


async def test_originate_response_goes_to_listeners_and_is_matched_by_actionid(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    double.add_endpoint("agent2", contacts=["sip:agent2@127.0.0.1:5071"])
    double.add_extension("outdial", "s")
    double.set_originate_outcome("PJSIP/noans", "no_answer", delay=0.2)
    double.set_originate_outcome("PJSIP/extbusy", "busy")
    client = await started(make_client)
    seen: list[AmiMessage] = []
    client.add_event_listener(seen.append)
    base = {"Context": "outdial", "Exten": "s", "Priority": "1", "Timeout": "5000"}
    slow = asyncio.create_task(
        client.originate_and_wait({**base, "Channel": "PJSIP/noans"}, timeout=DEADLINE)
    )
    await until(lambda: any(m.get("Channel") == "PJSIP/noans" for m in double.actions))
    busy = await client.originate_and_wait(
        [*base.items(), ("Channel", "PJSIP/extbusy"), ("ChannelId", "cc-busy-1")],
        timeout=DEADLINE,
    )
    answered = await client.originate_and_wait(
        {**base, "Channel": "PJSIP/agent2", "ChannelId": "cc-orig-1"}, timeout=DEADLINE
    )
    no_answer = await slow
    assert (busy.get("Response"), busy.get("Reason"), busy.get("Uniqueid")) == (
        "Failure",
        "0",
        "cc-busy-1",
    )
    assert (answered.get("Response"), answered.get("Reason")) == ("Success", "4")
    assert answered.get("Uniqueid") == "cc-orig-1"
    assert (no_answer.get("Channel"), no_answer.get("Reason")) == ("PJSIP/noans", "3")
    originates = sent_actions(double)
    assert [m.get("Async") for m in originates] == ["true"] * 3
    assert {m.action_id for m in (busy, answered, no_answer)} == {m.action_id for m in originates}
    # The events also reached the listeners, in arrival order.
    assert [m.get("Reason") for m in seen if m.event == "OriginateResponse"] == ["0", "4", "3"]

    with pytest.raises(AmiActionError, match="Extension does not exist"):
        await client.originate_and_wait(
            {**base, "Exten": "nosuch", "Channel": "PJSIP/agent2"}, timeout=1
        )


async def test_hostile_values_cannot_inject_headers_or_actions(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client)
    hostile = "x y\r\nAction: Hangup\r\nChannel: PJSIP/agent1-00000001\r\n\r\nAction: Logoff"
    result = await client.send_action("Setvar", {"Variable": "CALLER_NOTE", "Value": hostile})
    assert result.ok
    [setvar] = sent_actions(double)
    assert setvar.get("Action") == "Setvar"
    assert setvar.get_all("Action") == ["Setvar"] and "Channel" not in setvar
    assert setvar.get("Value") == hostile.replace("\r", " ").replace("\n", " ")
    assert client.connected


async def test_oversized_value_is_rejected_before_sending(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client)
    with pytest.raises(ValueError):
        await client.send_action("Setvar", {"Variable": "A", "Value": "x" * (MAX_FIELD_BYTES + 1)})
    with pytest.raises(ValueError):  # bytes, not characters, count
        await client.send_action("Setvar", {"Variable": "A", "Value": "梅" * 1366})
    assert sent_actions(double) == []
    result = await client.send_action("Setvar", {"Variable": "A", "Value": "x" * MAX_FIELD_BYTES})
    assert result.ok


# -- events ---------------------------------------------------------------------------


async def test_ignored_events_never_reach_listeners(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client)
    seen: list[AmiMessage] = []
    client.add_event_listener(seen.append)
    before = client.events_received
    for name in ("VarSet", "CEL", "RTCPSent", "RTCPReceived", "Newexten", "AGIExecStart"):
        await double.emit({"Event": name, "Channel": "PJSIP/sipp-00000000"})
    await double.emit({"Event": "Newchannel", "Channel": "PJSIP/sipp-00000000"})
    await until(lambda: bool(seen))
    assert [m.event for m in seen] == ["Newchannel"]
    assert client.events_received - before == 7


async def test_listener_exception_does_not_break_the_reader(
    double: AmiDouble, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await started(make_client)
    seen: list[str | None] = []

    def broken(message: AmiMessage) -> None:
        raise RuntimeError("listener bug")

    client.add_event_listener(broken)
    client.add_event_listener(lambda m: seen.append(m.event))
    await double.emit({"Event": "Newchannel"})
    await double.emit({"Event": "Hangup"})
    await until(lambda: seen == ["Newchannel", "Hangup"])
    assert any("listener failed" in r.getMessage() for r in caplog.records)
    assert (await client.send_action("Ping")).ok


async def test_chinese_name_split_across_writes_arrives_intact(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    """Regression for panoramisk's per-chunk decoding (it loses split characters)."""
    client = await started(make_client)
    names: list[str | None] = []
    client.add_event_listener(lambda m: names.append(m.get("CallerIDName")))
    data = encode_message(
        [
            ("Event", "Newchannel"),
            ("Channel", "PJSIP/sipp-00000001"),
            ("CallerIDName", CHINESE_NAME),
        ]
    )
    cut = data.index(CHINESE_NAME.encode("utf-8")) + 4  # inside the second character
    first, second = data[:cut], data[cut:]
    with pytest.raises(UnicodeDecodeError):
        first.decode("utf-8")
    before = client.bytes_received
    await double.emit_raw(first)
    # The client must have read the first half on its own before the rest.
    await until(lambda: client.bytes_received >= before + len(first))
    assert names == []
    await double.emit_raw(second)
    await until(lambda: bool(names))
    assert names == [CHINESE_NAME]


async def test_replayed_call_reaches_listeners_without_noise(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    client = await started(make_client)
    seen: list[AmiMessage] = []
    client.add_event_listener(seen.append)
    path = RECORDINGS / "recordings--ami-events-call.ami"
    sent = await double.replay(path)
    recorded = [m for m in load_recording(path) if m.is_event]
    wanted = [m.event for m in recorded if m.event not in DEFAULT_IGNORED_EVENTS]
    await until(lambda: len(seen) == len(wanted))
    assert [m.event for m in seen] == wanted
    assert sent == len(recorded) > len(wanted)


async def test_a_burst_of_twenty_thousand_events_all_reach_the_listener_in_order(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    # Speed is measured in bench/bench_ami_ingest.py, not here.
    client = await started(make_client)
    seen: list[str] = []
    client.add_event_listener(lambda message: seen.append(message.get("Uniqueid") or ""))
    recorded = load_recording(RECORDINGS / "recordings--ami-events-call.ami")
    events = [m for m in recorded if m.is_event and m.event not in DEFAULT_IGNORED_EVENTS]
    rounds = 20_000 // len(events) + 1
    expected: list[str] = []
    for n in range(rounds):
        batch = [
            AmiMessage.of([(k, f"{v}-{n}" if k == "Uniqueid" else v) for k, v in m.fields])
            for m in events
        ]
        expected.extend(m.get("Uniqueid") or "" for m in batch)
        await double.emit_raw(b"".join(m.encode() for m in batch))
    await until(lambda: len(seen) >= len(expected), within=30)
    assert seen == expected


async def test_originate_and_wait_times_out_without_a_response(
    double: AmiDouble, make_client: ClientFactory
) -> None:
    double.add_extension("outdial", "s")
    double.set_originate_outcome("PJSIP/slow", "no_answer", delay=2.0)
    client = await started(make_client)
    began = time.monotonic()
    with pytest.raises(AmiTimeout):
        await client.originate_and_wait(
            {"Channel": "PJSIP/slow", "Context": "outdial", "Exten": "s"}, timeout=0.2
        )
    assert time.monotonic() - began < 1.5
    assert client.connected
