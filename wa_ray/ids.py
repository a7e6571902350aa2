"""Identifier rules from the design: nothing else ever reaches a path or a Redis key."""

from __future__ import annotations

import re
import secrets

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PHONE_PATTERN = r"^[1-9][0-9]{6,14}$"  # E.164 digits without '+'

_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))


def require_id(value: str, what: str = "id") -> str:
    if not is_valid_id(value):
        raise ValueError(f"invalid {what}: must match {ID_PATTERN}")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
