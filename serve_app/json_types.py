"""Field types for request bodies whose JSON number rules differ from Python's.

JSON has one number type, and JSON Schema's `integer` is any number with a zero fractional part, so
`100.0` is a valid `integer` (schemathesis sends it). `json_int` takes it as 100 while still refusing what
the schema refuses: a string such as `"100"`, a bool, a fraction, NaN or an infinity (`json_int`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictInt


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_int(ge: int, le: int) -> Any:
    """An integer field within [ge, le] (`JsonInt` above). The bounds come before the validator in the
    annotation: after it, pydantic would publish them as unknown `ge`/`le` keys instead of
    `minimum`/`maximum`."""
    return Annotated[StrictInt, Field(ge=ge, le=le), BeforeValidator(_integral)]
