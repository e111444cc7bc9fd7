"""The issue's web-chat flow with a visitor, two agents and a supervisor, each in
a browser context of their own.

What runs now drives the web-chat API from inside each person's page (the
browser's own network stack: cookies, CSRF header, the visitor's
X-Forwarded-For, and a real network drop with ``context.set_offline``): the
console's chat panel, the portal widget, the wrap-up and the wallboard are
being built. ``test_full_chat_flow_in_the_browser`` is the same story through
those screens, skipped until they exist (the reason names each missing piece).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import People, Person, Reply, Server, Shots, Staff, until

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
).expect

# 兴宁's example range of the shipped IP table (RFC 5737 documentation
# network, docs/webchat.md): 198.51.100.64/27.
XINGNING_IP = "198.51.100.70"

PRECHAT_FORM = {
    "name": "李先生",
    "company": "兴宁市某某电子有限公司",
    "category_code": "financing",
}


def agent_at_console(people: People, staff: Staff, name: str, actor: Any) -> Person:
    """An agent with the console open and an /agent socket: a web-chat seat."""
    person = people.new(name)
    person.log_in(actor)
    person.goto("/console/")
    expect(person.page.locator("[data-test=top-bar-who]")).to_contain_text(actor.username)
    person.join_agent_namespace()
    until(
        lambda: staff.call("GET", "/api/chats/seat", actor)[1]["online"],
        what=f"{name} online for chat",
    )
    return person


def seqs(reply: Reply) -> list[tuple[str, str]]:
    return [(m["sender_kind"], m["client_id"]) for m in reply.body["items"]]


def show(person: Person, lines: list[str]) -> None:
    """Write what the person's browser received into their page, as text, for
    the screenshot (until the widget shows it itself)."""
    person.page.evaluate(
        "(lines) => { document.body.style.fontSize = '20px';"
        " document.body.innerText = lines.join('\\n') }",
        lines,
    )


def test_xingning_visitor_reaches_only_the_xingning_agent_and_a_network_drop_loses_nothing(
    server: Server, staff: Staff, people: People, shots: Shots
) -> None:
    staff.open_today()
    xingning = staff.user("agent", window_code="xingning")
    meijiang = staff.user("agent", window_code="meijiang")
    supervisor = staff.user("supervisor")
    xn = agent_at_console(people, staff, "agent-xingning", xingning)
    mj = agent_at_console(people, staff, "agent-meijiang", meijiang)
    shots.take(xn.page, "xingning-agent-console")

    # The visitor comes through the proxy from an address in 兴宁's range.
    visitor = people.new("visitor", headers={"X-Forwarded-For": XINGNING_IP})
    visitor.goto("/api/health")
    started = visitor.fetch("POST", "/api/chat/start", PRECHAT_FORM)
    assert started.status == 201, started.body
    chat = started.body
    assert (chat["routing_reason"], chat["window_code"]) == ("ip", "xingning")
    assert chat["state"] == "assigned" and not chat["overflowed"]
    token = {"X-Chat-Token": chat["token"]}
    chat_id = chat["chat_id"]

    # Only the 兴宁 agent has it; for the 梅江 agent it does not exist.
    mine = xn.fetch("GET", "/api/chats?mine=true")
    assert mine.status == 200 and [c["id"] for c in mine.body["items"]] == [chat_id]
    assert mine.body["items"][0]["agent_id"] == xingning.id
    theirs = mj.fetch("GET", "/api/chats")
    assert theirs.status == 200 and theirs.body["items"] == []
    hidden = mj.fetch("GET", f"/api/chats/{chat_id}")
    assert hidden.status == 404 and hidden.body["error"]["id"] == "chat_not_found"

    # Visitor writes, agent replies, visitor sees it.
    said = visitor.fetch(
        "POST",
        f"/api/chat/{chat_id}/messages",
        {"client_id": "v-1", "body": "你好，想咨询贷款贴息"},
        token,
    )
    assert said.status == 201, said.body
    heard = xn.fetch("GET", f"/api/chats/{chat_id}/messages")
    assert ("visitor", "v-1") in seqs(heard)
    replied = xn.fetch(
        "POST", f"/api/chats/{chat_id}/messages", {"client_id": "a-1", "body": "您好，请讲"}
    )
    assert replied.status == 201, replied.body
    seen = visitor.fetch("GET", f"/api/chat/{chat_id}/messages", headers=token)
    assert seqs(seen)[-2:] == [("visitor", "v-1"), ("agent", "a-1")]
    visitor_last = seen.body["last_seq"]
    show(visitor, [f"{m['sender_kind']}: {m['body']}" for m in seen.body["items"]])
    shots.take(visitor.page, "visitor-sees-the-reply")

    # The visitor's network drops while both sides write.
    with visitor.offline():
        lost = visitor.fetch(
            "POST",
            f"/api/chat/{chat_id}/messages",
            {"client_id": "v-2", "body": "申请材料有哪些？"},
            token,
        )
        assert lost.status == 0, lost.body  # never reached the server
        during = xn.fetch(
            "POST", f"/api/chats/{chat_id}/messages", {"client_id": "a-2", "body": "还在吗？"}
        )
        assert during.status == 201, during.body
    # Back online: the unacknowledged line is sent again with its client id;
    # a second resend (its answer lost, say) is not a second line.
    resent = visitor.fetch(
        "POST",
        f"/api/chat/{chat_id}/messages",
        {"client_id": "v-2", "body": "申请材料有哪些？"},
        token,
    )
    assert resent.status == 201, resent.body
    again = visitor.fetch(
        "POST",
        f"/api/chat/{chat_id}/messages",
        {"client_id": "v-2", "body": "申请材料有哪些？"},
        token,
    )
    assert again.status == 200 and again.body["seq"] == resent.body["seq"]
    caught_up = visitor.fetch(
        "GET", f"/api/chat/{chat_id}/messages?since={visitor_last}", headers=token
    )
    assert seqs(caught_up) == [("agent", "a-2"), ("visitor", "v-2")]

    # Then the agent's network drops.
    agent_seen = heard.body["last_seq"]
    with xn.offline():
        lost = xn.fetch(
            "POST",
            f"/api/chats/{chat_id}/messages",
            {"client_id": "a-3", "body": "营业执照和申请表。"},
        )
        assert lost.status == 0, lost.body
    resent = xn.fetch(
        "POST", f"/api/chats/{chat_id}/messages", {"client_id": "a-3", "body": "营业执照和申请表。"}
    )
    assert resent.status == 201, resent.body
    agent_view = xn.fetch("GET", f"/api/chats/{chat_id}/messages?since={agent_seen}")
    assert seqs(agent_view) == [
        ("agent", "a-1"),
        ("agent", "a-2"),
        ("visitor", "v-2"),
        ("agent", "a-3"),
    ]
    full = visitor.fetch("GET", f"/api/chat/{chat_id}/messages", headers=token)
    lines = [(kind, cid) for kind, cid in seqs(full) if kind != "system"]
    assert lines == [
        ("visitor", "v-1"),
        ("agent", "a-1"),
        ("agent", "a-2"),
        ("visitor", "v-2"),
        ("agent", "a-3"),
    ]
    assert [m["seq"] for m in full.body["items"]] == sorted({m["seq"] for m in full.body["items"]})
    show(visitor, [f"{m['sender_kind']}: {m['body']}" for m in full.body["items"]])
    shots.take(visitor.page, "visitor-after-reconnect")

    # The agent opens a work order from the chat (until 开工单 exists: the
    # work-order API with the chat's facts and link); it is in 我的工单.
    facts = xn.fetch("GET", f"/api/chats/{chat_id}").body
    transcript = "\n".join(f"{m['sender_kind']}: {m['body']}" for m in full.body["items"])
    opened = xn.fetch(
        "POST",
        "/api/tickets",
        {
            "subject": "网上咨询：贷款贴息申请材料",
            "description": transcript,
            "source": "web_chat",
            "category_code": facts["category_code"],
            "county_code": facts["county_code"],
            "enterprise_name": facts["company"],
            "contact_name": facts["visitor_name"],
            "links": [{"kind": "chat", "ref": str(chat_id)}],
            "assignee_id": xingning.id,
        },
    )
    assert opened.status == 201, opened.body
    ticket = opened.body
    xn.page.reload()
    expect(xn.page.locator("[data-test=ticket-row]")).to_contain_text(ticket["number"])
    shots.take(xn.page, "xingning-agent-work-order")

    # The supervisor sees the chat (with its agent) and the work order.
    sup = people.new("supervisor")
    sup.log_in(supervisor)
    sup.goto("/console/")
    expect(sup.page.locator("[data-test=top-bar-who]")).to_contain_text(supervisor.username)
    supervised = sup.fetch("GET", f"/api/chats/{chat_id}")
    assert supervised.status == 200
    assert (supervised.body["state"], supervised.body["agent_id"]) == ("assigned", xingning.id)
    work_order = sup.fetch("GET", f"/api/tickets/{ticket['id']}")
    assert work_order.status == 200, work_order.body
    assert {"kind": "chat", "ref": str(chat_id)} in [
        {"kind": link["kind"], "ref": link["ref"]} for link in work_order.body["links"]
    ]
    shots.take(sup.page, "supervisor-console")

    for person in (visitor, xn, mj, sup):
        assert person.foreign_requests() == [], person.name


@pytest.mark.skip(
    reason="not built yet: the portal chat widget (/widget/chat.js), the console's chat panel "
    "with its chat.assigned screen pop, the wrap-up dialog (POST /api/contacts/wrapups), "
    "开工单 from a chat (POST /api/contacts/ticket) and the supervisor wallboard view "
    "(GET /api/wallboard + wallboard.update); check the data-test names in SELECTORS"
)
def test_full_chat_flow_in_the_browser(
    server: Server, staff: Staff, people: People, shots: Shots
) -> None:
    staff.open_today()
    xingning = staff.user("agent", window_code="xingning")
    meijiang = staff.user("agent", window_code="meijiang")
    supervisor = staff.user("supervisor")
    xn, mj, sup = (
        people.new("agent-xingning"),
        people.new("agent-meijiang"),
        people.new("supervisor"),
    )
    for person, actor in ((xn, xingning), (mj, meijiang), (sup, supervisor)):
        person.log_in(actor)
        person.goto("/console/")
    expect(xn.page.locator(SELECTORS["chat_panel"])).to_be_visible()
    sup.goto("/console/wallboard")
    expect(sup.page.locator(SELECTORS["wallboard"])).to_be_visible()

    # A portal page of the service's own origin embeds the widget with one tag.
    visitor = people.new("visitor", headers={"X-Forwarded-For": XINGNING_IP})
    visitor.goto("/api/health")
    visitor.page.set_content(
        f'<!doctype html><html lang="zh-CN"><body><script src="{server.url("/widget/chat.js")}"'
        f' data-smeline="{server.base_url}" async></script></body></html>'
    )
    widget = visitor.page.locator(SELECTORS["widget_host"])
    widget.locator(SELECTORS["widget_open"]).click()
    widget.locator(SELECTORS["widget_name"]).fill(PRECHAT_FORM["name"])
    widget.locator(SELECTORS["widget_company"]).fill(PRECHAT_FORM["company"])
    widget.locator(SELECTORS["widget_start"]).click()
    shots.take(visitor.page, "visitor-waits")

    # Screen pop to the 兴宁 agent only.
    expect(xn.page.locator(SELECTORS["screen_pop"])).to_contain_text(PRECHAT_FORM["company"])
    expect(mj.page.locator(SELECTORS["screen_pop"])).to_have_count(0)
    shots.take(xn.page, "screen-pop")

    widget.locator(SELECTORS["widget_input"]).fill("你好，想咨询贷款贴息")
    widget.locator(SELECTORS["widget_send"]).click()
    expect(xn.page.locator(SELECTORS["chat_messages"])).to_contain_text("你好，想咨询贷款贴息")
    xn.page.locator(SELECTORS["chat_input"]).fill("您好，请讲")
    xn.page.locator(SELECTORS["chat_send"]).click()
    expect(widget.locator(SELECTORS["widget_messages"])).to_contain_text("您好，请讲")

    with visitor.offline():
        widget.locator(SELECTORS["widget_input"]).fill("申请材料有哪些？")
        widget.locator(SELECTORS["widget_send"]).click()
        expect(widget.locator(SELECTORS["widget_pending"])).to_have_count(1)
        xn.page.locator(SELECTORS["chat_input"]).fill("还在吗？")
        xn.page.locator(SELECTORS["chat_send"]).click()
        shots.take(visitor.page, "visitor-offline")
    expect(widget.locator(SELECTORS["widget_pending"])).to_have_count(0)
    expect(widget.locator(SELECTORS["widget_messages"])).to_contain_text("还在吗？")
    expect(
        xn.page.locator(SELECTORS["chat_messages"]).get_by_text("申请材料有哪些？")
    ).to_have_count(1)
    shots.take(visitor.page, "visitor-reconnected")

    # Closing needs the wrap-up before the next contact; 开工单 from the chat.
    xn.page.locator(SELECTORS["chat_close"]).click()
    expect(xn.page.locator(SELECTORS["wrapup_dialog"])).to_be_visible()
    shots.take(xn.page, "wrapup-required")
    xn.page.locator(SELECTORS["open_ticket"]).click()
    xn.page.locator(SELECTORS["open_ticket_confirm"]).click()
    expect(xn.page.locator("[data-test=ticket-row]")).to_have_count(1)
    xn.page.locator(SELECTORS["wrapup_submit"]).click()
    shots.take(xn.page, "work-order-opened")

    # The wallboard shows the chat and the work order, by push.
    expect(sup.page.locator(SELECTORS["wallboard_window_xingning"])).to_be_visible()
    number = xn.page.locator("[data-test=ticket-row]").first.inner_text()
    expect(sup.page.locator(SELECTORS["wallboard_sla"])).to_contain_text(number.split()[0])
    shots.take(sup.page, "wallboard")

    for person in (visitor, xn, mj, sup):
        assert person.foreign_requests() == [], person.name


# The names the browser side gives its elements: the console's data-test
# attributes as they stood in the work in progress (src/components/chat/,
# src/components/wallboard/); the widget's are guesses (ids in its shadow
# root). Adjust here when the screens land.
SELECTORS = {
    "chat_panel": "[data-test=chat-panel]",
    "screen_pop": "[data-test=screen-pop]",
    "chat_messages": "[data-test=chat-lines]",
    "chat_input": "[data-test=chat-input]",
    "chat_send": "[data-test=chat-send]",
    "chat_close": "[data-test=chat-close]",
    "wrapup_dialog": "[data-test=wrapup-owed]",
    "wrapup_submit": "[data-test=wrapup-submit]",
    "open_ticket": "[data-test=chat-ticket]",
    "open_ticket_confirm": "[data-test=ticket-confirm]",
    "wallboard": "[data-test=wallboard]",
    "wallboard_window_xingning": "[data-test=wallboard-windows]",
    "wallboard_sla": "[data-test=wallboard-sla-items]",
    "widget_host": "smeline-chat",
    "widget_open": "[data-test=widget-open]",
    "widget_name": "[data-test=widget-name]",
    "widget_company": "[data-test=widget-company]",
    "widget_start": "[data-test=widget-start]",
    "widget_input": "[data-test=widget-input]",
    "widget_send": "[data-test=widget-send]",
    "widget_messages": "[data-test=widget-messages]",
    "widget_pending": "[data-test=widget-pending]",
}
