"""The one phone-number normaliser: whatever arrives becomes one canonical key.

Call routing, screen pop, reachability figures and dialling out all key people
by :func:`normalise`, so ``+86 139-2300-1234`` from a trunk, ``１３９２３００１２３４``
typed into a form and ``013923001234`` from an import are the same person.

Everything here is pure and never raises on input, with one exception to the
"no I/O" rule: the mobile-segment database (ls0f's ``phone`` package) is a
file of a few megabytes. :func:`load_mobile_segments` reads it once; the service
calls it at start-up so that no call on the event loop pays for the read.
:func:`mobile_region`, :func:`is_meizhou` and :func:`dial_string` load it on
first use otherwise.

The rules are China's numbering plan (mobiles ``1[3-9]`` + 9 digits, trunk
prefix ``0``, international prefix ``00``); see ``docs/numbers.md``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Final, NamedTuple, Protocol, cast

import phonenumbers
from phone import Phone  # type: ignore[import-untyped]

from smeline.masking import mask_phone

__all__ = [
    "DEFAULT_PLAN",
    "NumberKind",
    "NumberPlan",
    "PhoneKey",
    "dial_string",
    "is_local_landline",
    "is_meizhou",
    "load_mobile_segments",
    "mobile_region",
    "normalise",
    "presented_caller_id",
]

_DIGITS_RE: Final = re.compile(r"[0-9]+")
_AREA_CODE_RE: Final = re.compile(r"0[1-9][0-9]{1,2}")


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How numbers look on this installation's trunk."""

    country_code: str = "86"
    #: Meizhou.
    local_area_code: str = "0753"
    #: Local landlines arrive without the area code on most trunks; how many
    #: subscriber digits they have is trunk- and city-dependent.
    local_subscriber_lengths: tuple[int, ...] = (7, 8)
    #: Carrier "IP long distance" prefixes dialled before the real number.
    ip_dial_prefixes: tuple[str, ...] = ("12593", "17951", "17911", "17909")
    #: Caller ID presented when dialling out; "" means not configured.
    hotline_number: str = ""
    #: Some trunks only route an out-of-town mobile when it is dialled with a
    #: leading 0, like a long-distance landline. On input the 0 is always accepted.
    out_of_town_mobile_prefix_zero: bool = True

    def __post_init__(self) -> None:
        # A bad plan would silently split one person into several keys, so it is
        # refused when the configuration is read, not discovered in call records.
        if not _DIGITS_RE.fullmatch(self.country_code):
            raise ValueError("country_code must be digits, e.g. '86'")
        if not _AREA_CODE_RE.fullmatch(self.local_area_code):
            raise ValueError("local_area_code must be 0 + 2-3 digits, e.g. '0753'")
        if not self.local_subscriber_lengths or any(
            not 5 <= n <= 8 for n in self.local_subscriber_lengths
        ):
            raise ValueError("local_subscriber_lengths must be lengths between 5 and 8")
        if any(not _DIGITS_RE.fullmatch(p) for p in self.ip_dial_prefixes):
            raise ValueError("ip_dial_prefixes must be digits")
        if self.hotline_number and not _DIGITS_RE.fullmatch(self.hotline_number):
            raise ValueError("hotline_number must be digits or empty")


DEFAULT_PLAN: Final = NumberPlan()


class NumberKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    #: Short service numbers (110, 12345, 95588, 96xxx) and 400/800 numbers.
    SERVICE = "service"
    INTERNATIONAL = "international"
    ANONYMOUS = "anonymous"
    INVALID = "invalid"


_DIALLABLE: Final = frozenset(
    {NumberKind.MOBILE, NumberKind.LANDLINE, NumberKind.SERVICE, NumberKind.INTERNATIONAL}
)


