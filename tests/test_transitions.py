"""The work-order state machine over HTTP: every action from every status, for every role.

The expectations are the table below, written out by hand; the state machine in
``smeline.ticketing.state_machine`` has to agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from smeline import keys
from smeline.db import utcnow
from tests.conftest import Actor, Api, ticket_payload

ROLES = ("admin", "county_admin", "supervisor", "agent", "expert", "agency", "editor", "analyst")
STATUSES = (
    "new",
    "assigned",
    "in_progress",
    "waiting_customer",
    "resolved",
    "closed",
    "archived",
    "reopened",
)
DESK = frozenset({"admin", "county_admin", "supervisor", "agent"})
HANDLERS = DESK | {"expert", "agency"}
OPEN = frozenset({"new", "assigned", "in_progress", "waiting_customer", "reopened"})


@dataclass(frozen=True)
class Move:
    sources: frozenset[str]
    target: str
    roles: frozenset[str]


MOVES: dict[str, Move] = {
    "assign": Move(OPEN, "assigned", DESK),
    "start": Move(frozenset({"new", "assigned", "reopened"}), "in_progress", HANDLERS),
    "wait_customer": Move(frozenset({"in_progress"}), "waiting_customer", HANDLERS),
    "resume": Move(frozenset({"waiting_customer"}), "in_progress", HANDLERS),
    "resolve": Move(
        frozenset({"assigned", "in_progress", "waiting_customer", "reopened"}), "resolved", HANDLERS
    ),
    "close": Move(frozenset({"resolved"}), "closed", DESK),
    "reopen": Move(frozenset({"resolved", "closed"}), "reopened", DESK),
    "archive": Move(frozenset({"closed"}), "archived", frozenset({"admin"})),
    "transfer": Move(OPEN, "assigned", DESK),
    # Handing back what was transferred: the receiver, or someone above the desk.
    "return": Move(
        frozenset({"assigned", "in_progress", "waiting_customer"}),
        "assigned",
        frozenset({"admin", "supervisor", "expert", "agency"}),
    ),
}
# Roles without tickets.work are stopped before the state machine is consulted.
NO_WORK = frozenset({"editor", "analyst"})

PLACEMENT: dict[str, dict[str, str]] = {
    "county_admin": {"county_code": "441481"},
    "agent": {"window_code": "xingning"},
}
NOTE = "状态机测试"


@dataclass
class Cast:
    actor: Actor
    assignee: Actor  # a 兴宁 agent, what "assign" hands the work order to
    handler: Actor  # who the walk transfers the work order to (the actor if expert/agency)
    transfer_to: Actor  # what "transfer" hands it on to


async def cast_for(api: Api, role: str) -> Cast:
    actor = await api.user(role, **PLACEMENT.get(role, {}))
    assignee = await api.user("agent", window_code="xingning")
    handler = actor if role in ("expert", "agency") else await api.user("expert")
    transfer_to = await api.user("agency")
    return Cast(actor=actor, assignee=assignee, handler=handler, transfer_to=transfer_to)


async def act(api: Api, actor: Actor | None, ticket_id: int, action: str, **extra: Any) -> Any:
    status, body = await api.call(
        "POST", f"/api/tickets/{ticket_id}/actions", actor, json={"action": action, **extra}
    )
    assert status == 200, (action, body)
    return body


async def walk_to(api: Api, status: str, handler: Actor) -> int:
    """A fresh 兴宁 work order in ``status``; from "assigned" on it was transferred to handler."""
    code, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert code == 201, ticket
    tid = int(ticket["id"])
    if status == "new":
        return tid
    steps = {
        "assigned": [],
        "in_progress": ["start"],
        "waiting_customer": ["start", "wait_customer"],
        "resolved": ["start", "resolve"],
        "closed": ["start", "resolve", "close"],
        "archived": ["start", "resolve", "close", "archive"],
        "reopened": ["start", "resolve", "reopen"],
    }[status]
    await act(api, api.admin, tid, "transfer", to_user_id=handler.id)
    for step in steps:
        extra = {"resolution": "已答复企业"} if step == "resolve" else {}
        await act(api, api.admin, tid, step, **extra)
    _, body = await api.call("GET", f"/api/tickets/{tid}", api.admin)
    assert body["status"] == status
    return tid


def payload_for(action: str, cast: Cast) -> dict[str, Any]:
    payload: dict[str, Any] = {"action": action, "note": NOTE}
    if action == "assign":
        payload["assignee_id"] = cast.assignee.id
    elif action == "transfer":
        payload["to_user_id"] = cast.transfer_to.id
    elif action == "resolve":
        payload["resolution"] = "已为企业办理贴息申请"
    return payload


async def snapshot(api: Api, ticket_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The work order and its history as the admin sees them, minus the ticking clock."""
    status, ticket = await api.call("GET", f"/api/tickets/{ticket_id}", api.admin)
    assert status == 200
    ticket["sla"]["resolution"].pop("elapsed_business_minutes")
    status, history = await api.call("GET", f"/api/tickets/{ticket_id}/history", api.admin)
    assert status == 200
    return ticket, history["items"]


