"""The agent console in Chromium: first login of the administrator, the console
in Chinese with a CJK font, the telephony banner, my work orders — and not one
request to a host other than the service's own."""

from __future__ import annotations

import re

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import (
    People,
    Server,
    Shots,
    Staff,
    catalogue,
    png_colours,
)

expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
).expect

NEW_ADMIN_PASSWORD = "Meizhou-first-login-2026"


def test_first_admin_logs_in_changes_the_one_time_password_and_sees_the_chinese_console(
    server: Server, people: People, shots: Shots
) -> None:
    zh = catalogue()
    admin = people.new("admin")
    page = admin.page

    admin.goto("/")
    expect(page).to_have_url(server.url("/console/login"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name=zh["login.title"])).to_be_visible()
    shots.take(page, "login-page")

    # A wrong password is refused in Chinese, from the catalogue.
    page.get_by_label(zh["login.username"], exact=True).fill(server.first_admin)
    page.get_by_label(zh["login.password"], exact=True).fill("not-the-password")
    page.locator("[data-test=login-submit]").click()
    expect(page.locator("[data-test=login-error]")).to_contain_text(zh["error.login_failed"])
    shots.take(page, "wrong-password")

    # The one-time password printed by `smeline serve` leads to the password change.
    page.get_by_label(zh["login.password"], exact=True).fill(server.first_admin_password)
    page.locator("[data-test=login-submit]").click()
    expect(page).to_have_url(server.url("/console/password"))
    expect(page.get_by_role("heading", name=zh["password.title"])).to_be_visible()
    shots.take(page, "password-change-asked")

    form = page.locator("[data-test=password-form]")
    form.get_by_label(zh["password.current"], exact=True).fill(server.first_admin_password)
    form.get_by_label(zh["password.new"], exact=True).fill(NEW_ADMIN_PASSWORD)
    form.get_by_label(zh["password.confirm"], exact=True).fill(NEW_ADMIN_PASSWORD)
    form.get_by_role("button", name=zh["password.submit"]).click()

    expect(page).to_have_url(server.url("/console/"))
    banner = page.locator("[data-test=telephony-not-configured]")
    expect(banner).to_contain_text(zh["telephony.notConfigured"])
    expect(banner).to_contain_text(zh["telephony.notConfiguredHint"])
    expect(page.locator(".top-bar")).to_contain_text(zh["app.title"])
    expect(page.locator("[data-test=top-bar-who]")).to_contain_text(zh["shell.role.admin"])
    expect(page.locator("[data-test=my-tickets]")).to_contain_text(zh["tickets.title"])
    expect(page.locator("[data-test=my-tickets]")).to_contain_text(zh["tickets.empty"])
    expect(page.get_by_text(zh["kb.notConnected"])).to_be_visible()
    expect(page.get_by_text(zh["phone.notConfigured"]).first).to_be_visible()
    shots.take(page, "console")

    # The banner's Chinese is drawn with a CJK font of the machine (no web font),
    # and drawn at all: its screenshot holds anti-aliased glyphs, not one colour.
    title = "[data-test=telephony-not-configured] .el-alert__title"
    cdp = admin.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send(
        "DOM.querySelector",
        {"nodeId": root, "selector": title},
    )["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert fonts, "no font reported for the banner"
    assert all(not f["isCustomFont"] for f in fonts), fonts
    assert any("CJK" in f["familyName"] and f["glyphCount"] >= 6 for f in fonts), fonts
    assert png_colours(shots.take(page, "banner-text", selector=title)) > 10

    # The new password works; the one-time one no longer does.
    status = admin.context.request.post(
        server.url("/api/auth/login"),
        data={"username": server.first_admin, "password": server.first_admin_password},
    ).status
    assert status == 401
    status = admin.context.request.post(
        server.url("/api/auth/login"),
        data={"username": server.first_admin, "password": NEW_ADMIN_PASSWORD},
    ).status
    assert status == 200

    # Every request went to the service: no CDN, no web font, nothing else.
    assert any("/console/assets/" in url for url in admin.requests)
    assert admin.foreign_requests() == []


def test_an_agent_sees_their_work_order_with_its_countdown(
    server: Server, staff: Staff, people: People, shots: Shots
) -> None:
    zh = catalogue()
    agent = staff.user("agent", window_code="xingning", name="兴宁坐席甲")
    status, ticket = staff.call(
        "POST",
        "/api/tickets",
        staff.admin,
        {
            "subject": "咨询小微企业贷款贴息",
            "description": "企业想了解贴息申请条件和材料。",
            "source": "phone",
            "category_code": "financing",
            "county_code": "441481",
            "enterprise_name": "兴宁市某某电子有限公司",
            "assignee_id": agent.id,
        },
    )
    assert status == 201, ticket

    person = people.new("agent")
    page = person.page
    person.goto("/console/login")
    page.get_by_label(zh["login.username"], exact=True).fill(agent.username)
    page.get_by_label(zh["login.password"], exact=True).fill(STRONG_PASSWORD)
    page.locator("[data-test=login-submit]").click()
    expect(page).to_have_url(server.url("/console/"))
    expect(page.locator("[data-test=top-bar-who]")).to_contain_text("兴宁坐席甲")
    expect(page.locator("[data-test=top-bar-who]")).to_contain_text(zh["window.xingning"])

    row = page.locator("[data-test=ticket-row]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(ticket["number"])
    expect(row).to_contain_text("咨询小微企业贷款贴息")
    expect(row).to_contain_text("兴宁市某某电子有限公司")
    # A countdown to the resolution deadline (or "paused" / "overdue"): one of
    # the catalogue's SLA texts with its duration filled in.
    sla = re.compile(
        "|".join(
            re.escape(zh[key].split("{")[0].strip())
            for key in ("sla.remaining", "sla.overdue", "sla.paused")
        )
    )
    expect(row).to_contain_text(sla)
    shots.take(page, "my-work-orders")
    assert person.foreign_requests() == []