@dataclass(frozen=True, slots=True, repr=False)
class PhoneKey:
    """A normalised number. Two keys are equal when they name the same line.

    ``key`` is the canonical form: mobile ``13923001234``; landline national with
    the trunk 0 ``075321234567``; service ``95588`` / ``4001234567``;
    international E.164 ``+14155550100``; ``""`` when anonymous or invalid.
    """

    key: str
    kind: NumberKind
    #: ``0753`` for a Meizhou landline, ``020`` for Guangzhou; None otherwise.
    area_code: str | None
    #: What came in (cut to a bounded length), for debugging only. Not part of
    #: equality, so keys from different spellings compare equal.
    raw: str = field(default="", compare=False)

    @property
    def diallable(self) -> bool:
        return self.kind in _DIALLABLE

    def __repr__(self) -> str:
        # Keys end up in logs through reprs and exceptions; show them masked.
        return (
            f"PhoneKey(key={mask_phone(self.key)!r}, kind={self.kind.value!r}, "
            f"area_code={self.area_code!r})"
        )


# ---------------------------------------------------------------------------
# Input cleaning

#: Longer input is not a number (a real SIP URI with parameters stays well below);
#: refusing it first bounds the work on a 10 000-character field.
_MAX_RAW: Final = 256
#: The longest real digit string: IP prefix (5) + 0086 (4) + 0 + 11-digit mobile.
_MAX_DIGITS: Final = 24

_ANONYMOUS: Final = frozenset(
    {"anonymous", "unknown", "restricted", "private", "withheld", "unavailable", "匿名", "未知"}
)
# Whitespace (full-width space included), ASCII separators and every Unicode dash
# that NFKC leaves alone (em/en dash, minus sign, katakana long sound mark as typed
# by Chinese IMEs for a dash).
_SEPARATORS_RE: Final = re.compile(r"[\s.()\[\]/\-\u2010-\u2015\u2212\u30fc\ufe58\ufe63]+")
# ASCII only: \d would also accept Arabic-Indic and other Unicode digits.
_NUMBER_RE: Final = re.compile(r"(\+?)([0-9]{3,24})", re.ASCII)
_MOBILE_RE: Final = re.compile(r"1[3-9][0-9]{9}")
# 3-digit 1xx (110, 119, 120, 114), 5-digit 10xxx/11xxx/12xxx (10086, 11185,
# 12345, 12315), 5-6 digit 95xxx/96xxx, and 400/800 numbers.
_SERVICE_RE: Final = re.compile(r"1[0-9]{2}|1[0-2][0-9]{3}|9[56][0-9]{3,4}|[48]00[0-9]{7}")
_URI_SCHEMES: Final = ("sip:", "sips:", "tel:")


def _uri_user(text: str) -> str:
    """``<sip:+8613923001234@host;user=phone>`` → ``+8613923001234``."""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text[:5].casefold().startswith(_URI_SCHEMES):
        text = text.split(":", 1)[1]
        text = text.split("@", 1)[0].split(";", 1)[0].strip()
    return text


# ---------------------------------------------------------------------------
# Classification of a clean digit string


class _Result(NamedTuple):
    key: str
    kind: NumberKind
    area_code: str | None


def _is_local_subscriber(digits: str, plan: NumberPlan) -> bool:
    # 0 is the trunk prefix and 1 starts mobiles and service codes, so neither
    # begins a subscriber number; a service code of the same length wins, so the
    # subscriber digits dialled back always come back as the same landline.
    return (
        len(digits) in plan.local_subscriber_lengths
        and digits[0] not in "01"
        and _SERVICE_RE.fullmatch(digits) is None
    )


@lru_cache(maxsize=4096)
def _other_landline(national: str, country_code: str) -> _Result | None:
    """A landline outside the local area, validated by ``phonenumbers``.

    Cached: validation is the one slow step (~10 µs) and the same few numbers
    call again and again.
    """
    if not national or national[0] == "0" or len(national) > 12:
        return None
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(national))
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    area_length = phonenumbers.length_of_geographical_area_code(number)
    if area_length not in (2, 3):
        return None
    return _Result("0" + national, NumberKind.LANDLINE, "0" + national[:area_length])


