"""The conversation API's cursors and id checks, without a service: what it gives back it takes, and
anything else is a 422 that does not echo it."""

from __future__ import annotations

import pytest

from wa_ray.serve_app.conversations_api import (
    _chat_cursor,
    _contact_cursor,
    _message_cursor,
    decode_cursor,
    encode_cursor,
    is_chat_id,
    is_group_id,
)
from wa_ray.serve_app.errors import ApiError


def test_cursors_round_trip() -> None:
    chat = [1765000000, "15551234567@c.us"]
    assert _chat_cursor(encode_cursor(chat)) == chat
    assert _contact_cursor(encode_cursor("208715423957035@lid")) == "208715423957035@lid"
    msg = "false_120363041234567890@g.us_3A0F2C9B_15551234567@c.us"
    assert _message_cursor(encode_cursor(msg)) == msg
    assert _chat_cursor(None) is None and _message_cursor(None) is None and _contact_cursor(None) is None


@pytest.mark.parametrize("text", ["", "!!", "a" * 401, "e30", encode_cursor([1, "1@c.us"]),
                                  encode_cursor([1, "15551234567@c.us\n"]), encode_cursor([True, "15551234567@c.us"]),
                                  encode_cursor([2**53, "15551234567@c.us"]), encode_cursor("x" * 10)])
def test_bad_cursors_are_422_without_echo(text: str) -> None:
    for parse in (_chat_cursor, _contact_cursor, _message_cursor):
        with pytest.raises(ApiError) as caught:
            parse(text)
        assert caught.value.status == 422 and caught.value.code == "invalid_cursor"
        assert not text or text not in caught.value.message


def test_group_cursor_is_not_a_contact_cursor() -> None:
    with pytest.raises(ApiError):
        _contact_cursor(encode_cursor("120363041234567890@g.us"))
    with pytest.raises(ApiError):
        decode_cursor("=" * 8)


def test_ids_are_whole_matches() -> None:
    assert is_chat_id("15551234567@c.us") and is_chat_id("120363041234567890@g.us") and is_chat_id("1@lid")
    for bad in ("15551234567@c.us\n", "15551234567@c.us ", "x15551234567@c.us", "15551234567@c.usx", ""):
        assert not is_chat_id(bad)
    assert is_group_id("120363041234567890@g.us") and not is_group_id("120363041234567890@g.us\n")
