"""Notification delivery: outbox rows, dispatcher claims and leases, real SMTP and HTTP peers.

PostgreSQL is real (``database_url``); the SMTP relay is aiosmtpd on 127.0.0.1 and
the SMS gateway a local aiohttp server scripted to fail. Time moves forward by
passing explicit ``now`` values to ``run_once``, never by sleeping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import User
from smeline.config import Settings
from smeline.db import make_engine, make_sessionmaker, utcnow
from smeline.migrate import upgrade_sync
from smeline.notifications.dispatcher import Dispatcher, backoff
from smeline.notifications.models import Notification
from smeline.notifications.senders import (
    LogSender,
    SmsGatewaySender,
    SmtpSender,
    build_senders,
)
from smeline.notifications.services import Outbox

Sessions = async_sessionmaker[AsyncSession]

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Meizhou
LEASE = timedelta(seconds=60)
API_KEY = "test-gateway-key"


# -- database helpers -----------------------------------------------------------


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def seed_user(
    sessions: Sessions,
    username: str,
    *,
    phone: str | None = None,
    email_address: str | None = None,
) -> User:
    async with sessions() as db, db.begin():
        user = User(
            username=username,
            display_name=username,
            role="agent",
            phone=phone,
            email=email_address,
            password_hash="not-a-real-hash",
            must_change_password=False,
            active=True,
            created_at=T0,
        )
        db.add(user)
    return user


async def enqueue(
    sessions: Sessions,
    user: User,
    *,
    channels: list[str],
    key: str,
    number: str = "MZ20260302-0001",
    now: datetime = T0,
) -> int:
    async with sessions() as db, db.begin():
        return await Outbox(channels=channels).enqueue(
            db,
            recipient=user,
            template_id="ticket_assigned",
            params={"number": number, "subject": "咨询小微企业贷款贴息"},
            dedupe_key=key,
            now=now,
        )


async def all_rows(sessions: Sessions) -> list[Notification]:
    async with sessions() as db:
        return list((await db.scalars(select(Notification).order_by(Notification.id))).all())


def dispatcher(sessions: Sessions, senders: dict[str, Any], **kw: Any) -> Dispatcher:
    kw.setdefault("max_attempts", 5)
    kw.setdefault("lease", LEASE)
    return Dispatcher(sessionmaker=sessions, senders=senders, **kw)


# -- a scripted SMS gateway -------------------------------------------------------

Script = Callable[[dict[str, Any], int], Awaitable[tuple[int, dict[str, Any]]]]


async def always_ok(payload: dict[str, Any], nth: int) -> tuple[int, dict[str, Any]]:
    return 200, {"code": "OK"}


@dataclass
class FakeSmsGateway:
    """Speaks the generic adapter contract and records every request it answered."""

    url: str = ""
    script: Script = always_ok
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        nth = sum(1 for r in self.requests if r["payload"]["out_id"] == payload["out_id"])
        record: dict[str, Any] = {
            "payload": payload,
            "authorization": request.headers.get("Authorization"),
            "status": None,
        }
        self.requests.append(record)
        status, body = await self.script(payload, nth)
        record["status"] = status
        record["code"] = body.get("code")
        return web.json_response(body, status=status)

    def sender(self, **kw: Any) -> SmsGatewaySender:
        kw.setdefault("timeout", 10.0)
        return SmsGatewaySender(
            url=self.url,
            api_key=API_KEY,
            signature="梅州中小企业服务平台",
            template_codes={"ticket_assigned": "SMS_400100"},
            **kw,
        )

    def per_out_id(self) -> Counter[str]:
        return Counter(r["payload"]["out_id"] for r in self.requests)

    def acknowledged(self) -> Counter[str]:
        return Counter(
            r["payload"]["out_id"]
            for r in self.requests
            if r["status"] is not None and 200 <= r["status"] < 300 and r["code"] == "OK"
        )


@pytest.fixture
async def gateway(aiohttp_server: Any) -> FakeSmsGateway:
    gw = FakeSmsGateway()
    app = web.Application()
    app.router.add_post("/sms/send", gw.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    gw.url = str(server.make_url("/sms/send"))
    return gw


# -- a real SMTP server -----------------------------------------------------------


class Inbox:
    """aiosmtpd handler: refuses ``nobody@`` mailboxes, keeps everything else."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str | None, list[str]]] = []

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


# -- retries and back-off ---------------------------------------------------------


