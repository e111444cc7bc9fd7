"""The number normaliser: one key per line, whatever the spelling.

Regions are checked against the real ``phone`` segment database, not assumed:
1392300 is 梅州 (area code 0753) and 1380100 is 北京.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phone import Phone  # type: ignore[import-untyped]

from smeline.routing.numbers import (
    DEFAULT_PLAN,
    NumberKind,
    NumberPlan,
    PhoneKey,
    dial_string,
    is_local_landline,
    is_meizhou,
    mobile_region,
    normalise,
    presented_caller_id,
)

MEIZHOU_MOBILE = "13923001234"
BEIJING_MOBILE = "13801001234"


def test_the_segment_database_really_places_the_sample_mobiles() -> None:
    db = Phone()
    meizhou = db.find(MEIZHOU_MOBILE[:7])
    beijing = db.find(BEIJING_MOBILE[:7])
    assert (meizhou["province"], meizhou["city"], meizhou["area_code"]) == ("广东", "梅州", "0753")
    assert (beijing["city"], beijing["area_code"]) == ("北京", "010")


# --- mobiles -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13923001234",
        "+8613923001234",
        "008613923001234",
        "8613923001234",
        "013923001234",
        "12593 13923001234",
        "1795113923001234",
        "17911 0086 13923001234",
        "17909 86 13923001234",
        "１３９２３００１２３４",
        "＋８６　１３９－２３００－１２３４",
        "139-2300-1234",
        "(139) 2300.1234",
        "139—2300—1234",
        "tel:+86-139-2300-1234",
        "sip:13923001234@10.0.0.1",
        "<sip:+8613923001234@trunk.example.cn:5060;user=phone>",
        "SIP:013923001234@host",
        "  13923001234\n",
    ],
)
def test_every_spelling_of_a_meizhou_mobile_gives_the_same_key(raw: str) -> None:
    key = normalise(raw)
    assert key.key == MEIZHOU_MOBILE
    assert key.kind is NumberKind.MOBILE
    assert key.area_code is None
    assert key.raw == raw
    assert is_meizhou(key)
    assert mobile_region(key) == ("广东", "梅州")


def test_keys_from_different_spellings_are_equal_and_hash_alike() -> None:
    a, b = normalise("+86 139 2300 1234"), normalise("013923001234")
    assert a == b
    assert len({a, b}) == 1


def test_an_out_of_town_mobile_is_not_meizhou() -> None:
    key = normalise("0" + BEIJING_MOBILE)
    assert key.key == BEIJING_MOBILE
    assert mobile_region(key) == ("北京", "北京")
    assert not is_meizhou(key)


def test_a_mobile_in_an_unknown_segment_has_no_region_and_is_not_meizhou() -> None:
    key = normalise("17900001234")
    assert key.kind is NumberKind.MOBILE
    assert mobile_region(key) is None
    assert not is_meizhou(key)


def test_a_mobile_of_eleven_digits_starting_with_an_ip_prefix_stays_a_mobile() -> None:
    # 17951 + 6 digits: what follows the "prefix" is no number, so it is a mobile.
    assert normalise("17951123456").key == "17951123456"


# --- landlines -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "0753 2123 4567",
        "0753-21234567",
        "+86 753 21234567",
        "+86 (0)753 21234567",
        "0086 753 21234567",
        "8675321234567",
        "86 0753 21234567",
        "21234567",
        "2123-4567",
        "17951 0753 21234567",
        "12593 21234567",
        "tel:+86-753-2123-4567",
    ],
)
def test_every_spelling_of_an_eight_digit_meizhou_landline_gives_the_same_key(raw: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == ("075321234567", NumberKind.LANDLINE, "0753")
    assert is_meizhou(key)
    assert is_local_landline(key)


@pytest.mark.parametrize("raw", ["2123456", "0753 212 3456", "+867532123456"])
def test_a_seven_digit_meizhou_landline_keeps_its_seven_digits(raw: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == ("07532123456", NumberKind.LANDLINE, "0753")
    assert is_meizhou(key)


def test_a_local_eight_digit_number_starting_with_86_is_not_read_as_a_country_code() -> None:
    key = normalise("86123456")
    assert (key.key, key.area_code) == ("075386123456", "0753")


@pytest.mark.parametrize("raw", ["020 8888 8888", "+86 20 88888888", "(020)88888888"])
def test_a_guangzhou_landline_keeps_its_area_code_and_is_not_meizhou(raw: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == ("02088888888", NumberKind.LANDLINE, "020")
    assert not is_meizhou(key)
    assert not is_local_landline(key)
    assert mobile_region(key) is None


def test_a_three_digit_area_code_elsewhere_is_recognised() -> None:
    key = normalise("0755-2123-4567")
    assert (key.key, key.area_code) == ("075521234567", "0755")


def test_a_landline_elsewhere_with_the_wrong_number_of_digits_is_invalid() -> None:
    assert normalise("0755 212345").kind is NumberKind.INVALID


def test_a_plan_with_only_eight_digit_subscribers_makes_seven_digit_numbers_invalid() -> None:
    plan = NumberPlan(local_subscriber_lengths=(8,))
    assert normalise("2123456", plan).kind is NumberKind.INVALID
    assert normalise("0753 2123456", plan).kind is NumberKind.INVALID
    assert normalise("21234567", plan).key == "075321234567"


def test_a_plan_for_another_city_makes_its_bare_numbers_local() -> None:
    plan = NumberPlan(local_area_code="020")
    key = normalise("88888888", plan)
    assert (key.key, key.area_code) == ("02088888888", "020")
    assert is_local_landline(key, plan)
    assert not is_local_landline(key)


# --- service and international numbers -----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("110", "110"),
        ("120", "120"),
        ("12345", "12345"),
        ("10086", "10086"),
        ("95588", "95588"),
        ("96166", "96166"),
        ("955880", "955880"),
        ("400-123-4567", "4001234567"),
        ("800 810 8888", "8008108888"),
        ("+86 400 123 4567", "4001234567"),
        ("+86 95588", "95588"),
    ],
)
def test_service_numbers_keep_their_digits(raw: str, expected: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == (expected, NumberKind.SERVICE, None)
    assert not is_meizhou(key)


def test_a_short_service_number_behind_an_ip_prefix_is_invalid() -> None:
    assert normalise("1795112345").kind is NumberKind.INVALID


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 415 555 0100", "+14155550100"),
        ("001 415 555 0100", "+14155550100"),
        ("00852 2123 4567", "+85221234567"),
        ("+852 2123 4567", "+85221234567"),
        ("+60 12-345 6789", "+60123456789"),
        ("17951 00852 21234567", "+85221234567"),
    ],
)
def test_other_countries_get_an_e164_key(raw: str, expected: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == (expected, NumberKind.INTERNATIONAL, None)
    assert not is_meizhou(key)


@pytest.mark.parametrize("raw", ["+999 1234 5678", "+1 23", "00 1"])
def test_an_unknown_country_code_or_impossible_length_is_invalid(raw: str) -> None:
    assert normalise(raw).kind is NumberKind.INVALID


# --- anonymous and garbage -------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "\u3000",
        "anonymous",
        "Anonymous",
        "ANONYMOUS",
        "unknown",
        "<unknown>",
        "restricted",
        "private",
        "Withheld",
        "匿名",
        "sip:anonymous@anonymous.invalid",
        "sip:@10.0.0.1",
    ],
)
def test_hidden_caller_ids_are_anonymous_with_an_empty_key(raw: str | None) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == ("", NumberKind.ANONYMOUS, None)
    assert not key.diallable


@pytest.mark.parametrize(
    "raw",
    [
        "sipp",
        "'; DROP TABLE calls; --",
        "<script>alert(1)</script>",
        "1" * 10_000,
        "9" * 300,
        " " * 10_000,
        "\x00",
        "139\x0023001234",
        "13923001234x",
        "13923001234 ext 8",
        "1392300123",
        "139230012345",
        "12",
        "+",
        "---",
        "1+3923001234",
        "٠١٣٩٢٣٠٠١٢٣٤",
        "0",
        "00",
        "0753",
        "8621234567",
        "8640012345678",
    ],
)
def test_garbage_is_invalid_with_an_empty_key_and_never_raises(raw: str) -> None:
    key = normalise(raw)
    assert (key.key, key.kind, key.area_code) == ("", NumberKind.INVALID, None)
    assert len(key.raw) <= 256


def test_an_ip_prefix_alone_is_a_short_code_not_garbage() -> None:
    # 12593 is also a valid 12xxx short number; only what follows it makes it a prefix.
    assert normalise("12593").kind is NumberKind.SERVICE


def test_the_repr_of_a_key_masks_the_number() -> None:
    text = repr(normalise("+86 139 2300 1234"))
    assert MEIZHOU_MOBILE not in text
    assert "1392300****" in text
    assert "+86" not in text


# --- dialling out ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "dialled"),
    [
        ("075321234567", "21234567"),
        ("2123456", "2123456"),
        ("020 8888 8888", "02088888888"),
        ("+86 755 2123 4567", "075521234567"),
        (MEIZHOU_MOBILE, MEIZHOU_MOBILE),
        (BEIJING_MOBILE, "0" + BEIJING_MOBILE),
        ("17900001234", "017900001234"),
        ("95588", "95588"),
        ("4001234567", "4001234567"),
        ("+1 415 555 0100", "0014155550100"),
        ("+852 2123 4567", "0085221234567"),
    ],
)
def test_dial_string_is_what_the_trunk_needs_for_each_kind(raw: str, dialled: str) -> None:
    assert dial_string(normalise(raw)) == dialled


def test_without_the_zero_rule_out_of_town_mobiles_are_dialled_as_eleven_digits() -> None:
    plan = NumberPlan(out_of_town_mobile_prefix_zero=False)
    assert dial_string(normalise(BEIJING_MOBILE, plan), plan) == BEIJING_MOBILE
    assert dial_string(normalise(MEIZHOU_MOBILE, plan), plan) == MEIZHOU_MOBILE


def test_a_local_key_that_does_not_fit_the_plan_is_dialled_in_full() -> None:
    plan = NumberPlan(local_subscriber_lengths=(8,))
    key = normalise("2123456")
    assert dial_string(key, plan) == "07532123456"


@pytest.mark.parametrize("raw", [None, "anonymous", "sipp"])
def test_anonymous_and_invalid_keys_are_not_diallable(raw: str | None) -> None:
    with pytest.raises(ValueError, match="not diallable"):
        dial_string(normalise(raw))


def test_the_presented_caller_id_is_the_configured_hotline() -> None:
    assert presented_caller_id(NumberPlan(hotline_number="12345")) == "12345"


def test_dialling_out_without_a_hotline_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not configured"):
        presented_caller_id(DEFAULT_PLAN)


@pytest.mark.parametrize(
    "changes",
    [
        {"country_code": "+86"},
        {"local_area_code": "753"},
        {"local_area_code": "07531"},
        {"local_subscriber_lengths": ()},
        {"local_subscriber_lengths": (11,)},
        {"ip_dial_prefixes": ("179-51",)},
        {"hotline_number": "12345 "},
    ],
)
def test_a_malformed_number_plan_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(DEFAULT_PLAN, **changes)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------

_SEPARATORS = st.sampled_from(["", " ", "-", ".", "\u3000", "－"])
_MOBILES = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
_LOCAL = st.from_regex(r"[2-8][0-9]{6,7}", fullmatch=True)
_NATIONAL = st.tuples(
    st.sampled_from(["010", "020", "021", "0753", "0755", "0768", "0898"]),
    st.from_regex(r"[2-8][0-9]{7}", fullmatch=True),
).map("".join)
_SERVICE = st.sampled_from(["110", "12345", "10086", "95588", "96166", "4001234567"])
_INTERNATIONAL = st.sampled_from(["+14155550100", "+85221234567", "+60123456789", "+442079460000"])
_PREFIXES = st.sampled_from(["", "+86", "0086", "86", "0", "17951", "12593 0", "tel:"])
_PLANS = st.sampled_from(
    [
        DEFAULT_PLAN,
        NumberPlan(out_of_town_mobile_prefix_zero=False),
        NumberPlan(local_subscriber_lengths=(8,)),
        NumberPlan(local_area_code="020"),
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_normalise_never_raises_on_arbitrary_text(raw: str) -> None:
    key = normalise(raw)
    assert (key.key == "") == (key.kind in (NumberKind.ANONYMOUS, NumberKind.INVALID))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(list("0123456789+-() ．０１８６\u3000@:;<>sipte")), max_size=30).map(
        "".join
    )
)
def test_normalise_never_raises_on_number_like_text(raw: str) -> None:
    key = normalise(raw)
    if key.kind is NumberKind.MOBILE:
        assert len(key.key) == 11
    if key.kind is NumberKind.LANDLINE:
        assert key.key.startswith("0")
        assert key.area_code is not None
        assert key.key.startswith(key.area_code)


@settings(max_examples=500, deadline=None)
@given(
    prefix=_PREFIXES,
    number=st.one_of(_MOBILES, _LOCAL, _NATIONAL, _SERVICE, _INTERNATIONAL),
    separator=_SEPARATORS,
    plan=_PLANS,
)
def test_dialling_a_key_and_normalising_the_dial_string_gives_the_same_key(
    prefix: str, number: str, separator: str, plan: NumberPlan
) -> None:
    raw = prefix + separator + number if not number.startswith("+") else number
    key = normalise(raw, plan)
    assume(key.diallable)
    again = normalise(dial_string(key, plan), plan)
    assert again == key
    assert (again.key, again.kind, again.area_code) == (key.key, key.kind, key.area_code)


@settings(max_examples=200, deadline=None)
@given(number=_MOBILES, separator=_SEPARATORS, prefix=_PREFIXES)
def test_every_prefix_and_separator_leaves_a_mobile_key_unchanged(
    number: str, separator: str, prefix: str
) -> None:
    spelled = separator.join([number[:3], number[3:7], number[7:]])
    assert normalise(prefix + spelled).key == number


def test_a_phone_key_built_by_hand_round_trips_too() -> None:
    key = PhoneKey("02088888888", NumberKind.LANDLINE, "020")
    assert normalise(dial_string(key)) == key
