"""End-to-end: the service on PostgreSQL opens, lists and moves a work order."""

from __future__ import annotations

from tests.conftest import Api, ticket_payload


async def test_admin_opens_a_work_order_and_sees_it_listed(api: Api) -> None:
    status, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201, ticket
    assert ticket["number"].startswith("MZ")
    assert len(ticket["short_ref"]) == 8
    assert ticket["status"] == "new"
    assert ticket["window_code"] == "xingning"
    status, page = await api.call("GET", "/api/tickets", api.admin)
    assert status == 200
    assert [t["id"] for t in page["items"]] == [ticket["id"]]


async def test_a_creation_date_range_pages_newest_first_without_losing_or_repeating(
    api: Api,
) -> None:
    numbers = []
    for _ in range(7):
        status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
        assert status == 201
        numbers.append(t["number"])
    seen: list[str] = []
    cursor = None
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    while True:
        query = f"created_from={today - timedelta(days=1)}&created_to={today}&limit=3"
        if cursor:
            query += f"&cursor={cursor}"
        status, page = await api.call("GET", f"/api/tickets?{query}", api.admin)
        assert status == 200, page
        seen += [t["number"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A date-order cursor is not an id cursor: using it without the range is refused.
        status, body = await api.call("GET", f"/api/tickets?cursor={cursor}", api.admin)
        assert status == 422
    assert seen == list(reversed(numbers))


async def test_an_sla_state_filter_pages_newest_first_without_losing_or_repeating(
    api: Api,
) -> None:
    numbers = []
    for _ in range(5):
        status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
        assert status == 201
        numbers.append(t["number"])
    seen: list[str] = []
    cursor = None
    while True:
        query = "sla_state=ok&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await api.call("GET", f"/api/tickets?{query}", api.admin)
        assert status == 200, page
        seen += [t["number"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(numbers))
    status, page = await api.call("GET", "/api/tickets?sla_state=breached", api.admin)
    assert status == 200 and page["items"] == []