async def test_sms_gateway_down_twice_then_up_delivers_each_notification_exactly_once(
    sessions: Sessions, gateway: FakeSmsGateway
) -> None:
    async def unavailable_twice(payload: dict[str, Any], nth: int) -> tuple[int, dict[str, Any]]:
        if nth < 2:
            return 503, {"code": "SERVICE_UNAVAILABLE"}
        return 200, {"code": "OK", "biz_id": f"biz-{payload['out_id']}"}

    gateway.script = unavailable_twice
    users = [await seed_user(sessions, f"agent{i}", phone=f"1380000{i:04d}") for i in range(1, 4)]
    for i, user in enumerate(users, start=1):
        assert await enqueue(sessions, user, channels=["sms"], key=f"ticket:{i}:assigned") == 1
    d = dispatcher(sessions, {"sms": gateway.sender()})

    first = await d.run_once(now=T0)
    assert (first.sent, first.retried, first.failed) == (0, 3, 0)
    for row in await all_rows(sessions):
        assert row.status == "pending"
        assert row.attempts == 1
        assert row.next_attempt_at == T0 + timedelta(seconds=5)
        assert row.locked_until is None
        assert row.last_error is not None and "503" in row.last_error

    # Not due yet: no request reaches the gateway.
    early = await d.run_once(now=T0 + timedelta(seconds=4))
    assert early.claimed == 0
    assert len(gateway.requests) == 3

    second = await d.run_once(now=T0 + timedelta(seconds=5))
    assert (second.sent, second.retried) == (0, 3)
    for row in await all_rows(sessions):
        assert row.attempts == 2
        assert row.next_attempt_at == T0 + timedelta(seconds=5 + 10)

    third = await d.run_once(now=T0 + timedelta(seconds=15))
    assert (third.sent, third.retried, third.failed) == (3, 0, 0)
    rows = await all_rows(sessions)
    for row in rows:
        assert row.status == "sent"
        assert row.sent_at == T0 + timedelta(seconds=15)
        assert row.attempts == 3
        assert row.locked_until is None

    later = await d.run_once(now=T0 + timedelta(hours=1))
    assert later.claimed == 0

    out_ids = {f"smeline-{row.id}" for row in rows}
    assert gateway.per_out_id() == {out_id: 3 for out_id in out_ids}
    assert gateway.acknowledged() == {out_id: 1 for out_id in out_ids}
    sample = gateway.requests[-1]
    assert sample["authorization"] == f"Bearer {API_KEY}"
    assert sample["payload"]["sign"] == "梅州中小企业服务平台"
    assert sample["payload"]["template_code"] == "SMS_400100"
    assert sample["payload"]["params"] == {
        "number": "MZ20260302-0001",
        "subject": "咨询小微企业贷款贴息",
    }
    assert {r["payload"]["phone"] for r in gateway.requests} == {
        "13800000001",
        "13800000002",
        "13800000003",
    }


def test_backoff_doubles_from_five_seconds_and_stops_at_fifteen_minutes() -> None:
    assert [backoff(a).total_seconds() for a in range(1, 10)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        900,
    ]
    assert backoff(1000) == timedelta(minutes=15)


# -- claims and leases ------------------------------------------------------------


async def test_two_dispatchers_running_at_once_never_send_a_notification_twice(
    database_url: str, sessions: Sessions, gateway: FakeSmsGateway
) -> None:
    user = await seed_user(sessions, "agent-busy", phone="13900001111")
    for i in range(12):
        await enqueue(sessions, user, channels=["sms"], key=f"ticket:{i}:assigned")

    other_engine = make_engine(database_url)
    try:
        first = dispatcher(sessions, {"sms": gateway.sender()}, batch_size=4)
        second = dispatcher(
            make_sessionmaker(other_engine), {"sms": gateway.sender()}, batch_size=4
        )
        results = []
        for _ in range(10):
            a, b = await asyncio.gather(first.run_once(now=T0), second.run_once(now=T0))
            results.append((a, b))
            if a.claimed == 0 and b.claimed == 0:
                break
    finally:
        await other_engine.dispose()

    # The first round hands out two disjoint batches of four.
    a, b = results[0]
    assert a.sent == 4 and b.sent == 4
    assert sum(a.sent + b.sent for a, b in results) == 12
    rows = await all_rows(sessions)
    assert {row.status for row in rows} == {"sent"}
    assert gateway.per_out_id() == {f"smeline-{row.id}": 1 for row in rows}


