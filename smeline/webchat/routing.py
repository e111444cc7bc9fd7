"""Which county a web visitor belongs to and which window takes the chat — pure.

The service gathers the facts (portal member, the phone's caller facts, the
administrators' IP table, the public IP data, window hours and who is online)
and asks these functions; they do no I/O.

Who, first match wins (issue 4):
1. a logged-in portal member → the member's county;
2. the county the visitor chose in the pre-chat form;
3. the phone given → what routing knows of it (member/enterprise phone, the
   caller profile, a Meizhou landline's exchange prefix);
4. the visitor's address in the administrators' CIDR table → its county;
5. otherwise the city centre. Public IP data knows the city, never the
   county: it only tells a Meizhou address from an outside one, and both go
   to the city centre (the area is kept on the chat for the agent and reports).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smeline.routing.decide import CITY_WINDOW
from smeline.webchat.models import RoutingReason

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class VisitorFacts:
    member_county: str | None = None
    form_county: str | None = None
    phone_county: str | None = None
    ip_county: str | None = None


@dataclass(frozen=True, slots=True)
class VisitorCounty:
    county: str | None  # GB/T 2260 code; None = city centre
    reason: RoutingReason


def identify_visitor(facts: VisitorFacts) -> VisitorCounty:
    if facts.member_county:
        return VisitorCounty(facts.member_county, RoutingReason.MEMBER)
    if facts.form_county:
        return VisitorCounty(facts.form_county, RoutingReason.FORM)
    if facts.phone_county:
        return VisitorCounty(facts.phone_county, RoutingReason.CALLER_PROFILE)
    if facts.ip_county:
        return VisitorCounty(facts.ip_county, RoutingReason.IP)
    return VisitorCounty(None, RoutingReason.CITY_DEFAULT)


def parse_address(raw: str | None) -> Address | None:
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def match_ip_range(address: Address | None, ranges: Sequence[tuple[Network, str]]) -> str | None:
    """The county of the most specific network holding ``address``."""
    if address is None:
        return None
    best: tuple[int, str] | None = None
    for network, county in ranges:
        if network.version == address.version and address in network:
            if best is None or network.prefixlen > best[0]:
                best = (network.prefixlen, county)
    return best[1] if best else None


@dataclass(frozen=True, slots=True)
class ChatWindowState:
    """A window for chat right now."""

    code: str
    open: bool  # window hours, holidays and 调休 (the business calendar)
    online: int  # agents online for chat
    free: int  # of them, agents with a free chat slot


@dataclass(frozen=True, slots=True)
class ChatWindowDecision:
    window: str | None  # None: closed, the visitor can leave a message
    wanted_window: str
    overflowed: bool  # taken by another window than the visitor's own


def choose_chat_window(
    wanted_window: str,
    windows: Mapping[str, ChatWindowState],
    *,
    city_window: str = CITY_WINDOW,
) -> ChatWindowDecision:
    """The same rules as calls (``routing.decide.choose_queue``), in chat terms:

    * the visitor's own window when it is open and an agent there has a free
      slot;
    * otherwise the city centre when it is open with an agent online (busy
      agents included: the chat waits in the city's queue, position shown);
    * otherwise the own window when it is open with an agent online but busy
      (better to wait there than to be told nobody is there);
    * otherwise closed: leave a message.
    """
    own = windows.get(wanted_window)
    city = windows.get(city_window)
    if own is not None and own.open and own.free > 0:
        return ChatWindowDecision(wanted_window, wanted_window, False)
    if city is not None and city.open and city.online > 0:
        return ChatWindowDecision(city_window, wanted_window, wanted_window != city_window)
    if own is not None and own.open and own.online > 0:
        return ChatWindowDecision(wanted_window, wanted_window, False)
    return ChatWindowDecision(None, wanted_window, False)