def allowed_from(status: str, role: str) -> list[str]:
    return sorted(a for a, m in MOVES.items() if status in m.sources and role in m.roles)


def expected_outcome(role: str, status: str, action: str) -> tuple[int, str | None]:
    move = MOVES[action]
    if role in NO_WORK:
        return 403, "permission_denied"
    if role not in move.roles:
        return 403, "transition_forbidden"
    if role in ("expert", "agency") and status == "new":
        return 404, "ticket_not_found"  # nothing was handed to them yet
    if status not in move.sources:
        return 409, "invalid_transition"
    return 200, None


def _recent(at: str, since: datetime) -> bool:
    moment = datetime.fromisoformat(at)
    return since - timedelta(seconds=1) <= moment <= utcnow() + timedelta(seconds=1)


@pytest.mark.parametrize("role", ROLES)
async def test_every_action_from_every_status_follows_the_table(api: Api, role: str) -> None:
    cast = await cast_for(api, role)
    problems: list[str] = []
    for status in STATUSES:
        probe = await walk_to(api, status, cast.handler)
        for action in MOVES:
            code, error_id = expected_outcome(role, status, action)
            tid = probe if code != 200 else await walk_to(api, status, cast.handler)
            before_ticket, before_history = await snapshot(api, tid)
            started = utcnow()
            got, body = await api.call(
                "POST", f"/api/tickets/{tid}/actions", cast.actor, json=payload_for(action, cast)
            )
            where = f"{role} {action} from {status}"
            if got != code:
                problems.append(f"{where}: expected {code}, got {got} {body}")
                continue
            after_ticket, after_history = await snapshot(api, tid)
            if code != 200:
                assert body["error"]["id"] == error_id, (where, body)
                if code == 409:
                    assert body["error"]["details"]["allowed"] == allowed_from(status, role), where
                    assert body["error"]["details"]["status"] == status, where
                assert after_ticket == before_ticket, f"{where}: refused, yet the ticket changed"
                assert after_history == before_history, f"{where}: refused, yet history grew"
                continue
            target = MOVES[action].target
            assert body["status"] == after_ticket["status"] == target, where
            # Appended, never rewritten.
            assert after_history[: len(before_history)] == before_history, where
            added = after_history[len(before_history) :]
            assert added, f"{where}: no history written"
            assert {row["actor_id"] for row in added} == {cast.actor.id}, where
            assert all(_recent(row["at"], started) for row in added), where
            assert NOTE in {row["note"] for row in added}, f"{where}: note not recorded"
            changes = [r for r in added if r["field"] == "status"]
            if status != target:
                assert [(r["from_value"], r["to_value"]) for r in changes] == [(status, target)]
            else:
                assert changes == [], where
    assert not problems, "\n".join(problems)


# --- who may act on a transferred work order --------------------------------------------


@pytest.mark.parametrize("role", ["expert", "agency"])
async def test_expert_and_agency_act_only_while_they_hold_the_work_order(
    api: Api, role: str
) -> None:
    receiver = await api.user(role)
    agent = await api.user("agent", window_code="xingning")
    tid = await walk_to(api, "in_progress", receiver)
    await act(api, receiver, tid, "wait_customer", note="等待企业补充材料")
    await act(api, api.admin, tid, "assign", assignee_id=agent.id)
    before = await snapshot(api, tid)
    # Still visible (it was handed to them once), but no longer theirs to work on.
    assert (await api.call("GET", f"/api/tickets/{tid}", receiver))[0] == 200
    for payload in (
        {"action": "start"},
        {"action": "resolve", "resolution": "不该成功"},
        {"action": "return"},
    ):
        status, body = await api.call("POST", f"/api/tickets/{tid}/actions", receiver, json=payload)
        assert status in (403, 409), (payload, body)
        if status == 403:
            assert body["error"]["id"] in ("not_assignee", "transition_forbidden"), body
    status, body = await api.call(
        "POST", f"/api/tickets/{tid}/comments", receiver, json={"kind": "note", "body": "x"}
    )
    assert status == 403 and body["error"]["id"] == "not_assignee"
    assert await snapshot(api, tid) == before