async def test_expired_lease_is_reclaimed_and_the_stale_worker_cannot_overwrite_the_result(
    sessions: Sessions, gateway: FakeSmsGateway
) -> None:
    stale_arrived = asyncio.Event()
    release_stale = asyncio.Event()

    async def stall_first_request(payload: dict[str, Any], nth: int) -> tuple[int, dict[str, Any]]:
        if nth == 0:
            # The stale worker's request hangs past its lease, then fails.
            stale_arrived.set()
            await release_stale.wait()
            return 503, {"code": "SERVICE_UNAVAILABLE"}
        return 200, {"code": "OK"}

    gateway.script = stall_first_request
    user = await seed_user(sessions, "agent-lease", phone="13700002222")
    await enqueue(sessions, user, channels=["sms"], key="ticket:1:assigned")
    stale = dispatcher(sessions, {"sms": gateway.sender()})
    fresh = dispatcher(sessions, {"sms": gateway.sender()})

    stale_run = asyncio.create_task(stale.run_once(now=T0))
    try:
        await asyncio.wait_for(stale_arrived.wait(), timeout=10)
        [row] = await all_rows(sessions)
        assert row.locked_until == T0 + LEASE

        # Within the lease nobody else may take the row.
        assert (await fresh.run_once(now=T0 + timedelta(seconds=30))).claimed == 0

        taken_over = await fresh.run_once(now=T0 + LEASE + timedelta(seconds=1))
        assert taken_over.sent == 1
    finally:
        release_stale.set()
    stale_result = await asyncio.wait_for(stale_run, timeout=10)
    assert (stale_result.lost, stale_result.retried, stale_result.sent) == (1, 0, 0)

    [row] = await all_rows(sessions)
    assert row.status == "sent"
    assert row.sent_at == T0 + LEASE + timedelta(seconds=1)
    assert row.attempts == 1
    assert row.last_error is None
    assert row.locked_until is None
    # Both requests carried the same idempotency key, so the gateway can drop one.
    assert gateway.per_out_id() == {f"smeline-{row.id}": 2}
    assert gateway.acknowledged() == {f"smeline-{row.id}": 1}


# -- giving up --------------------------------------------------------------------


async def test_rejected_numbers_fail_at_once_and_transient_errors_fail_after_max_attempts(
    sessions: Sessions, gateway: FakeSmsGateway
) -> None:
    statuses = {
        "13800000400": 400,
        "13800000404": 404,
        "13800000408": 408,
        "13800000429": 429,
        "13800000500": 500,
    }

    async def by_phone(payload: dict[str, Any], nth: int) -> tuple[int, dict[str, Any]]:
        status = statuses[payload["phone"]]
        # Gateways echo the number back; it must not reach last_error unmasked.
        return status, {"code": f"E{status}", "message": f"rejected {payload['phone']}"}

    gateway.script = by_phone
    for phone in statuses:
        user = await seed_user(sessions, f"u{phone}", phone=phone)
        await enqueue(sessions, user, channels=["sms"], key=f"ticket:{phone}")
    mailer = await seed_user(sessions, "mail-only", email_address="agent@example.cn")
    await enqueue(sessions, mailer, channels=["smtp"], key="ticket:mail")
    d = dispatcher(sessions, {"sms": gateway.sender()}, max_attempts=2)

    first = await d.run_once(now=T0)
    assert (first.sent, first.retried, first.failed) == (0, 3, 3)
    rows = {row.address: row for row in await all_rows(sessions)}
    for phone in ("13800000400", "13800000404"):
        assert rows[phone].status == "failed"
        assert rows[phone].attempts == 1
        last_error = rows[phone].last_error or ""
        assert str(statuses[phone]) in last_error
        assert phone not in last_error and phone[:-4] + "****" in last_error
    for phone in ("13800000408", "13800000429", "13800000500"):
        assert rows[phone].status == "pending"
    assert rows["agent@example.cn"].status == "failed"
    assert rows["agent@example.cn"].last_error == "no sender for channel smtp"
    assert rows["agent@example.cn"].attempts == 0

    second = await d.run_once(now=T0 + timedelta(seconds=5))
    assert (second.sent, second.retried, second.failed) == (0, 0, 3)
    rows = {row.address: row for row in await all_rows(sessions)}
    for phone in ("13800000408", "13800000429", "13800000500"):
        assert rows[phone].status == "failed"
        assert rows[phone].attempts == 2
        assert str(statuses[phone]) in (rows[phone].last_error or "")
        assert rows[phone].locked_until is None

    assert (await d.run_once(now=T0 + timedelta(days=1))).claimed == 0
    assert len(gateway.requests) == 2 + 3 * 2


async def test_a_very_long_error_is_cut_to_fit_last_error(sessions: Sessions) -> None:
    class Unreachable:
        channel = "log"

        async def send(self, n: Notification) -> None:
            raise ConnectionError("对端无响应 " * 200)

    user = await seed_user(sessions, "agent-long")
    await enqueue(sessions, user, channels=["log"], key="ticket:long")
    result = await dispatcher(sessions, {"log": Unreachable()}).run_once(now=T0)
    assert result.retried == 1
    [row] = await all_rows(sessions)
    assert row.last_error is not None
    assert len(row.last_error) == 500
    assert row.last_error.startswith("ConnectionError: 对端无响应")


