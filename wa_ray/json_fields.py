"""Reading fields of JSON a provider sent (a Meta webhook, a page's message) without trusting its shape:
whatever is not the documented type reads as absent, never as an exception.

Two policies, one per provider, named so a reader picks one on purpose:

* lenient (`text_of`, `coordinate_of`): Meta's webhooks, whose documented strings and numbers have been
  seen as each other; a number is taken as its text, a numeric string as its number.
* exact (`string_of`, `number_of`): the page bridge's reports, built by our own serializer from typed
  page fields; only the JSON type itself counts.
"""

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


def string_of(value: Any, limit: int = 65536) -> str | None:
    """Exact: a JSON string, bounded; anything else (a number too) is absent."""
    return value[:limit] if isinstance(value, str) else None


def number_of(value: Any) -> float | None:
    """Exact: a JSON number (never a bool, never a numeric string) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def coordinate_of(value: Any) -> float | None:
    """Lenient: a latitude or longitude sent as a number or a numeric string, within +-180."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if -180.0 <= number <= 180.0 else None
