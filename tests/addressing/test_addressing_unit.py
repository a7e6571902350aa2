"""Section 5 of the conversations contract, on the normalizer alone: who wrote a page message and where.
A `@lid` is reported as the page names it and is never read as a phone number."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from wa_ray.actors.inbound_webjs import addressing, change, received
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.sessions.state import PageSignal

ME = "15559870000@c.us"


async def _nothing(_info: Any) -> dict[str, Any]:
    raise AssertionError("no media here")


async def _nobody(_wa_id: str) -> str | None:
    return None


async def _received(msg: dict[str, Any]) -> dict[str, Any]:
    data = await received({"id": "x1", "type": "chat", "body": "hi", "t": 1, "to": ME, **msg},
                          fetch_media=_nothing, message_of=_nobody)
    assert data is not None
    TypeAdapter(MessageReceivedData).validate_python(data)
    return data


async def test_one_to_one_from_a_phone() -> None:
    data = await _received({"from": "15551230001@c.us", "from_pn": None})
    assert (data["chat_id"], data["from"], data["from_id"], data["author"], data["is_group"]) == (
        "15551230001@c.us", "15551230001", "15551230001@c.us", None, False)
    assert data["to"] == "15559870000"


async def test_group_sender_is_the_author_not_the_group() -> None:
    data = await _received({"from": "120363012345678901@g.us", "author": "15551230001@c.us"})
    assert data["chat_id"] == "120363012345678901@g.us"
    assert data["is_group"] is True
    assert data["from"] == "15551230001"  # never the group id's user part
    assert data["author"] == "15551230001@c.us"
    assert data["from_id"] == "15551230001@c.us"


async def test_group_author_by_lid_resolved_where_the_page_knows_it() -> None:
    known = await _received({"from": "120363012345678901@g.us", "author": "99887766554433@lid",
                             "author_pn": "15551230002@c.us"})
    assert (known["from"], known["from_id"], known["author"]) == (
        "15551230002", "99887766554433@lid", "15551230002@c.us")
    unknown = await _received({"from": "120363012345678901@g.us", "author": "99887766554434@lid",
                               "author_pn": None})
    assert (unknown["from"], unknown["from_id"], unknown["author"]) == (None, "99887766554434@lid",
                                                                         "99887766554434@lid")


async def test_lid_sender_never_becomes_a_number() -> None:
    known = await _received({"from": "123456789012345@lid", "from_pn": "15551230003@c.us"})
    assert (known["chat_id"], known["from"], known["from_id"], known["author"]) == (
        "123456789012345@lid", "15551230003", "123456789012345@lid", None)
    unknown = await _received({"from": "123456789012345@lid", "from_pn": None})
    assert unknown["from"] is None and unknown["from_id"] == "123456789012345@lid"
    # a page that reports garbage as the phone wid: still no number
    odd = await _received({"from": "123456789012345@lid", "from_pn": "123456789012345@lid"})
    assert odd["from"] is None


def test_ours_names_the_recipient_chat() -> None:
    where = addressing({"fromMe": True, "from": ME, "to": "15551230001@c.us"})
    assert where == {"chat_id": "15551230001@c.us", "from": "15559870000", "from_id": ME, "author": None,
                     "is_group": False}
    assert addressing({"to": ME}) is None


async def test_changes_by_a_lid_carry_no_fake_number() -> None:
    revoked = await change(PageSignal.REVOKE, {"id": "x2", "from": "123456789012345@lid", "from_pn": None},
                           message_of=_nobody)
    assert revoked is not None and revoked.data["from"] is None
    edited = await change(PageSignal.EDIT, {"id": "x2", "edit_id": "e1", "text": "t", "from": "123456789012345@lid",
                                            "from_pn": "15551230003@c.us"}, message_of=_nobody)
    assert edited is not None and edited.data["from"] == "15551230003"


def test_page_ids_of_a_recipient() -> None:
    from wa_ray.sessions.page import chat_id, outgoing_id

    assert chat_id("15551230001") == "15551230001@c.us"
    assert chat_id("120363012345678901@g.us") == "120363012345678901@g.us"
    assert chat_id("123456789012345@lid") == "123456789012345@lid"
    assert outgoing_id("15551230001", "3EB0AA") == "true_15551230001@c.us_3EB0AA"
    assert outgoing_id("120363012345678901@g.us", "3EB0AA", "15559870000") == (
        "true_120363012345678901@g.us_3EB0AA_15559870000@c.us")


def test_send_body_recipients() -> None:
    import pytest
    from pydantic import TypeAdapter, ValidationError

    from wa_ray.serve_app.send_models import SendMessage

    adapter = TypeAdapter(SendMessage)
    for to in ("15551230001", "120363012345678901@g.us", "15551230001-1600000000@g.us", "123456789012345@lid"):
        assert adapter.validate_python({"to": to, "text": "x"}).to == to
    for to in ("15551230001@c.us", "abc@g.us", "1@g.us", "12@lid@lid", "123@lid ", "+15551230001", "1" * 40 + "@lid",
               "123@s.whatsapp.net", ""):
        with pytest.raises(ValidationError):
            adapter.validate_python({"to": to, "text": "x"})
