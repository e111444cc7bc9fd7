"""Unified social credit code (统一社会信用代码), GB 32100-2015."""

from __future__ import annotations

_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(_CHARSET)}


def check_character(first17: str) -> str:
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHARSET[(31 - total % 31) % 31]


def normalise_credit_code(code: str) -> str:
    """Upper-cased, validated code; ValueError with a reason otherwise.

    Lower case is accepted (people type it) and stored upper case. The letters
    I, O, S, V and Z are not in the code's character set.
    """
    value = code.strip().upper()
    if len(value) != 18:
        raise ValueError("unified social credit code must have 18 characters")
    bad = sorted({c for c in value if c not in _VALUE})
    if bad:
        raise ValueError("unified social credit code contains invalid characters")
    if check_character(value[:17]) != value[17]:
        raise ValueError("unified social credit code check character is wrong")
    return value