# -- SMTP ------------------------------------------------------------------------


async def test_smtp_delivers_chinese_subject_and_body_with_a_message_id_from_the_notification(
    sessions: Sessions, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    user = await seed_user(sessions, "agent-mail", email_address="zhang.san@example.cn")
    nobody = await seed_user(sessions, "agent-gone", email_address="nobody@example.cn")
    await enqueue(sessions, user, channels=["smtp"], key="ticket:1:assigned")
    await enqueue(sessions, nobody, channels=["smtp"], key="ticket:2:assigned")
    smtp = SmtpSender(
        host="127.0.0.1",
        port=port,
        sender_address="smeline@meizhou.example.cn",
        timeout=10,
    )

    result = await dispatcher(sessions, {"smtp": smtp}).run_once(now=T0)
    assert (result.sent, result.failed) == (1, 1)

    delivered, refused = await all_rows(sessions)
    assert delivered.status == "sent"
    assert refused.status == "failed"
    assert "550" in (refused.last_error or "")

    [message] = inbox.messages
    assert inbox.envelopes == [("smeline@meizhou.example.cn", ["zhang.san@example.cn"])]
    assert message["Subject"] == "工单 MZ20260302-0001 已分派给您"
    assert message["Message-ID"] == f"<smeline-notification-{delivered.id}@smeline>"
    assert message["To"] == "zhang.san@example.cn"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert body.strip() == "工单 MZ20260302-0001（咨询小微企业贷款贴息）已分派给您，请及时处理。"


async def test_smtp_relay_that_is_down_leaves_the_mail_pending_for_retry(
    sessions: Sessions,
) -> None:
    user = await seed_user(sessions, "agent-mail", email_address="li.si@example.cn")
    await enqueue(sessions, user, channels=["smtp"], key="ticket:1:assigned")
    smtp = SmtpSender(host="127.0.0.1", port=free_port(), sender_address="s@x.cn", timeout=5)
    result = await dispatcher(sessions, {"smtp": smtp}).run_once(now=T0)
    assert result.retried == 1
    [row] = await all_rows(sessions)
    assert row.status == "pending"
    assert row.next_attempt_at == T0 + timedelta(seconds=5)


# -- outbox and log sender ----------------------------------------------------------


async def test_the_same_dedupe_key_enqueued_twice_yields_one_row_per_channel(
    sessions: Sessions,
) -> None:
    user = await seed_user(
        sessions, "agent-dup", phone="13600003333", email_address="wang@example.cn"
    )
    channels = ["log", "smtp", "sms"]
    assert await enqueue(sessions, user, channels=channels, key="ticket:7:assigned") == 3
    assert await enqueue(sessions, user, channels=channels, key="ticket:7:assigned") == 0
    rows = await all_rows(sessions)
    assert sorted(row.channel for row in rows) == ["log", "sms", "smtp"]
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(Notification)) == 3


