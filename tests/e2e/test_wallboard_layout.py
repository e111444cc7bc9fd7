"""The supervisor's wallboard on an ordinary office PC: at 1280×800 and
1920×1080 nothing of it is cut off sideways — no table, in particular the
windows table with its twelve columns, is wider than its card, and the page
does not scroll horizontally. Screenshots of both sizes are kept
(var/e2e-artifacts/, README.md). The server is the package's (conftest.py's
``serving()``); other tests' figures on the board only make it fuller."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import People, Shots, Staff

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# Every table of the board and the card that holds it: the content's width
# (scrollWidth) must not exceed what is shown (clientWidth).
OVERFLOW_JS = """
() => {
  const out = []
  const board = '[data-test=wallboard]'
  for (const el of document.querySelectorAll(`${board} table, ${board} section`)) {
    const what = el.getAttribute('data-test') || el.tagName.toLowerCase()
    out.push({ what, scroll: el.scrollWidth, client: el.clientWidth })
  }
  const doc = document.documentElement
  out.push({ what: 'page', scroll: doc.scrollWidth, client: doc.clientWidth })
  return out
}
"""

SIZES = [(1280, 800), (1920, 1080)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_wallboard_fits_an_office_screen(
    staff: Staff, people: People, shots: Shots, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    supervisor = staff.user("supervisor", name="班长甲")
    sup = people.new("supervisor")
    sup.page.set_viewport_size({"width": width, "height": height})
    sup.log_in(supervisor)
    sup.goto("/console/wallboard")
    windows = sup.page.locator("[data-test=wallboard-windows]")
    expect(windows).to_be_visible()
    # Every window of Meizhou has its row (the widest content there is).
    expect(windows.locator("tbody tr")).to_have_count(10)
    shots.take(sup.page, f"wallboard-{width}x{height}")

    measured = sup.page.evaluate(OVERFLOW_JS)
    cut_off = [m for m in measured if m["scroll"] > m["client"]]
    assert cut_off == [], f"cut off at {width}x{height}: {cut_off}"
    # The last column of the windows table is on screen, not scrolled away.
    last = windows.locator("thead th").last.bounding_box()
    assert last is not None and last["x"] + last["width"] <= width, last
    # The chats in play (reassignable from here) are part of the board.
    expect(sup.page.locator("[data-test=wallboard-chats]")).to_be_visible()
