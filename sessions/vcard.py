"""A contacts message's structured contacts (the Cloud API's shape, wa_ray/message_kinds.py) as the vCard 3.0
text WhatsApp Web sends, one card per contact.

Every value is escaped (RFC 2426: backslash, comma, semicolon, newline), so a name can never end its line and
inject a property of its own. Phone lines carry `waid=` when the contact names its WhatsApp id, which is what
makes the phone offer "Message" on the card.
"""

from __future__ import annotations

import re
from typing import Any

_WAID = re.compile(r"^[0-9]{5,20}$")


def escape(value: Any) -> str:
    text = str(value or "")
    text = text.replace("\\", "\\\\").replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return text.replace(",", "\\,").replace(";", "\\;")


def _param(value: Any) -> str:
    """A parameter value (a phone or email type): letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9-]", "", str(value or ""))[:20]


def vcard(contact: dict[str, Any]) -> str:
    name = contact.get("name") or {}
    formatted = name.get("formatted_name") or ""
    n = ";".join(escape(name.get(k)) for k in ("last_name", "first_name", "middle_name", "prefix", "suffix"))
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"N:{n}", f"FN:{escape(formatted)}"]
    org = contact.get("org") or {}
    if org.get("company"):
        lines.append(f"ORG:{escape(org['company'])}" + (f";{escape(org['department'])}" if org.get("department") else ""))
    if org.get("title"):
        lines.append(f"TITLE:{escape(org['title'])}")
    for phone in contact.get("phones") or []:
        params = "TEL"
        if phone.get("type"):
            params += f";type={_param(phone['type']).upper()}"
        wa_id = str(phone.get("wa_id") or "")
        if _WAID.match(wa_id):
            params += f";waid={wa_id}"
        lines.append(f"{params}:{escape(phone.get('phone'))}")
    for email in contact.get("emails") or []:
        params = "EMAIL" + (f";type={_param(email['type']).upper()}" if email.get("type") else "")
        lines.append(f"{params}:{escape(email.get('email'))}")
    lines.append("END:VCARD")
    return "\n".join(lines)


def page_cards(contacts: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the bridge sends: `{displayName, vcard}` per contact (a multi_vcard's list entries)."""
    return [{"displayName": (c.get("name") or {}).get("formatted_name") or "", "vcard": vcard(c)} for c in contacts]
