"""Reading fields of JSON a provider sent (a Meta webhook, a page's message) without trusting its shape:
whatever is not the documented type reads as absent, never as an exception."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list; anything else (a string, a number, null, a list of ints) is no objects."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text_of(value: Any, limit: int = 4096) -> str | None:
    """A JSON string field, bounded; a number Meta might send as one is taken as its text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    return value[:limit] if isinstance(value, str) else None
