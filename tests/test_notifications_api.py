"""Notifications as users see them through the API."""

from __future__ import annotations

from tests.conftest import Api, ticket_payload


async def test_assignee_reads_the_assignment_notification_and_only_their_own(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    other = await api.user("agent", window_code="meijiang")
    supervisor = await api.user("supervisor")
    status, t = await api.call(
        "POST", "/api/tickets", api.admin, json=ticket_payload(assignee_id=agent.id)
    )
    assert status == 201 and t["status"] == "assigned"

    status, page = await api.call("GET", "/api/notifications", agent)
    assert status == 200
    assert [(n["template_id"], n["channel"]) for n in page["items"]] == [("ticket_assigned", "log")]
    assert t["number"] in page["items"][0]["subject"]

    status, page = await api.call("GET", "/api/notifications", other)
    assert status == 200 and page["items"] == []
    status, body = await api.call("GET", f"/api/notifications?recipient_user_id={agent.id}", other)
    assert status == 403 and body["error"]["id"] == "permission_denied"
    status, body = await api.call("GET", "/api/notifications?everyone=true", other)
    assert status == 403

    status, page = await api.call("GET", "/api/notifications?everyone=true", supervisor)
    assert status == 200 and len(page["items"]) == 1


async def test_notification_list_rejects_bad_queries(api: Api) -> None:
    for query in ("limit=0", "limit=x", "status=lost", "cursor=-1", "color=red"):
        status, body = await api.call("GET", f"/api/notifications?{query}", api.admin)
        assert status == 422, query
        assert body["error"]["id"] == "validation_failed"
