"""Work-order numbers.

Two identifiers per work order:

* the readable number ``MZ20261122-0001``: prefix, the Beijing date of creation
  and a per-day sequence;
* the short reference, 8 digits, read to a caller digit by digit and sent by SMS.
  Seven digits are the row id run through a bijection of 0..9,999,999 (so
  consecutive work orders do not get consecutive references that invite
  guessing), the eighth is a Luhn check digit that catches a misheard digit.
  The reference is a pure function of the id, so looking one up inverts it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

_MOD = 10_000_000
_MUL = 7_654_321  # coprime with 10, so multiplication modulo 10^7 is a bijection
_ADD = 3_141_592
_MUL_INV = pow(_MUL, -1, _MOD)

MAX_TICKETS = _MOD - 1


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def short_ref(ticket_id: int) -> str:
    if not 0 < ticket_id <= MAX_TICKETS:
        raise ValueError("ticket id outside the short-reference range")
    body = f"{(ticket_id * _MUL + _ADD) % _MOD:07d}"
    return body + luhn_digit(body)


def ticket_id_from_ref(ref: str) -> int | None:
    """The id behind a short reference, or None when it is not a valid one."""
    ref = ref.strip()
    if len(ref) != 8 or not ref.isascii() or not ref.isdigit():
        return None
    body, check = ref[:7], ref[7]
    if luhn_digit(body) != check:
        return None
    ticket_id = ((int(body) - _ADD) * _MUL_INV) % _MOD
    return ticket_id or None


def day_key(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y%m%d")


def format_number(prefix: str, day: str, seq: int) -> str:
    return f"{prefix}{day}-{seq:04d}"
