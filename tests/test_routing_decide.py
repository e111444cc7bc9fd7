"""The routing table: who the caller is → which county → which queue."""

from __future__ import annotations

import pytest

from smeline.routing.decide import (
    CallerFacts,
    CountySource,
    QueueDecision,
    RouteAction,
    WindowState,
    choose_queue,
    county_from_menu,
    identify_county,
    match_landline,
)

MEIJIANG, XINGNING = "441402", "441481"
MENU = (("1", "441402"), ("2", "441403"), ("3", "441481"), ("8", "441424"))


def test_registered_member_county_beats_a_stored_profile() -> None:
    facts = CallerFacts(
        "13923001234",
        is_mobile=True,
        is_meizhou=True,
        member_county=XINGNING,
        profile_county=MEIJIANG,
    )
    decision = identify_county(facts)
    assert (decision.county, decision.source, decision.ask) == (
        XINGNING,
        CountySource.MEMBER,
        False,
    )


def test_profile_remembers_the_county_a_meizhou_mobile_chose_before() -> None:
    facts = CallerFacts("13923001234", is_mobile=True, is_meizhou=True, profile_county=MEIJIANG)
    assert identify_county(facts).source is CountySource.PROFILE


def test_meizhou_mobile_without_profile_is_asked() -> None:
    decision = identify_county(CallerFacts("13923001234", is_mobile=True, is_meizhou=True))
    assert decision.ask and decision.county is None


def test_meizhou_landline_uses_the_exchange_table() -> None:
    decision = identify_county(
        CallerFacts("075322123456", is_meizhou=True, landline_county=XINGNING)
    )
    assert (decision.county, decision.source) == (XINGNING, CountySource.LANDLINE)


@pytest.mark.parametrize(
    "facts",
    [
        CallerFacts("02088888888"),  # Guangzhou landline
        CallerFacts("13800138000", is_mobile=True),  # out-of-town mobile
        CallerFacts(""),  # anonymous or garbage
    ],
)
def test_callers_from_outside_meizhou_and_unknown_go_to_the_city(facts: CallerFacts) -> None:
    decision = identify_county(facts)
    assert decision.county is None and not decision.ask
    assert decision.source is CountySource.DEFAULT


def test_county_menu_digits_map_to_counties_and_anything_else_to_none() -> None:
    assert county_from_menu("3", MENU) == XINGNING
    assert county_from_menu("9", MENU) is None
    assert county_from_menu("", MENU) is None
    assert county_from_menu(None, MENU) is None


def test_longest_exchange_prefix_wins() -> None:
    table = {"07532": MEIJIANG, "075336": XINGNING}
    assert match_landline("075336123456", table) == XINGNING
    assert match_landline("075322123456", table) == MEIJIANG
    assert match_landline("02088888888", table) is None
    assert match_landline("", table) is None


def _windows(**states: tuple[bool, int]) -> dict[str, WindowState]:
    return {code: WindowState(code, is_open, ready) for code, (is_open, ready) in states.items()}


def test_open_county_window_with_ready_agents_takes_its_callers() -> None:
    decision = choose_queue("xingning", _windows(xingning=(True, 2), city=(True, 1)))
    assert decision == QueueDecision(RouteAction.QUEUE, "xingning", "city", False, "xingning")


def test_closed_county_window_overflows_to_the_city_with_an_announcement() -> None:
    decision = choose_queue("xingning", _windows(xingning=(False, 2), city=(True, 1)))
    assert decision == QueueDecision(RouteAction.QUEUE, "city", None, True, "xingning")


def test_county_window_without_ready_agents_overflows_to_the_city() -> None:
    decision = choose_queue("xingning", _windows(xingning=(True, 0), city=(True, 3)))
    assert decision.window == "city" and decision.announce_overflow


def test_all_closed_means_after_hours() -> None:
    decision = choose_queue("xingning", _windows(xingning=(False, 0), city=(False, 0)))
    assert decision.action is RouteAction.AFTER_HOURS and decision.window is None


def test_open_city_without_agents_means_after_hours_too() -> None:
    decision = choose_queue("city", _windows(city=(True, 0)))
    assert decision.action is RouteAction.AFTER_HOURS


def test_county_queue_has_no_overflow_target_when_the_city_cannot_take_it() -> None:
    decision = choose_queue("xingning", _windows(xingning=(True, 1), city=(False, 0)))
    assert decision.window == "xingning" and decision.overflow_window is None


def test_unknown_window_goes_to_the_city() -> None:
    decision = choose_queue("nowhere", _windows(city=(True, 1)))
    assert decision.window == "city"
