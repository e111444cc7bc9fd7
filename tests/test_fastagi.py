"""FastAGI server (smeline.agi_scripts.fastagi) against the recorded Asterisk double.

The double (tests/asterisk_double/agi_channel.py) is first checked against the
recordings line by line; the server is then driven through it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from smeline.agi_scripts.fastagi import (
    MAX_COMMAND_BYTES,
    AgiChannelDead,
    AgiCommandError,
    AgiCommandFailed,
    AgiDeadlineExceeded,
    AgiProtocolError,
    AgiRequest,
    AgiResult,
    AgiSession,
    AgiUsageError,
    FastAgiServer,
    GetDataReply,
    agi_quote,
)
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.agi_channel import (
    USAGE_GET_VARIABLE,
    AgiChannelDouble,
    AgiOutcome,
    load_recorded_session,
    parse_agi_args,
)
from tests.polling import until

SESSION = RECORDINGS / "recordings--agi-session.txt"
HANGUP_MID = RECORDINGS / "recordings--agi-hangup-midcommand.txt"
DEAD_H = RECORDINGS / "recordings--agi-dead-h-extension.txt"
IVR = RECORDINGS / "recordings-2--agi-ivr.txt"
LOST_DIGIT = RECORDINGS / "recordings-2--agi-ivr-rfc4733-lostdigit.txt"
HOST = "127.0.0.1"

T = TypeVar("T")
MakeServer = Callable[..., Awaitable[FastAgiServer]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    servers: list[FastAgiServer] = []

    async def make(**kwargs: Any) -> FastAgiServer:
        server = FastAgiServer(port=0, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def channel(server: FastAgiServer, **kwargs: Any) -> AgiChannelDouble:
    return AgiChannelDouble(HOST, server.port, **kwargs)


# --------------------------------------------------------------------------- the double


async def drive_recorded(
    path: Any, session_no: int, **double_kwargs: Any
) -> tuple[list[bytes], list[str], AgiOutcome]:
    """A bare FastAGI script sending the recorded commands; raw lines back."""
    recorded = load_recorded_session(path, session_no)
    env_lines: list[bytes] = []
    replies: list[str] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := await reader.readuntil(b"\n")) != b"\n":
            env_lines.append(line)
        for exchange in recorded.exchanges:
            writer.write(exchange.command.encode() + b"\n")
            while True:
                reply = (await reader.readuntil(b"\n")).decode()
                assert reply.endswith("\n") and not reply.endswith("\r\n")
                replies.append(reply[:-1])
                if re.match(r"\d{3} ", reply):
                    break
        writer.close()

    listener = await asyncio.start_server(script, HOST, 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        double = AgiChannelDouble.from_recording(path, session_no, HOST, port, **double_kwargs)
        outcome = await double.run()
    finally:
        listener.close()
        await listener.wait_closed()
    return env_lines, replies, outcome


# (file, session, double options, AGISTATUS seen in the matching AMI recording)
RECORDED_SCENARIOS: list[tuple[str, int, dict[str, Any], str | None]] = [
    ("recordings--agi-session.txt", 1, {}, "FAILURE"),
    ("recordings--agi-hangup-midcommand.txt", 1, {"hangup_on": "WAIT FOR DIGIT"}, "HANGUP"),
    ("recordings--agi-all-sessions.txt", 2, {"hangup_on": "WAIT FOR DIGIT"}, None),
    ("recordings--agi-dead-h-extension.txt", 1, {"variables": {"HANGUPCAUSE": "16"}}, "SUCCESS"),
    ("recordings-2--agi-ivr.txt", 1, {"dtmf": ["5", "3", "#", ""]}, "HANGUP"),
    (
        "recordings-2--agi-ivr-rfc4733.txt",
        1,
        {"dtmf": ["5", "3", "#", ""], "interrupt_endpos": 9280},
        "HANGUP",
    ),
    (
        "recordings-2--agi-ivr-rfc4733-lostdigit.txt",
        1,
        {"dtmf": ["5", "#"], "interrupt_endpos": 9280},
        "SUCCESS",
    ),
    (
        "recordings-2--agi-survey.txt",
        1,
        {"dtmf": ["1"], "variables": {"QUEUESTATUS": "CONTINUE", "MEMBERNAME": "Agent Two"}},
        "HANGUP",
    ),
    (
        "recordings-2--agi-vmnote.txt",
        1,
        {
            "variables": {
                "RECORDED_FILE": "/tmp/cc-rec/msg-cctest-1795344793.23",
                "RECORD_STATUS": "SILENCE",
            }
        },
        "SUCCESS",
    ),
]


@pytest.mark.parametrize(
    ("name", "session_no", "options", "agistatus"),
    RECORDED_SCENARIOS,
    ids=[f"{s[0].split('--')[-1][:-4]}-{s[1]}" for s in RECORDED_SCENARIOS],
)
async def test_double_replies_like_the_recording(
    name: str, session_no: int, options: dict[str, Any], agistatus: str | None
) -> None:
    path = RECORDINGS / name
    recorded = load_recorded_session(path, session_no)
    env_lines, replies, outcome = await drive_recorded(path, session_no, **options)

    # Environment: same fields, same order, same bytes; only the port of
    # agi_request differs (the recording used 4573).
    sent = [line.decode() for line in env_lines]
    expected = [f"{k}: {v}\n" for k, v in recorded.env]
    assert len(sent) == len(expected)
    for got, want in zip(sent, expected, strict=True):
        if want.startswith("agi_request: "):
            assert re.sub(r":\d+/", ":4573/", got) == want
        else:
            assert got == want

    # Replies line by line. The unprompted HANGUP that Asterisk wrote after
    # the very last reply (agi-survey) comes too late for any command here.
    want_replies = recorded.reply_lines
    if want_replies[-1:] == ["HANGUP"] and replies[-1:] != ["HANGUP"]:
        want_replies = want_replies[:-1]
    assert replies == want_replies
    assert outcome.unsupported == []
    assert outcome.commands == [e.command for e in recorded.exchanges]
    if agistatus is not None:
        assert outcome.agistatus == agistatus


def test_recorded_reply_shapes_parse() -> None:
    cases = {
        "200 result=0": ("0", None, None),
        "200 result=1 (cctest-1795343657.0)": ("1", "cctest-1795343657.0", None),
        "200 result=1 (Agent Two)": ("1", "Agent Two", None),
        "200 result=-1 endpos=0": ("-1", None, 0),
        "200 result=53 endpos=8000": ("53", None, 8000),
        "200 result= (timeout)": ("", "timeout", None),
        "200 result=": ("", None, None),
        "200 result=1 (a) endpos=5)": ("1", "a) endpos=5", None),
        "200 result=0 (timeout) endpos=1200": ("0", "timeout", 1200),
    }
    for line, (result, data, endpos) in cases.items():
        reply = AgiResult.parse(line)
        assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)
    assert AgiResult.parse("200 result=53 endpos=8000").int_result == 53
    assert AgiResult.parse("200 result=").int_result is None
    assert AgiResult.parse("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiProtocolError):
        AgiResult.parse("hello")


# --------------------------------------------------------------------------- routing


async def test_environment_parsed_and_routed_with_query_string(make_server: MakeServer) -> None:
    server = await make_server()
    seen: list[AgiRequest] = []

    async def route(session: AgiSession) -> None:
        seen.append(session.request)
        await session.set_variable("TENANT", session.request.query["tenant"])

    server.add_route("route", route)
    outcome = await AgiChannelDouble.from_recording(SESSION, 1, HOST, server.port).run()

    [request] = seen
    assert request.env["agi_network_script"] == "route?tenant=demo"
    assert request.script == "route"
    assert request.query == {"tenant": "demo"}
    assert request.args == ["arg-one", "arg two"]
    assert (request.channel, request.uniqueid) == ("PJSIP/sipp-00000000", "cctest-1795343657.0")
    assert (request.callerid, request.calleridname, request.dnid) == ("sipp", "sipp", "100")
    assert (request.context, request.extension, request.language) == ("inbound", "100", "en")
    assert request.env["agi_accountcode"] == ""
    assert outcome.commands == ['SET VARIABLE TENANT "demo"']
    assert outcome.assigned == {"TENANT": "demo"}
    assert outcome.agistatus == "SUCCESS"
    with pytest.raises(ValueError):
        server.add_route("route?tenant=demo", route)
    with pytest.raises(ValueError):
        server.add_route("/route", route)  # same route: the leading "/" is not part of it


def test_request_without_network_script_uses_agi_request() -> None:
    request = AgiRequest.from_env(
        {"agi_request": "agi://10.0.0.1:4573/ivr/menu?tenant=demo&x=1&x=2", "agi_arg_1": ""}
    )
    assert request.script == "ivr/menu"
    assert request.query == {"tenant": "demo", "x": "1"}
    assert request.args == [""]


async def test_plain_function_route_sets_its_variables(make_server: MakeServer) -> None:
    # panoramisk bug (c): plain functions could not be routes.
    server = await make_server()
    threads: list[int] = []

    @server.route("plain")
    def plain(request: AgiRequest) -> dict[str, str]:
        threads.append(threading.get_ident())
        return {"COUNTY": "meijiang", "TENANT": request.query["tenant"]}

    outcome = await channel(server, script="plain?tenant=demo").run()
    assert outcome.assigned == {"COUNTY": "meijiang", "TENANT": "demo"}
    assert outcome.agistatus == "SUCCESS"
    assert threads and threads[0] != threading.get_ident()  # off the event loop
    assert server.errors == 0


# --------------------------------------------------------------------------- bug (a)


async def _loop_lag_probe(window: float, interval: float = 0.02) -> float:
    """Largest lateness of a timer tick over ``window`` seconds."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    start = time.monotonic()
    state = {"expected": start + interval, "lag": 0.0}

    def tick() -> None:
        now = time.monotonic()
        state["lag"] = max(state["lag"], now - state["expected"])
        if now - start >= window:
            done.set_result(state["lag"])
            return
        state["expected"] = now + interval
        loop.call_later(interval, tick)

    loop.call_later(interval, tick)
    return await done


