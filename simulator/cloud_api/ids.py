"""Identifiers that look like Meta's.

A real `wamid` is `wamid.` + base64 of a small protobuf-like record holding the
recipient number and a hex message key (e.g. `wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTND...`).
We build the same structure so ids have realistic length and alphabet
(`+`, `/`, `=` may appear): code that squeezes them into a short column or a
URL path without encoding fails here as it would in production.
"""

from __future__ import annotations

import base64
import secrets


def new_wamid(wa_id: str) -> str:
    number = wa_id.encode("ascii")[:120]
    key = secrets.token_hex(10).upper().encode("ascii")
    raw = (
        b"\x1c\x18" + bytes([len(number)]) + number
        + b"\x15\x02\x00\x11\x18" + bytes([len(key)]) + key + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode("ascii")


def new_fbtrace_id() -> str:
    # Graph trace ids are ~11-27 url-safe characters.
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode("ascii").rstrip("=")


def new_conversation_id() -> str:
    return secrets.token_hex(16)


def new_challenge() -> str:
    # Meta's hub.challenge is a decimal number sent as a string.
    return str(secrets.randbelow(9 * 10**9) + 10**9)
