"""The issue's web-chat flow with visitors, two agents and a supervisor, each in
a browser context of their own.

``test_full_chat_flow_in_the_browser`` is the issue's story through the real
screens: the portal widget on a portal page of another origin, the console's
chat panel with its screen pop, the network drops, 开工单, the wrap-up dialog
and the supervisor's wallboard. The first test plays the same story through
the web-chat API from inside each person's page (the browser's own network
stack: cookies, CSRF header, the visitor's X-Forwarded-For, and a real network
drop with ``context.set_offline``), which pins the protocol underneath:
client ids, de-duplication, re-fetching ``since`` the last line.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import (
    People,
    Person,
    Portal,
    Reply,
    Server,
    Shots,
    Staff,
    catalogue,
    until,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator

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

    # The visitor ends the chat: left open, it would go back to 兴宁's queue
    # once this agent's console is gone (chat_requeue_grace_seconds) and reach
    # the 兴宁 agent of a later test on the same server.
    ended = visitor.fetch("POST", f"/api/chat/{chat_id}/end", {}, token)
    assert ended.status in (200, 204), ended.body
    assert staff.call("GET", f"/api/chats/{chat_id}", supervisor)[1]["state"] == "ended"


def at_console(people: People, name: str, actor: Any) -> Person:
    """A member of staff logged in, with the console open."""
    person = people.new(name)
    person.log_in(actor)
    person.goto("/console/")
    expect(person.page.locator("[data-test=top-bar-who]")).to_contain_text(actor.username)
    return person


def widget_visitor(people: People, portal: Portal, name: str, form: dict[str, str]) -> Person:
    """A visitor from 兴宁's range on the portal's page, who opens the widget
    and fills in the pre-chat form."""
    visitor = people.new(name, forwarded_for=XINGNING_IP)
    visitor.page.goto(portal.base_url + "/")
    widget = visitor.page.locator(W["host"])
    widget.locator(W["open"]).click()
    widget.locator(W["name"]).fill(form["name"])
    widget.locator(W["company"]).fill(form["company"])
    widget.locator(W["category"]).select_option(form["category_code"])
    widget.locator(W["start"]).click()
    return visitor


def test_full_chat_flow_in_the_browser(
    server: Server, portal: Portal, staff: Staff, people: People, shots: Shots
) -> None:
    staff.open_today()
    xingning = staff.user("agent", window_code="xingning")
    meijiang = staff.user("agent", window_code="meijiang")
    supervisor = staff.user("supervisor")
    text = catalogue()

    # Both agents at their consoles: the chat panel opens the /agent socket by
    # itself, which makes each a web-chat seat.
    xn = at_console(people, "agent-xingning", xingning)
    mj = at_console(people, "agent-meijiang", meijiang)
    for person, actor in ((xn, xingning), (mj, meijiang)):
        expect(person.page.locator(C["panel"])).to_be_visible()
        expect(person.page.locator(C["connection"])).to_have_text(text["chat.connected"])
        until(partial(seat_online, staff, actor), what=f"{actor.username} online for chat")
    sup = people.new("supervisor")
    sup.log_in(supervisor)
    sup.goto("/console/wallboard")
    expect(sup.page.locator(B["board"])).to_be_visible()
    expect(sup.page.locator(B["connection"])).to_have_text(text["wallboard.live"])
    # Chats of other tests (the server is shared by the package) count too:
    # the figures below are what this test adds.
    answered, chats = chat_cell(sup, "xingning")
    meijiang_before = chat_cell(sup, "meijiang")

    # 1. A visitor from 兴宁's range starts a chat in the widget of a portal page.
    visitor = widget_visitor(people, portal, "visitor", PRECHAT_FORM)
    widget = visitor.page.locator(W["host"])
    expect(widget.locator(W["input"])).to_be_visible()
    first_chat = chat_id_of(visitor)
    shots.take(visitor.page, "visitor-starts-a-chat-on-the-portal")

    # 2. The screen pop reaches the 兴宁 agent only.
    pop = xn.page.locator(C["screen_pop"])
    expect(pop).to_contain_text(PRECHAT_FORM["company"])
    expect(pop.locator("[data-test=pop-visitor]")).to_have_text(PRECHAT_FORM["name"])
    expect(pop.locator("[data-test=pop-reason]")).to_have_text(text["chat.reason.ip"])
    expect(mj.page.locator(C["screen_pop"])).to_have_count(0)
    expect(mj.page.locator(C["none"])).to_be_visible()
    shots.take(xn.page, "xingning-agent-screen-pop")
    shots.take(mj.page, "meijiang-agent-sees-nothing")

    # 3. The visitor writes, the agent replies, the visitor sees it.
    say(widget, "你好，想咨询贷款贴息")
    expect(xn.page.locator(C["lines"])).to_contain_text("你好，想咨询贷款贴息")
    reply(xn, "您好，请讲")
    expect(widget.locator(W["lines"])).to_contain_text("您好，请讲")
    shots.take(visitor.page, "visitor-sees-the-reply")

    # 4a. The visitor's network drops while both write: the visitor's line
    # waits, marked unsent; back online it is delivered once, and the agent's
    # line written meanwhile arrives.
    with visitor.offline():
        expect(widget.locator(W["status"])).to_have_text(text["widget.reconnecting"])
        say(widget, "申请材料有哪些？")
        expect(widget.locator(W["pending"])).to_have_count(1)
        reply(xn, "还在吗？")
        expect(xn.page.locator(C["lines"])).to_contain_text("还在吗？")
        shots.take(visitor.page, "visitor-offline")
    expect(widget.locator(W["pending"])).to_have_count(0)
    expect(widget.locator(W["lines"])).to_contain_text("还在吗？")
    expect(xn.page.locator(C["line"]).filter(has_text="申请材料有哪些？")).to_have_count(1)
    expect(widget.locator(W["line"]).filter(has_text="申请材料有哪些？")).to_have_count(1)
    shots.take(visitor.page, "visitor-reconnected")

    # 4b. Then the agent's network drops.
    with xn.offline():
        expect(xn.page.locator(C["connection"])).to_have_text(text["chat.reconnecting"])
        reply(xn, "营业执照和申请表。")
        expect(xn.page.locator(C["pending"])).to_have_count(1)
        say(widget, "好的，谢谢")
        shots.take(xn.page, "agent-offline")
    expect(xn.page.locator(C["connection"])).to_have_text(text["chat.connected"])
    expect(xn.page.locator(C["pending"])).to_have_count(0)
    expect(xn.page.locator(C["line"]).filter(has_text="好的，谢谢")).to_have_count(1)
    expect(widget.locator(W["line"]).filter(has_text="营业执照和申请表。")).to_have_count(1)
    shots.take(xn.page, "agent-reconnected")

    # Nothing lost, nothing twice: the conversation as both screens show it.
    said = [
        "你好，想咨询贷款贴息",
        "您好，请讲",
        "申请材料有哪些？",
        "还在吗？",
        "营业执照和申请表。",
        "好的，谢谢",
    ]
    for lines in (widget.locator(W["line"]), xn.page.locator(C["line"])):
        shown = lines.all_inner_texts()
        for line in said:
            assert sum(line in s for s in shown) == 1, (line, shown)

    # 5. 开工单 from the chat: two clicks (the button, then confirm); the work
    # order is prefilled from the chat and linked to it.
    xn.page.locator(C["open_ticket"]).click()
    dialog = xn.page.locator(C["ticket_dialog"])
    expect(dialog).to_contain_text(PRECHAT_FORM["name"])
    expect(dialog.locator("[data-test=ticket-enterprise]")).to_have_value(PRECHAT_FORM["company"])
    shots.take(xn.page, "open-ticket-prefilled")
    dialog.locator(C["ticket_confirm"]).click()
    opened = dialog.locator("[data-test=ticket-opened]")
    expect(opened).to_be_visible()
    ticket_number, short_ref = fill_in(text["contact.ticketOpened"], opened.inner_text())
    shots.take(xn.page, "work-order-opened")
    dialog.locator("[data-test=ticket-done]").click()
    expect(dialog).to_have_count(0)

    # 6. The agent ends the chat: the wrap-up is owed before the next contact
    # and cannot be put aside (no other chat is going on).
    xn.page.locator(C["close"]).click()
    wrapup = xn.page.locator(C["wrapup_dialog"])
    expect(wrapup).to_be_visible()
    expect(xn.page.locator(C["owed"])).to_be_visible()
    expect(wrapup.locator("[data-test=modal-close]")).to_have_count(0)
    expect(wrapup.locator("[data-test=wrapup-enterprise]")).to_have_value(PRECHAT_FORM["company"])
    # The visitor is told the chat ended and may rate it.
    expect(widget.locator("[data-test=widget-rating]")).to_be_visible()
    # Submitting without the outcome is refused in the dialog.
    wrapup.locator(C["wrapup_submit"]).click()
    expect(wrapup.locator("[data-test=wrapup-errors]")).to_contain_text(
        text["wrapup.resultRequired"]
    )
    shots.take(xn.page, "wrapup-required")

    # A second visitor from 兴宁 meanwhile waits: the only 兴宁 agent owes a
    # wrap-up, so the chat is not given to them and cannot be taken by hand.
    second = widget_visitor(people, portal, "visitor-2", SECOND_FORM)
    second_widget = second.page.locator(W["host"])
    expect(second_widget.locator(W["status"])).to_contain_text(text["widget.queued"].split("，")[0])
    queued = xn.page.locator(C["queued"])
    expect(queued).to_have_count(1)
    expect(queued.get_by_role("button")).to_be_disabled()
    expect(xn.page.locator(C["screen_pop"])).not_to_contain_text(SECOND_FORM["company"])
    shots.take(second.page, "second-visitor-waits")

    # The wrap-up cites the work order just opened; once it is in, the
    # waiting chat is the agent's.
    wrapup.locator("[data-test=wrapup-result-ticket]").check()
    expect(wrapup.locator("[data-test=wrapup-ticket]")).to_be_visible()
    expect(wrapup.locator("[data-test=wrapup-ticket]")).to_have_text(
        text["wrapup.ticketLinked"].replace("{number}", ticket_number)
    )
    wrapup.locator(C["wrapup_submit"]).click()
    expect(wrapup).to_have_count(0)
    expect(xn.page.locator(C["owed"])).to_have_count(0)
    xn.page.locator(f"[data-test=chat-tab-{chat_id_of(second)}]").click()
    expect(xn.page.locator(C["screen_pop"])).to_contain_text(SECOND_FORM["company"])
    expect(second_widget.locator(W["input"])).to_be_visible()
    shots.take(xn.page, "next-chat-after-the-wrapup")

    # The work order as the service holds it: prefilled from the chat and
    # linked to it. It has no assignee (it waits in 兴宁's window, docs/wrapup.md),
    # so it is not in the agent's 我的工单, which lists what is assigned to them.
    status, found = staff.call("GET", f"/api/tickets?q={ticket_number}", staff.admin)
    assert status == 200 and len(found["items"]) == 1, found
    status, ticket = staff.call("GET", f"/api/tickets/{found['items'][0]['id']}", staff.admin)
    assert status == 200, ticket
    assert ticket["number"] == ticket_number
    assert (ticket["source"], ticket["window_code"]) == ("web_chat", "xingning")
    assert ticket["enterprise_name"] == PRECHAT_FORM["company"]
    assert ticket["contact_name"] == PRECHAT_FORM["name"]
    assert ticket["category_code"] == PRECHAT_FORM["category_code"]
    assert {"kind": "chat", "ref": str(first_chat)} in [
        {"kind": link["kind"], "ref": link["ref"]} for link in ticket["links"]
    ]
    assert "申请材料有哪些？" in ticket["description"]  # the transcript
    assert ticket["assignee_id"] is None and ticket["sla"]["state"] == "ok"

    # 7. The wallboard, by push (it never polls): 兴宁's row counts both chats,
    # both answered; the 兴宁 agent holds one; 梅江's row has none. A fresh
    # work order is not near its deadline, and the SLA board lists only work
    # orders in warning or breach (docs/wallboard.md): it says none, and does
    # not list this one.
    row = sup.page.locator(B["window"]("xingning"))
    expect(row.locator("td").last).to_have_text(f"{answered + 2}/{chats + 2}")
    expect(sup.page.locator(B["window"]("meijiang")).locator("td").last).to_have_text(
        "/".join(map(str, meijiang_before))
    )
    agent_row = sup.page.locator(B["agent"](xingning.id))
    expect(agent_row.locator("td").nth(7)).to_have_text("1")
    expect(sup.page.locator(B["sla_totals"])).to_contain_text(
        text["wallboard.slaWarning"].replace("{count}", "0")
    )
    expect(sup.page.locator(B["sla_items"])).not_to_contain_text(ticket_number)
    expect(sup.page.get_by_text(text["wallboard.slaNone"])).to_be_visible()
    shots.take(sup.page, "wallboard")

    # Neither chat ever reached the 梅江 agent's console.
    expect(mj.page.locator(C["screen_pop"])).to_have_count(0)
    expect(mj.page.locator(C["queued"])).to_have_count(0)
    expect(mj.page.locator(C["none"])).to_be_visible()

    # The portal page and its widget asked nothing of any host but the
    # portal's and the service's; the staff's pages only of the service.
    for person in (visitor, second):
        assert person.page.url.startswith(portal.base_url), person.page.url
        assert person.foreign_requests(portal.netloc) == [], person.name
        # ... and it did talk to the service: the widget's script, REST and socket.
        assert f"ws://{server.netloc}/socket.io/" in " ".join(person.requests), person.requests
        assert server.url("/widget/chat.js") in person.requests, person.requests
    for person in (xn, mj, sup):
        assert person.foreign_requests() == [], person.name


SECOND_FORM = {"name": "王女士", "company": "兴宁市某某五金有限公司", "category_code": "legal"}


def say(widget: Locator, line: str) -> None:
    widget.locator(W["input"]).fill(line)
    widget.locator(W["send"]).click()


def reply(agent: Person, line: str) -> None:
    agent.page.locator(C["input"]).fill(line)
    agent.page.locator(C["send"]).click()


def seat_online(staff: Staff, actor: Any) -> bool:
    return bool(staff.call("GET", "/api/chats/seat", actor)[1]["online"])


def chat_cell(supervisor: Person, window: str) -> tuple[int, int]:
    """A window's chats answered and chats today, as its wallboard row shows them."""
    cell = supervisor.page.locator(B["window"](window)).locator("td").last
    expect(cell).to_have_text(re.compile(r"^\d+/\d+$"))
    answered, chats = cell.inner_text().split("/")
    return int(answered), int(chats)


