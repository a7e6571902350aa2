"""What a phone shows of a message a linked page sent it: the kind and its content, read from the wire fields
the page's modules put on the message (static/media.js, static/kinds.js), media resolved through the upload
it names. The phone API's inbox (GET /_phone/{number}/inbox) carries these fields, so tests check what
arrived, not what was meant to be sent.
"""

from __future__ import annotations

from typing import Any

from wa_ray.simulator.wa_web.mms import MmsStore

# WhatsApp message type -> the kind a gateway's user speaks of.
KIND_OF_TYPE = {
    "chat": "text", "image": "image", "video": "video", "audio": "audio", "ptt": "voice", "document": "document",
    "sticker": "sticker", "location": "location", "vcard": "contacts", "multi_vcard": "contacts",
    "reaction": "reaction", "poll_creation": "poll",
}
MEDIA_TYPES = frozenset({"image", "video", "audio", "ptt", "document", "sticker"})


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def received_fields(wire: dict[str, Any], mms: MmsStore) -> dict[str, Any]:
    """The phone's view of one sent message, beyond id/from/to/body/type."""
    wa_type = str(wire.get("type") or "chat")
    out: dict[str, Any] = {"kind": KIND_OF_TYPE.get(wa_type, "unknown")}
    if wa_type in MEDIA_TYPES:
        upload = mms.get(_str(wire.get("directPath")))
        out["media"] = None if upload is None else {
            "mimetype": upload.mimetype, "size": upload.size, "sha256": upload.sha256,
            "filename": _str(wire.get("filename")), "direct_path": upload.direct_path,
        }
        out["caption"] = _str(wire.get("caption"))
    elif wa_type == "location":
        out["location"] = {"latitude": wire.get("lat"), "longitude": wire.get("lng"),
                           "description": _str(wire.get("loc")) or ""}
    elif wa_type == "vcard":
        out["vcards"] = [_str(wire.get("body")) or ""]
        out["vcard_name"] = _str(wire.get("vcardFormattedName"))
    elif wa_type == "multi_vcard":
        cards = wire.get("vcardList") if isinstance(wire.get("vcardList"), list) else []
        out["vcards"] = [str(c.get("vcard") or "") for c in cards if isinstance(c, dict)]
    elif wa_type == "poll_creation":
        options = wire.get("pollOptions") if isinstance(wire.get("pollOptions"), list) else []
        out["poll"] = {"name": _str(wire.get("pollName")),
                       "options": [str(o.get("name")) for o in options if isinstance(o, dict)],
                       "selectable_count": wire.get("pollSelectableOptionsCount")}
    elif wa_type == "reaction":
        out["reaction"] = {"target_id": _str(wire.get("reactionParentId")),
                           "target_from_me": bool(wire.get("reactionParentFromMe")),
                           "emoji": _str(wire.get("reactionText")) or ""}
    elif wa_type == "chat":
        out["link_preview"] = ({"url": _str(wire.get("canonicalUrl")), "matched": _str(wire.get("matchedText"))}
                               if wire.get("preview") else None)
    if wire.get("quotedStanzaID"):
        out["quoted_id"] = _str(wire.get("quotedStanzaID"))
    return out