async def test_log_sender_never_writes_a_full_phone_number(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    # Some counties use the agent's mobile number as the username.
    user = await seed_user(sessions, "13800001234", phone="13800001234")
    await enqueue(sessions, user, channels=["log"], key="ticket:9:assigned")
    with caplog.at_level(logging.DEBUG, logger="smeline"):
        result = await dispatcher(sessions, {"log": LogSender()}).run_once(now=T0)
    assert result.sent == 1
    [row] = await all_rows(sessions)
    lines = [r for r in caplog.records if r.name == "smeline.notifications.senders"]
    assert len(lines) == 1
    line = lines[0].getMessage()
    assert str(row.id) in line and "ticket_assigned" in line and str(user.id) in line
    assert "1380000****" in line
    assert "13800001234" not in caplog.text


# -- configuration ----------------------------------------------------------------


def test_build_senders_refuses_sms_without_a_gateway_url() -> None:
    settings = Settings(notification_senders=["log", "sms"], sms_gateway_url=None)
    with pytest.raises(ValueError, match="SMELINE_SMS_GATEWAY_URL"):
        build_senders(settings)


def test_build_senders_refuses_smtp_without_a_host() -> None:
    settings = Settings(notification_senders=["smtp"], smtp_host=None)
    with pytest.raises(ValueError, match="SMELINE_SMTP_HOST"):
        build_senders(settings)


def test_build_senders_builds_each_enabled_channel() -> None:
    settings = Settings(
        notification_senders=["log", "smtp", "sms"],
        smtp_host="mail.example.cn",
        sms_gateway_url="http://127.0.0.1:9/sms",
        sms_gateway_key="k",
    )
    senders = build_senders(settings)
    assert set(senders) == {"log", "smtp", "sms"}
    assert isinstance(senders["smtp"], SmtpSender)
    assert isinstance(senders["sms"], SmsGatewaySender)
    assert all(sender.channel == channel for channel, sender in senders.items())
    assert set(build_senders(Settings(notification_senders=["log"]))) == {"log"}


# -- background loop --------------------------------------------------------------


class SignallingLogSender(LogSender):
    """Logs like LogSender and tells the test when it has been called."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def send(self, n: Notification) -> None:
        await super().send(n)
        self.called.set()


class CountingHandler(logging.Handler):
    """Sets ``reached`` once ``wanted`` records containing ``text`` were logged."""

    def __init__(self, text: str, wanted: int) -> None:
        super().__init__(logging.ERROR)
        self.text = text
        self.wanted = wanted
        self.seen = 0
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen += 1
            if self.seen >= self.wanted:
                self.reached.set()


async def test_background_loop_delivers_and_stops_cleanly(sessions: Sessions) -> None:
    user = await seed_user(sessions, "agent-loop")
    await enqueue(sessions, user, channels=["log"], key="ticket:loop", now=utcnow())
    sender = SignallingLogSender()
    d = dispatcher(sessions, {"log": sender}, poll_seconds=0.05)
    d.start()
    try:
        await asyncio.wait_for(sender.called.wait(), timeout=10)
    finally:
        # stop() lets the pass in progress record its outcome before returning.
        await d.stop()
    await d.stop()  # a second stop is harmless
    [row] = await all_rows(sessions)
    assert row.status == "sent"


async def test_background_loop_logs_a_failing_pass_and_keeps_going() -> None:
    # Nothing listens on this port: every pass fails to connect.
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    d = dispatcher(make_sessionmaker(engine), {"log": LogSender()}, poll_seconds=0.01)
    handler = CountingHandler("dispatch pass failed", wanted=2)
    dispatch_logger = logging.getLogger("smeline.notifications.dispatcher")
    dispatch_logger.addHandler(handler)
    try:
        d.start()
        await asyncio.wait_for(handler.reached.wait(), timeout=10)
        await d.stop()
    finally:
        dispatch_logger.removeHandler(handler)
        await engine.dispose()


# -- SQLite -----------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'smeline.db'}"
    upgrade_sync(url)
    return url


@pytest.mark.sqlite
async def test_run_once_retries_and_delivers_on_sqlite(
    sqlite_url: str, gateway: FakeSmsGateway
) -> None:
    async def unavailable_once(payload: dict[str, Any], nth: int) -> tuple[int, dict[str, Any]]:
        return (503, {"code": "BUSY"}) if nth == 0 else (200, {"code": "OK"})

    gateway.script = unavailable_once
    engine = make_engine(sqlite_url)
    other_engine = make_engine(sqlite_url)
    try:
        sessions = make_sessionmaker(engine)
        user = await seed_user(sessions, "agent-sqlite", phone="13500004444")
        for i in range(6):
            await enqueue(sessions, user, channels=["log", "sms"], key=f"ticket:{i}")
        senders = {"log": LogSender(), "sms": gateway.sender()}
        first = dispatcher(sessions, senders, batch_size=5)
        second = dispatcher(make_sessionmaker(other_engine), senders, batch_size=5)

        a, b = await asyncio.gather(first.run_once(now=T0), second.run_once(now=T0))
        assert a.claimed + b.claimed == 10
        assert (await first.run_once(now=T0)).claimed == 2
        rows = await all_rows(sessions)
        assert {r.status for r in rows if r.channel == "log"} == {"sent"}
        for row in (r for r in rows if r.channel == "sms"):
            assert row.status == "pending"
            assert row.attempts == 1
            assert row.next_attempt_at == T0 + timedelta(seconds=5)
            assert row.locked_until is None

        assert (await first.run_once(now=T0 + timedelta(seconds=4))).claimed == 0
        retry = await first.run_once(now=T0 + timedelta(seconds=5))
        assert retry.sent == 5
        assert (await first.run_once(now=T0 + timedelta(seconds=5))).sent == 1
        rows = await all_rows(sessions)
        assert {r.status for r in rows} == {"sent"}
        assert set(gateway.per_out_id().values()) == {2}
        assert set(gateway.acknowledged().values()) == {1}
    finally:
        await engine.dispose()
        await other_engine.dispose()
