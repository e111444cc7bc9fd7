"""The screen pop: one person whatever the number's format; their enterprise,
previous calls, chats and work orders (open first); scoping and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from smeline import keys
from smeline.portal_bridge.models import Enterprise, Member
from smeline.telephony.models import CallRecord
from tests.conftest import Api, ticket_payload

PHONE_KEY = "13923001234"  # a 梅州 mobile segment
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def _seed(api: Api) -> None:
    async with api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        enterprise = Enterprise(
            name="兴宁市某某电子有限公司",
            credit_code="91441481MA4UXXXX1X",
            county_code="441481",
            phone_key="075341234567",
        )
        db.add(enterprise)
        await db.flush()
        db.add(
            Member(
                name="李明", phone_key=PHONE_KEY, enterprise_id=enterprise.id, county_code="441481"
            )
        )
        for i in range(12):
            db.add(
                CallRecord(
                    linkedid=f"1764554400.{i}",
                    direction="inbound",
                    caller_number=f"+86{PHONE_KEY}",
                    caller_key=PHONE_KEY,
                    started_at=T0 + timedelta(minutes=i),
                    outcome="answered" if i % 2 else "abandoned",
                    windows=["xingning"],
                    queues=["xingning"],
                    answered_window="xingning" if i % 2 else None,
                    wait_seconds=10,
                )
            )
        db.add(
            CallRecord(
                linkedid="other.1",
                direction="inbound",
                caller_number="02088888888",
                caller_key="02088888888",
                started_at=T0,
                outcome="answered",
                windows=["city"],
                queues=["city"],
            )
        )


def _url(phone: str) -> str:
    return f"/api/screen-pop?phone={quote(phone)}"


async def test_every_format_of_the_number_pops_the_same_person(api: Api) -> None:
    await _seed(api)
    agent = await api.user("agent", window_code="xingning")
    status, closed = await api.call("POST", "/api/tickets", agent, json=ticket_payload(
        contact_phone=PHONE_KEY, subject="旧工单"))  # fmt: skip
    assert status == 201, closed
    status, first = await api.call("POST", "/api/tickets", agent, json=ticket_payload(
        contact_phone="+8613923001234", subject="新工单"))  # fmt: skip
    assert status == 201, first
    seen = []
    for raw in ("+86 139 2300 1234", "008613923001234", "013923001234", "１３９２３００１２３４"):
        status, body = await api.call("GET", _url(raw), agent)
        assert status == 200, body
        seen.append(body)
    assert all(b == seen[0] for b in seen)
    pop = seen[0]
    assert pop["phone"] == PHONE_KEY and pop["kind"] == "mobile" and pop["is_meizhou"]
    assert pop["member"]["name"] == "李明" and pop["county_code"] == "441481"
    assert pop["county_source"] == "member"
    assert pop["enterprise"]["credit_code"] == "91441481MA4UXXXX1X"
    assert len(pop["calls"]) == 10  # the last ten, newest first
    assert pop["calls"][0]["linkedid"] == "1764554400.11"
    assert all(c["linkedid"] != "other.1" for c in pop["calls"])
    assert {t["subject"] for t in pop["tickets"]} == {"旧工单", "新工单"}


async def test_open_work_orders_come_first(api: Api) -> None:
    await _seed(api)
    agent = await api.user("agent", window_code="xingning")
    status, old = await api.call(
        "POST", "/api/tickets", agent, json=ticket_payload(contact_phone=PHONE_KEY, subject="老")
    )
    assert status == 201
    status, new = await api.call(
        "POST", "/api/tickets", agent, json=ticket_payload(contact_phone=PHONE_KEY, subject="新")
    )
    assert status == 201
    async with api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        from smeline.ticketing.models import Ticket

        newest = await db.get(Ticket, new["id"])
        assert newest is not None
        newest.status = "closed"
    status, pop = await api.call("GET", _url(PHONE_KEY), agent)
    assert status == 200
    assert [t["subject"] for t in pop["tickets"]][:2] == ["老", "新"]


async def test_a_call_pops_by_its_linkedid_and_bad_input_is_refused(api: Api) -> None:
    await _seed(api)
    agent = await api.user("agent", window_code="xingning")
    status, pop = await api.call("GET", "/api/screen-pop?linkedid=1764554400.3", agent)
    assert status == 200 and pop["member"]["name"] == "李明"
    status, body = await api.call("GET", "/api/screen-pop?linkedid=nope", agent)
    assert status == 404 and body["error"]["id"] == "call_not_found"
    for bad in (
        "/api/screen-pop",
        "/api/screen-pop?phone=1&linkedid=2",
        "/api/screen-pop?phone=" + "1" * 41,
        "/api/screen-pop?phone=1&extra=2",
    ):
        status, body = await api.call("GET", bad, agent)
        assert status == 422, (bad, body)
    # garbage and anonymous are nobody, not an error
    for raw in ("anonymous", "'; DROP TABLE members; --", ""):
        status, pop = await api.call("GET", _url(raw), agent)
        assert status == 200 and pop["member"] is None and pop["calls"] == []
    expert = await api.user("expert")
    status, _ = await api.call("GET", _url(PHONE_KEY), expert)
    assert status == 403