def chat_id_of(visitor: Person) -> int:
    """The chat id the widget keeps for its tab (docs/widget.md)."""
    saved = visitor.page.evaluate("() => sessionStorage.getItem('smeline.chat')")
    return int(json.loads(saved)["chat_id"])


def fill_in(template: str, shown: str) -> list[str]:
    """The values a catalogue line with ``{placeholders}`` was filled with."""
    pattern = "".join(
        "(.+?)" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{\w+\})", template)
        if part
    )
    found = re.fullmatch(pattern, shown.strip())
    assert found, (template, shown)
    return list(found.groups())


# The names the screens give their elements: the console's data-test
# attributes (src/components/chat/, src/views/WallboardView.vue) and the
# widget's (src/widget/widget.ts, in an open shadow root on
# <div id="smeline-chat">, which Playwright's CSS selectors pierce).
C = {
    "panel": "[data-test=chat-panel]",
    "connection": "[data-test=chat-connection]",
    "none": "[data-test=chat-none]",
    "queued": "[data-test=chat-queued]",
    "screen_pop": "[data-test=screen-pop]",
    "lines": "[data-test=chat-lines]",
    "line": "[data-test=chat-line]",
    "pending": "[data-test=chat-line-pending]",
    "input": "[data-test=chat-input]",
    "send": "[data-test=chat-send]",
    "close": "[data-test=chat-close]",
    "open_ticket": "[data-test=chat-ticket]",
    "ticket_dialog": "[data-test=ticket-dialog]",
    "ticket_confirm": "[data-test=ticket-confirm]",
    "owed": "[data-test=wrapup-owed]",
    "wrapup_dialog": "[data-test=wrapup-dialog]",
    "wrapup_submit": "[data-test=wrapup-submit]",
}
W = {
    "host": "#smeline-chat",
    "open": "[data-test=widget-launcher]",
    "name": "input[name=name]",
    "company": "input[name=company]",
    "category": "select[name=category]",
    "start": "[data-test=widget-start]",
    "status": "[data-test=widget-status]",
    "input": "[data-test=widget-input]",
    "send": "[data-test=widget-send]",
    "lines": "[data-test=widget-lines]",
    "line": "[data-test=widget-line]",
    "pending": "[data-test=widget-line-pending]",
}
B: dict[str, Any] = {
    "board": "[data-test=wallboard]",
    "connection": "[data-test=wallboard-connection]",
    "window": lambda code: f"[data-test=wallboard-window-{code}]",
    "agent": lambda user_id: f"[data-test=wallboard-agent-{user_id}]",
    "sla_totals": "[data-test=wallboard-sla-totals]",
    "sla_items": "[data-test=wallboard-sla-items]",
}