def _national(national: str, plan: NumberPlan) -> _Result | None:
    """A national number without the trunk 0: a mobile or a landline with area code."""
    if _MOBILE_RE.fullmatch(national):
        return _Result(national, NumberKind.MOBILE, None)
    local = plan.local_area_code[1:]
    if national.startswith(local):
        # The plan, not phonenumbers, decides local numbers: its metadata has
        # Meizhou at 7 digits while the trunk delivers 8-digit numbers too.
        # Area codes are prefix-free, so nothing else starts with the local one.
        subscriber = national[len(local) :]
        if _is_local_subscriber(subscriber, plan):
            return _Result("0" + national, NumberKind.LANDLINE, plan.local_area_code)
        return None
    return _other_landline(national, plan.country_code)


def _after_country_code(national: str, plan: NumberPlan) -> _Result | None:
    if _SERVICE_RE.fullmatch(national):
        return _Result(national, NumberKind.SERVICE, None)
    # "+86 0753 …" keeps the trunk 0 that should have been dropped; common on forms.
    if national.startswith("0"):
        national = national[1:]
    return _national(national, plan)


def _international(digits: str) -> _Result | None:
    if not 7 <= len(digits) <= 15:
        return None
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    # "Possible" (right length for the country), not "valid": a caller from the
    # diaspora in a range newer than the metadata must keep a usable key.
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return _Result(e164, NumberKind.INTERNATIONAL, None)


def _classify(digits: str, plus: bool, plan: NumberPlan, *, ip_allowed: bool) -> _Result | None:
    country = plan.country_code
    if plus or digits.startswith("00"):
        rest = digits if plus else digits[2:]
        if rest.startswith(country):
            return _after_country_code(rest[len(country) :], plan)
        return _international(rest)
    if _MOBILE_RE.fullmatch(digits):
        return _Result(digits, NumberKind.MOBILE, None)
    if ip_allowed:
        for prefix in plan.ip_dial_prefixes:
            if digits.startswith(prefix) and len(digits) > len(prefix):
                after = _classify(digits[len(prefix) :], False, plan, ip_allowed=False)
                # IP dialling is for long-distance calls; "prefix + 12345" is not one.
                if after is not None and after.kind is not NumberKind.SERVICE:
                    return after
    # A bare 86 is only the country code when at least 10 digits follow (mobile,
    # landline with area code, 400/800): no local number or mobile is 12+ digits
    # long, whereas a local 8-digit number may well start with 86.
    if digits.startswith(country) and len(digits) - len(country) >= 10:
        return _after_country_code(digits[len(country) :], plan)
    if digits.startswith("0"):
        # Also strips the 0 some trunks put before out-of-town mobiles.
        return _national(digits[1:], plan)
    if _SERVICE_RE.fullmatch(digits):
        return _Result(digits, NumberKind.SERVICE, None)
    if _is_local_subscriber(digits, plan):
        return _Result(plan.local_area_code + digits, NumberKind.LANDLINE, plan.local_area_code)
    return None


def normalise(raw: str | None, plan: NumberPlan = DEFAULT_PLAN) -> PhoneKey:
    """Turn whatever a trunk, a form or an import delivers into one key. Never raises."""
    if raw is None:
        return PhoneKey("", NumberKind.ANONYMOUS, None, "")
    if len(raw) > _MAX_RAW:
        return PhoneKey("", NumberKind.INVALID, None, raw[:_MAX_RAW])
    # NFKC folds full-width digits, ＋ and the ideographic space to ASCII.
    text = unicodedata.normalize("NFKC", raw).strip()
    if text:
        text = _uri_user(text)
    if not text or text.casefold() in _ANONYMOUS:
        return PhoneKey("", NumberKind.ANONYMOUS, None, raw)
    match = _NUMBER_RE.fullmatch(_SEPARATORS_RE.sub("", text))
    result = None
    if match is not None:
        result = _classify(match.group(2), bool(match.group(1)), plan, ip_allowed=True)
    if result is None:
        return PhoneKey("", NumberKind.INVALID, None, raw)
    return PhoneKey(result.key, result.kind, result.area_code, raw)