@pytest.mark.parametrize("role", ["expert", "agency"])
async def test_return_hands_the_work_order_back_to_who_transferred_it(api: Api, role: str) -> None:
    receiver = await api.user(role)
    county_admin = await api.user("county_admin", county_code="441481")
    code, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert code == 201, ticket
    tid = ticket["id"]
    moved = await act(api, county_admin, tid, "transfer", to_user_id=receiver.id, note="请专家答复")
    assert moved["assignee_id"] == receiver.id
    assert moved["handoff"]["to_user_id"] == receiver.id
    await act(api, receiver, tid, "start")

    back = await act(api, receiver, tid, "return", note="不属于本机构受理范围")
    assert back["status"] == "assigned"
    assert back["assignee_id"] == county_admin.id
    assert back["handoff"] is None
    _, history = await api.call("GET", f"/api/tickets/{tid}/history", api.admin)
    last = [(r["action"], r["field"], r["from_value"], r["to_value"]) for r in history["items"]][
        -3:
    ]
    assert last == [
        ("handoff_completed", "handoff", None, "returned"),
        ("assigned", "assignee_id", str(receiver.id), str(county_admin.id)),
        ("status_changed", "status", "in_progress", "assigned"),
    ]
    # Handed back means no longer theirs.
    status, body = await api.call(
        "POST", f"/api/tickets/{tid}/actions", receiver, json={"action": "start"}
    )
    assert status == 403 and body["error"]["id"] == "not_assignee"
    status, body = await api.call(
        "POST", f"/api/tickets/{tid}/actions", receiver, json={"action": "return"}
    )
    assert status == 409 and body["error"]["id"] == "no_open_handoff"


async def test_only_the_receiver_may_return_a_transfer(api: Api) -> None:
    receiver = await api.user("expert")
    other = await api.user("expert")
    tid = await walk_to(api, "assigned", receiver)
    # The other expert had an earlier handoff, so the work order is visible to them.
    await act(api, api.admin, tid, "transfer", to_user_id=other.id)
    await act(api, api.admin, tid, "transfer", to_user_id=receiver.id)
    before = await snapshot(api, tid)
    status, body = await api.call(
        "POST", f"/api/tickets/{tid}/actions", other, json={"action": "return"}
    )
    assert status == 403 and body["error"]["id"] == "not_assignee"
    assert await snapshot(api, tid) == before


# --- the history is append-only ---------------------------------------------------------


