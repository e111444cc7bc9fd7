"""Notifications as users see them through the API."""

from __future__ import annotations

from smeline import keys
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
    assert page["items"][0]["status"] == "pending"

    # The service's own dispatcher (log sender by default) delivers it.
    dispatcher = api.client.server.app[keys.DISPATCHER]  # type: ignore[union-attr]
    result = await dispatcher.run_once()
    assert result.sent == 1
    status, page = await api.call("GET", "/api/notifications?status=sent", agent)
    assert [n["template_id"] for n in page["items"]] == ["ticket_assigned"]


async def test_notification_list_rejects_bad_queries(api: Api) -> None:
    huge = "9" * 25
    for query in (
        "limit=0",
        "limit=x",
        "status=lost",
        "cursor=-1",
        "color=red",
        f"cursor={huge}",
        f"recipient_user_id={huge}",
    ):
        status, body = await api.call("GET", f"/api/notifications?{query}", api.admin)
        assert status == 422, query
        assert body["error"]["id"] == "validation_failed"


def test_long_dedupe_keys_keep_one_row_per_channel() -> None:
    from smeline.notifications.services import _row_key

    long_key = "t1:" + "x" * 200
    keys_ = {_row_key(long_key, c) for c in ("log", "smtp", "sms")}
    assert len(keys_) == 3
    assert all(len(k) <= 128 for k in keys_)
    assert _row_key(long_key, "log") == _row_key(long_key, "log")


async def test_a_county_admin_reads_only_their_own_notifications(api: Api) -> None:
    county_admin = await api.user("county_admin", county_code="441481")
    status, body = await api.call("GET", "/api/notifications?everyone=true", county_admin)
    assert status == 403 and body["error"]["id"] == "permission_denied"
    status, _ = await api.call("GET", "/api/notifications", county_admin)
    assert status == 200