def test_connect_and_close_without_environment_does_not_spin() -> None:
    # panoramisk bug (a): a probe that connects and closes made the server
    # re-read EOF for ever at 100 % CPU. The server runs on its own loop in a
    # thread so that a frozen loop fails this test instead of hanging it.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    called: list[AgiRequest] = []
    server = FastAgiServer(port=0)

    def route(request: AgiRequest) -> None:
        called.append(request)

    server.add_route("route", route)

    async def start() -> None:
        await server.start()

    on_loop(start(), 5)
    try:
        for _ in range(5):
            with socket.create_connection((HOST, server.port)):
                pass
        deadline = time.monotonic() + 3
        while not (server.sessions_total == 5 and server.sessions_active == 0):
            assert time.monotonic() < deadline, server.stats()
            time.sleep(0.005)
        cpu_before = time.process_time()
        lag = on_loop(_loop_lag_probe(0.5), timeout=3.0)
        cpu = time.process_time() - cpu_before
        assert lag < 0.1
        assert cpu < 0.2, f"{cpu:.2f} s of CPU over a 0.5 s idle window"
        assert called == []
        assert server.sessions_rejected == 5
    finally:
        on_loop(server.stop(), 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_half_environment_then_stall_is_closed_after_env_timeout(
    make_server: MakeServer,
) -> None:
    server = await make_server(env_timeout=0.3)
    called: list[AgiSession] = []

    async def route(session: AgiSession) -> None:
        called.append(session)

    server.add_route("route", route)
    reader, writer = await asyncio.open_connection(HOST, server.port)
    started = time.monotonic()
    writer.write(b"agi_network: yes\nagi_network_script: route\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 3.0)
    elapsed = time.monotonic() - started
    writer.close()
    assert data == b""
    assert 0.25 <= elapsed < 1.5
    assert called == []
    await until(lambda: server.sessions_active == 0)
    assert server.sessions_rejected == 1


# --------------------------------------------------------------------------- deadline


FALLBACK = {"ROUTE": "county-meijiang", "ROUTE_REASON": "fallback"}


async def test_sleeping_handler_gets_fallback_and_close_within_a_second(
    make_server: MakeServer,
) -> None:
    server = await make_server()

    async def slow(session: AgiSession) -> None:
        await session.noop("thinking")
        await asyncio.sleep(10)  # the handler's own slowness, not the test waiting

    server.add_route("slow", slow, fallback=FALLBACK)
    started = time.monotonic()
    outcome = await channel(server, script="slow").run()
    elapsed = time.monotonic() - started

    assert server.think_deadline <= elapsed < 1.0
    assert outcome.assigned == FALLBACK
    assert outcome.commands == [
        'NOOP "thinking"',
        'SET VARIABLE ROUTE "county-meijiang"',
        'SET VARIABLE ROUTE_REASON "fallback"',
    ]
    assert outcome.agistatus == "SUCCESS"
    assert server.deadline_fallbacks == 1


async def test_stuck_plain_function_is_abandoned(make_server: MakeServer) -> None:
    server = await make_server()
    release = threading.Event()

    def stuck(request: AgiRequest) -> dict[str, str]:
        release.wait(10)
        return {"ROUTE": "too-late"}

    server.add_route("stuck", stuck, fallback=FALLBACK)
    try:
        started = time.monotonic()
        outcome = await channel(server, script="stuck").run()
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
    assert outcome.assigned == FALLBACK
    assert server.deadline_fallbacks == 1


async def test_handler_swallowing_cancellation_cannot_hold_the_caller(
    make_server: MakeServer,
) -> None:
    server = await make_server()
    late: list[BaseException] = []

    async def stubborn(session: AgiSession) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        try:
            await session.noop("after the deadline")
        except AgiDeadlineExceeded as exc:
            late.append(exc)

    server.add_route("stubborn", stubborn, fallback=FALLBACK)
    outcome = await channel(server, script="stubborn").run()
    assert outcome.duration < 1.0
    assert outcome.assigned == FALLBACK
    await until(lambda: len(late) == 1)
    assert "NOOP" not in " ".join(outcome.commands)


async def test_loop_blocking_step_still_counts_as_thinking(make_server: MakeServer) -> None:
    server = await make_server()

    async def blocking(session: AgiSession) -> None:
        time.sleep(0.4)  # noqa: ASYNC251 - the bug under test: blocks the loop
        await session.set_variable("ROUTE", "late")

    server.add_route("blocking", blocking, fallback=FALLBACK)
    outcome = await channel(server, script="blocking").run()
    assert outcome.assigned == FALLBACK
    assert server.deadline_fallbacks == 1


async def test_step_just_over_the_deadline_falls_back(make_server: MakeServer) -> None:
    server = await make_server(think_deadline=0.3)

    async def slowish(session: AgiSession) -> None:
        await asyncio.sleep(0.5)  # one step of 0.5 s > 0.3 s
        await session.set_variable("ROUTE", "late")

    server.add_route("slowish", slowish, fallback=FALLBACK)
    outcome = await channel(server, script="slowish").run()
    assert outcome.assigned == FALLBACK
    assert outcome.duration < 0.5
    assert server.deadline_fallbacks == 1


async def test_deadline_ignores_time_asterisk_takes(make_server: MakeServer) -> None:
    server = await make_server(think_deadline=0.3)

    async def ivr(session: AgiSession) -> None:
        reply = await session.get_data("vm-enter-num-to-call", 5000, 1)
        await session.set_variable("IVR_CHOICE", reply.digits)

    server.add_route("ivr", ivr, fallback=FALLBACK)
    # The caller thinks for 1 s before pressing 3.
    double = channel(server, script="ivr", dtmf=["3"], reply_delays={"GET DATA": 1.0})
    outcome = await double.run()
    assert outcome.duration >= 1.0
    assert outcome.assigned == {"IVR_CHOICE": "3"}
    assert server.deadline_fallbacks == 0


async def test_deadline_is_per_step(make_server: MakeServer) -> None:
    server = await make_server(think_deadline=0.3)

    async def steps(session: AgiSession) -> None:
        for n in range(4):  # 4 x 0.15 s of work: 0.6 s in all, 0.15 s per step
            await asyncio.sleep(0.15)
            await session.set_variable(f"STEP{n}", "done")

    server.add_route("steps", steps, fallback=FALLBACK)
    outcome = await channel(server, script="steps").run()
    assert outcome.assigned == {f"STEP{n}": "done" for n in range(4)}
    assert server.deadline_fallbacks == 0


# --------------------------------------------------------------------------- failures


async def test_handler_exception_applies_fallback_and_masks_logs(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server()

    async def broken(session: AgiSession) -> None:
        await session.noop("routing")
        raise RuntimeError("no county for 13800001234")

    def broken_plain(request: AgiRequest) -> dict[str, str]:
        raise KeyError("13800001234")

    server.add_route("broken", broken, fallback=FALLBACK)
    server.add_route("broken-plain", broken_plain, fallback={"ROUTE": "operator"})
    with caplog.at_level(logging.DEBUG, logger="smeline.agi_scripts.fastagi"):
        outcome = await channel(server, script="broken").run()
        outcome_plain = await channel(server, script="broken-plain").run()
    assert outcome.assigned == FALLBACK
    assert outcome.agistatus == "SUCCESS"
    assert outcome_plain.assigned == {"ROUTE": "operator"}
    assert server.errors == 2
    assert "13800001234" not in caplog.text
    assert "1380000****" in caplog.text


async def test_async_fallback_and_default_fallback(make_server: MakeServer) -> None:
    server = await make_server(default_fallback={"ROUTE": "operator"})

    async def fallback(session: AgiSession) -> None:
        await session.set_variable("ROUTE", f"fallback-{session.request.extension}")

    async def broken(session: AgiSession) -> None:
        raise RuntimeError("boom")

    server.add_route("broken", broken, fallback=fallback)
    server.add_route("nofallback", broken)
    assert (await channel(server, script="broken").run()).assigned == {"ROUTE": "fallback-100"}
    assert (await channel(server, script="nofallback").run()).assigned == {"ROUTE": "operator"}
    unknown = await channel(server, script="nosuch?tenant=demo").run()
    assert unknown.assigned == {"ROUTE": "operator"}
    assert unknown.agistatus == "SUCCESS"


async def test_hangup_line_mid_command_then_channel_dead(make_server: MakeServer) -> None:
    server = await make_server()
    events: list[str] = []

    async def slow(session: AgiSession) -> None:
        await session.noop("waiting for digit, caller will hang up")
        try:
            await session.wait_for_digit(15000)
        except AgiChannelDead as exc:
            events.append(f"wait: {exc.reply.raw if exc.reply else ''}")
        events.append(f"hung_up={session.hung_up}")
        events.append(f"uid={await session.get_variable('UNIQUEID')} hung_up={session.hung_up}")
        await session.noop("after hangup")
        try:
            await session.answer()
        except AgiChannelDead as exc:
            events.append(f"answer: {exc.reply.raw if exc.reply else ''}")
        await session.stream_file("beep")  # 511 again: ends the handler

    server.add_route("slow", slow, fallback=FALLBACK)
    double = AgiChannelDouble.from_recording(
        HANGUP_MID, 1, HOST, server.port, hangup_on="WAIT FOR DIGIT"
    )
    outcome = await double.run()

    dead = "511 Command Not Permitted on a dead channel or intercept routine"
    assert events == [
        "wait: 200 result=-1",
        "hung_up=False",  # the HANGUP line comes only with the next reply
        "uid=cctest-1795343725.3 hung_up=True",
        f"answer: {dead}",
    ]
    assert outcome.replies == load_recorded_session(HANGUP_MID, 1).reply_lines
    assert outcome.agistatus == "HANGUP"
    assert outcome.assigned == {}  # nothing to route on a dead channel
    assert server.errors == 0


async def test_h_extension_is_dead_from_the_start(make_server: MakeServer) -> None:
    server = await make_server()
    events: list[str] = []

    async def dead(session: AgiSession) -> None:
        events.append(f"cause={await session.get_variable('HANGUPCAUSE')}")
        try:
            await session.answer()
        except AgiChannelDead:
            events.append(f"dead={session.dead} hung_up={session.hung_up}")
            raise

    server.add_route("dead", dead, fallback=FALLBACK)
    double = AgiChannelDouble.from_recording(
        DEAD_H, 1, HOST, server.port, variables={"HANGUPCAUSE": "16"}
    )
    outcome = await double.run()
    assert events == ["cause=16", "dead=True hung_up=False"]
    assert outcome.assigned == {}
    assert outcome.agistatus == "SUCCESS"


async def test_usage_block_is_consumed_and_unknown_command_raises(
    make_server: MakeServer,
) -> None:
    server = await make_server()
    events: list[object] = []

    async def route(session: AgiSession) -> None:
        try:
            await session.command("GET VARIABLE")
        except AgiUsageError as exc:
            events.append(exc.usage)
        events.append(await session.get_variable("UNIQUEID"))
        try:
            await session.command("THIS IS NOT A COMMAND")
        except AgiCommandError as exc:
            events.append(exc.reply.raw if exc.reply else None)
        events.append(await session.get_variable("NO_SUCH_VAR"))

    server.add_route("route", route)
    outcome = await channel(server).run()
    assert events == [
        USAGE_GET_VARIABLE[1:-1],
        "cctest-1795343657.0",
        "510 Invalid or unknown command",
        None,
    ]
    assert outcome.agistatus == "SUCCESS"


async def test_recorded_session_through_typed_helpers(make_server: MakeServer) -> None:
    server = await make_server()
    results: list[object] = []

    async def route(session: AgiSession) -> None:
        await session.noop("routing start")
        results.append(await session.get_variable("UNIQUEID"))
        results.append(await session.get_variable("NO_SUCH_VAR"))
        results.append(await session.get_full_variable("${CALLERID(num)}@${CHANNEL}"))
        await session.verbose("fastagi routing caller", 1)
        results.append(await session.channel_status())
        await session.command("DATABASE PUT cc lastcounty meijiang")
        results.append((await session.command("DATABASE GET cc lastcounty")).data)
        try:
            await session.stream_file("no-such-sound-file")
        except AgiCommandFailed as exc:
            results.append(exc.reply.raw if exc.reply else None)
        await session.set_variable("COUNTY", "meijiang")
        await session.set_variable("ROUTE_NOTE", "hello world")
        results.append(await session.get_variable("COUNTY"))

    server.add_route("route", route)
    outcome = await AgiChannelDouble.from_recording(SESSION, 1, HOST, server.port).run()
    assert results == [
        "cctest-1795343657.0",
        None,
        "sipp@PJSIP/sipp-00000000",
        6,
        "meijiang",
        "200 result=-1 endpos=0",
        "meijiang",
    ]
    assert outcome.assigned == {"COUNTY": "meijiang", "ROUTE_NOTE": "hello world"}
    assert outcome.agistatus == "FAILURE"  # recorded: the failed STREAM FILE


async def test_ivr_digits_through_typed_helpers(make_server: MakeServer) -> None:
    server = await make_server()
    results: list[object] = []

    async def ivr(session: AgiSession) -> None:
        results.append(await session.stream_file("vm-intro", "0123456789*#"))
        results.append(await session.get_data("vm-enter-num-to-call", 5000, 1))
        results.append(await session.wait_for_digit(4000))
        results.append(await session.get_data("beep", 1500, 2))
        results.append(await session.get_data("beep", 1500, 2))  # ended by '#'
        await session.hangup()

    server.add_route("ivr", ivr)
    outcome = await AgiChannelDouble.from_recording(
        IVR, 1, HOST, server.port, dtmf=["5", "3", "#", "", "#"]
    ).run()
    assert results == [
        "5",
        GetDataReply("3", timed_out=False),
        "#",
        GetDataReply("", timed_out=True),
        GetDataReply("", timed_out=False),
    ]
    assert outcome.agistatus == "HANGUP"


async def test_reply_timeout_closes_the_session(make_server: MakeServer) -> None:
    server = await make_server(reply_timeout=0.3)

    async def forever(session: AgiSession) -> None:
        await session.wait_for_digit(-1)  # the double never answers this

    server.add_route("forever", forever, fallback=FALLBACK)
    outcome = await channel(server, script="forever").run()
    assert outcome.duration < 1.5
    assert outcome.assigned == {}  # the reply stream is out of step: nothing more is sent


# --------------------------------------------------------------------------- hostile input


HOSTILE_NAME = '张三 "boss" \\ O\'Brien\r\nNOOP injected\n"; HANGUP \\'


def test_quote_round_trips_through_asterisk_argument_parser() -> None:
    for value in ["", "a b", '"', "\\", '\\"', "张三", "x\ty", HOSTILE_NAME]:
        argv = parse_agi_args(f"SET VARIABLE X {agi_quote(value)}")
        expected = value.replace("\r", " ").replace("\n", " ")
        assert argv == ["SET", "VARIABLE", "X", expected]
    assert agi_quote("a\x00b") == '"ab"'
    long = agi_quote("\\" * 5000)
    assert len(long.encode()) <= 1024 and long.endswith('\\\\"')


async def test_hostile_caller_name_arrives_as_one_value(make_server: MakeServer) -> None:
    server = await make_server()
    names: list[str] = []

    async def route(session: AgiSession) -> None:
        names.append(session.request.calleridname)
        await session.set_variable("CALLER_NAME", session.request.calleridname + HOSTILE_NAME)
        await session.set_variable("LONG", "长" * 2000)

    server.add_route("route", route)
    env_name = '张三 "boss" \\ O\'Brien'
    outcome = await channel(server, env_overrides={"agi_calleridname": env_name}).run()
    assert names == [env_name]
    assert len(outcome.commands) == 2
    assert outcome.unsupported == []
    assert outcome.assigned["CALLER_NAME"] == (env_name + HOSTILE_NAME).replace("\r", " ").replace(
        "\n", " "
    )
    assert len(outcome.commands[1].encode()) < MAX_COMMAND_BYTES
    assert set(outcome.assigned["LONG"]) == {"长"}


async def test_command_and_name_validation(make_server: MakeServer) -> None:
    server = await make_server()
    errors: list[str] = []

    async def route(session: AgiSession) -> None:
        for call in (
            lambda: session.command("NOOP a\nHANGUP"),
            lambda: session.command("NOOP " + "x" * MAX_COMMAND_BYTES),
            lambda: session.set_variable("BAD NAME", "x"),
            lambda: session.set_variable("A\nB", "x"),
            lambda: session.stream_file('beep" HANGUP'),
            lambda: session.get_data("beep", -5, 1),
        ):
            try:
                await call()
            except ValueError:
                errors.append("rejected")
        await session.set_variable("CALLERID(name)", "ok")

    server.add_route("route", route)
    outcome = await channel(server).run()
    assert errors == ["rejected"] * 6
    assert outcome.commands == ['SET VARIABLE CALLERID(name) "ok"']


async def _raw_client(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(payload)
        try:
            await asyncio.wait_for(writer.drain(), 3.0)
            return await asyncio.wait_for(reader.read(), 3.0)
        except ConnectionError:
            return b""
    finally:
        writer.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"agi_network: yes\nagi_network_script: " + b"x" * (1 << 20) + b"\n\n",
        bytes(range(256)) * 4 + b"\n\n",
        b"agi_network: yes\n\x00\xff\xfe garbage\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"agi_network: yes\n\n",
    ],
    ids=["1MB-line", "binary", "garbage-after-env-line", "http", "no-script"],
)
async def test_hostile_environment_is_closed_quietly(
    make_server: MakeServer, payload: bytes
) -> None:
    server = await make_server()
    called: list[AgiSession] = []

    async def route(session: AgiSession) -> None:
        called.append(session)

    server.add_route("route", route)
    assert await _raw_client(server.port, payload) == b""  # nothing written back
    await until(lambda: server.sessions_active == 0 and server.sessions_rejected == 1)
    assert called == []
    assert server.errors == 0
    # Still serving.
    assert (await channel(server).run()).agistatus == "SUCCESS"
    assert len(called) == 1


async def test_two_hundred_concurrent_sessions(make_server: MakeServer) -> None:
    server = await make_server()

    async def route(session: AgiSession) -> None:
        uid = await session.get_variable("UNIQUEID")
        await session.set_variable("ROUTE", f"q-{uid}")

    server.add_route("route", route)
    doubles = [
        channel(
            server,
            env_overrides={"agi_uniqueid": f"cctest-{n}", "agi_channel": f"PJSIP/sipp-{n:08x}"},
        )
        for n in range(200)
    ]
    outcomes = await asyncio.gather(*(d.run() for d in doubles))
    assert [o.assigned for o in outcomes] == [{"ROUTE": f"q-cctest-{n}"} for n in range(200)]
    assert server.sessions_total == 200
    assert (server.errors, server.deadline_fallbacks) == (0, 0)
    await until(lambda: server.sessions_active == 0)


async def test_over_capacity_and_stop(make_server: MakeServer) -> None:
    server = await make_server(max_sessions=1)
    started = asyncio.Event()

    async def route(session: AgiSession) -> None:
        started.set()
        await session.wait_for_digit(-1)  # Asterisk never answers: held open

    server.add_route("route", route)
    held = asyncio.create_task(channel(server).run())
    await asyncio.wait_for(started.wait(), 3.0)
    refused = await channel(server).run()
    assert refused.commands == []
    assert server.sessions_rejected == 1

    await until(lambda: server.sessions_active == 1)
    port = server.port
    await server.stop()
    outcome = await asyncio.wait_for(held, 3.0)
    assert outcome.commands == ["WAIT FOR DIGIT -1"]
    assert server.sessions_active == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)


async def test_connection_refused_is_failure_for_asterisk() -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    outcome = await AgiChannelDouble(HOST, port).run()
    assert (outcome.connected, outcome.agistatus) == (False, "FAILURE")
