"""Masking of phone numbers for logs and for roles that do not need them."""

from __future__ import annotations

import re

# Runs of 7+ digits (optionally +86 / separators inside) are treated as phone numbers;
# a run next to '*' is already masked and is left alone.
_PHONE_RE = re.compile(r"(?<![\d*])(\+?\d[\d\- ]{5,}\d)(?![\d*])")


def mask_phone(phone: str | None) -> str | None:
    """``13800001234`` → ``1380000****``: the last four digits are hidden."""
    if phone is None:
        return None
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "".join(digits[:-4]) + "****"


def mask_phones_in_text(text: str) -> str:
    def _sub(match: re.Match[str]) -> str:
        raw = match.group(1)
        digits = sum(c.isdigit() for c in raw)
        if digits < 7:
            return raw
        return mask_phone(raw) or raw

    return _PHONE_RE.sub(_sub, text)
