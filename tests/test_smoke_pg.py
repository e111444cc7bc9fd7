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