# ---------------------------------------------------------------------------
# Mobile segments (the first 7 digits of a mobile identify its home city)


class _SegmentDb(Protocol):
    def find(self, phone_num: str) -> dict[str, str] | None: ...


class _Segment(NamedTuple):
    province: str
    city: str
    area_code: str


_segment_db: _SegmentDb | None = None
_segment_db_lock: Final = threading.Lock()


def _segments() -> _SegmentDb:
    global _segment_db
    db = _segment_db
    if db is None:
        # Several worker threads may ask at once; the file is read only once.
        with _segment_db_lock:
            db = _segment_db
            if db is None:
                db = _segment_db = cast(_SegmentDb, Phone())
    return db


def load_mobile_segments() -> None:
    """Read the mobile-segment database once (a file read: call it at start-up)."""
    _segments()


@lru_cache(maxsize=8192)
def _segment(segment: str) -> _Segment | None:
    found = _segments().find(segment)
    if not found:
        return None
    return _Segment(found["province"], found["city"], found["area_code"])


def _mobile_segment(key: PhoneKey) -> _Segment | None:
    if key.kind is not NumberKind.MOBILE or not _MOBILE_RE.fullmatch(key.key):
        return None
    return _segment(key.key[:7])


def mobile_region(key: PhoneKey) -> tuple[str, str] | None:
    """(province, city) of a mobile's home segment, e.g. ("广东", "梅州"); None if unknown."""
    segment = _mobile_segment(key)
    return None if segment is None else (segment.province, segment.city)


def is_local_landline(key: PhoneKey, plan: NumberPlan = DEFAULT_PLAN) -> bool:
    return key.kind is NumberKind.LANDLINE and key.area_code == plan.local_area_code


def is_meizhou(key: PhoneKey, plan: NumberPlan = DEFAULT_PLAN) -> bool:
    """A landline in the plan's area, or a mobile whose segment belongs to it.

    Mobiles are matched on the segment's area code rather than the city name so
    that the plan alone says what "local" means (0753 is 梅州 in the database).
    """
    if key.kind is NumberKind.LANDLINE:
        return key.area_code == plan.local_area_code
    segment = _mobile_segment(key)
    return segment is not None and segment.area_code == plan.local_area_code


# ---------------------------------------------------------------------------
# Dialling out


def dial_string(key: PhoneKey, plan: NumberPlan = DEFAULT_PLAN) -> str:
    """What to send to the trunk to reach ``key``; ``normalise`` of it gives ``key`` back."""
    match key.kind:
        case NumberKind.LANDLINE:
            area = key.area_code
            if area == plan.local_area_code:
                subscriber = key.key[len(area) :]
                # A key made under another plan may not fit this one's lengths;
                # the full national form reaches it too.
                if _is_local_subscriber(subscriber, plan):
                    return subscriber
            return key.key
        case NumberKind.MOBILE:
            # A mobile whose segment is unknown gets the 0 as well: a local
            # mobile dialled with 0 still connects, an out-of-town one without
            # it does not on trunks that need it.
            if plan.out_of_town_mobile_prefix_zero and not is_meizhou(key, plan):
                return "0" + key.key
            return key.key
        case NumberKind.SERVICE:
            return key.key
        case NumberKind.INTERNATIONAL:
            return "00" + key.key.removeprefix("+")
        case _:
            raise ValueError("not diallable")


def presented_caller_id(plan: NumberPlan = DEFAULT_PLAN) -> str:
    """The hotline number presented as caller ID when dialling out."""
    if not plan.hotline_number:
        raise ValueError("hotline_number is not configured")
    return plan.hotline_number