async def test_history_cannot_be_rewritten_even_by_the_database_superuser(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    tid = await walk_to(api, "resolved", await api.user("expert"))
    await act(api, agent, tid, "close")
    url = api.client.server.app[keys.SETTINGS].database_url
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        before = await conn.fetch("SELECT * FROM ticket_history ORDER BY id")
        assert len(before) >= 6
        first, last = before[0]["id"], before[-1]["id"]
        for sql, args in (
            ("UPDATE ticket_history SET note = 'rewritten'", ()),
            ("UPDATE ticket_history SET to_value = 'new' WHERE id = $1", (first,)),
            ("DELETE FROM ticket_history", ()),
            ("DELETE FROM ticket_history WHERE id = $1", (last,)),
            ("TRUNCATE ticket_history CASCADE", ()),
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(sql, *args)
        assert await conn.fetch("SELECT * FROM ticket_history ORDER BY id") == before
    finally:
        await conn.close()


async def test_every_change_appends_who_when_what_and_from_to(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    started = utcnow()
    code, ticket = await api.call("POST", "/api/tickets", agent, json=ticket_payload())
    assert code == 201, ticket
    tid = ticket["id"]
    await act(api, agent, tid, "start", note="开始处理")
    status, _ = await api.call(
        "PATCH", f"/api/tickets/{tid}", agent, json={"priority": "high", "note": "企业催办"}
    )
    assert status == 200
    await act(api, agent, tid, "resolve", resolution="已办结", note="电话告知")
    _, history = await api.call("GET", f"/api/tickets/{tid}/history", agent)
    rows = history["items"]
    assert [(r["action"], r["field"], r["from_value"], r["to_value"], r["note"]) for r in rows] == [
        ("created", None, None, "new", None),
        ("status_changed", "status", "new", "in_progress", "开始处理"),
        ("updated", "priority", "normal", "high", "企业催办"),
        ("status_changed", "status", "in_progress", "resolved", "电话告知"),
    ]
    assert {r["actor_id"] for r in rows} == {agent.id}
    assert all(_recent(r["at"], started) for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


# --- transfers keep the work order's own deadline ---------------------------------------


async def test_transfer_creates_a_handoff_deadline_and_leaves_the_resolution_due_alone(
    api: Api,
) -> None:
    expert = await api.user("expert")
    agency = await api.user("agency")
    code, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert code == 201, ticket
    tid = ticket["id"]
    resolution_due = ticket["sla"]["resolution"]["due_at"]
    assert resolution_due is not None

    moved = await act(api, api.admin, tid, "transfer", to_user_id=expert.id, note="请专家会诊")
    handoff = moved["handoff"]
    _, policies = await api.call("GET", "/api/sla/policies", api.admin)
    normal = next(
        p for p in policies["items"] if p["category_code"] is None and p["priority"] == "normal"
    )
    assert handoff["to_user_id"] == expert.id
    assert api.admin is not None and handoff["from_user_id"] == api.admin.id
    assert handoff["target_minutes"] == normal["handoff_min"]
    assert handoff["due_at"] != resolution_due
    assert datetime.fromisoformat(handoff["due_at"]) > datetime.fromisoformat(moved["updated_at"])
    assert moved["sla"]["resolution"]["due_at"] == resolution_due

    # Handing it on closes the first handoff and opens another with a deadline of its own.
    moved_on = await act(api, api.admin, tid, "transfer", to_user_id=agency.id)
    assert moved_on["handoff"]["id"] != handoff["id"]
    assert moved_on["handoff"]["to_user_id"] == agency.id
    assert moved_on["sla"]["resolution"]["due_at"] == resolution_due
    url = api.client.server.app[keys.SETTINGS].database_url
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT to_user_id, outcome, completed_at FROM ticket_handoffs "
            "WHERE ticket_id = $1 ORDER BY id",
            tid,
        )
    finally:
        await conn.close()
    assert [(r["to_user_id"], r["outcome"]) for r in rows] == [
        (expert.id, "reassigned"),
        (agency.id, None),
    ]
    assert rows[0]["completed_at"] is not None and rows[1]["completed_at"] is None

    back = await act(api, agency, tid, "return")
    assert back["sla"]["resolution"]["due_at"] == resolution_due


async def test_transfer_to_whoever_already_holds_it_is_a_conflict(api: Api) -> None:
    expert = await api.user("expert")
    tid = await walk_to(api, "assigned", expert)
    before = await snapshot(api, tid)
    status, body = await api.call(
        "POST",
        f"/api/tickets/{tid}/actions",
        api.admin,
        json={"action": "transfer", "to_user_id": expert.id},
    )
    assert status == 409 and body["error"]["id"] == "already_assigned"
    assert await snapshot(api, tid) == before


@pytest.mark.parametrize("target_role", ["editor", "analyst", "admin"])
async def test_transfer_only_to_roles_that_can_receive_work(api: Api, target_role: str) -> None:
    target = await api.user(target_role)
    code, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert code == 201, ticket
    before = await snapshot(api, ticket["id"])
    status, body = await api.call(
        "POST",
        f"/api/tickets/{ticket['id']}/actions",
        api.admin,
        json={"action": "transfer", "to_user_id": target.id},
    )
    assert status == 422, body
    assert body["error"]["details"][0]["field"] == "to_user_id"
    assert await snapshot(api, ticket["id"]) == before


async def test_an_agent_assigns_only_within_their_window(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    meijiang_agent = await api.user("agent", window_code="meijiang")
    code, ticket = await api.call("POST", "/api/tickets", agent, json=ticket_payload())
    assert code == 201, ticket
    before = await snapshot(api, ticket["id"])
    status, body = await api.call(
        "POST",
        f"/api/tickets/{ticket['id']}/actions",
        agent,
        json={"action": "assign", "assignee_id": meijiang_agent.id},
    )
    assert status == 403 and body["error"]["id"] == "transition_forbidden"
    assert await snapshot(api, ticket["id"]) == before
    moved = await act(api, agent, ticket["id"], "assign", assignee_id=agent.id)
    assert moved["assignee_id"] == agent.id
