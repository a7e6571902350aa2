"""Webhook payloads in Meta's `whatsapp_business_account` envelope.

    {"object": "whatsapp_business_account",
     "entry": [{"id": "<WABA_ID>",
                "changes": [{"value": {"messaging_product": "whatsapp",
                                       "metadata": {"display_phone_number": "...",
                                                    "phone_number_id": "..."},
                                       "statuses": [...] | "contacts": [...], "messages": [...]},
                             "field": "messages"}]}]}

Status objects carry `id` (the wamid), `status`, `timestamp` (unix seconds as
a string), `recipient_id`, and - on `sent` and `delivered` - `conversation`
and `pricing` (per-message pricing, `pricing_model: "PMP"`); `expiration_timestamp`
only on `sent`. `failed` carries `errors[]` and no conversation or pricing.
Clients must treat `conversation` and `pricing` as optional: Meta adds and
drops them as its pricing model changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wa_ray.simulator.cloud_api.config import PhoneNumber


@dataclass(frozen=True)
class Billing:
    """What Meta reports about how a message is billed."""

    category: str  # "service", "utility", "marketing", ...
    billable: bool
    pricing_type: str  # "regular" | "free_customer_service" | "free_entry_point"
    conversation_id: str
    conversation_expires_at: float


def envelope(phone: PhoneNumber, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": phone.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": phone.display_phone_number,
                                "phone_number_id": phone.phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def status_payload(
    phone: PhoneNumber,
    *,
    wamid: str,
    status: str,
    timestamp: float,
    recipient_id: str,
    billing: Billing | None = None,
    errors: list[dict[str, Any]] | None = None,
    biz_opaque_callback_data: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(timestamp)),
        "recipient_id": recipient_id,
    }
    if biz_opaque_callback_data is not None:
        item["biz_opaque_callback_data"] = biz_opaque_callback_data
    if errors:
        item["errors"] = errors
    elif billing is not None and status in ("sent", "delivered"):
        conversation: dict[str, Any] = {
            "id": billing.conversation_id,
            "origin": {"type": billing.category},
        }
        if status == "sent":
            conversation["expiration_timestamp"] = str(int(billing.conversation_expires_at))
        item["conversation"] = conversation
        item["pricing"] = {
            "billable": billing.billable,
            "pricing_model": "PMP",
            "category": billing.category,
            "type": billing.pricing_type,
        }
    return envelope(phone, {"statuses": [item]})


def inbound_message_payload(
    phone: PhoneNumber,
    *,
    wamid: str,
    from_wa_id: str,
    profile_name: str,
    message: dict[str, Any],
    timestamp: float,
) -> dict[str, Any]:
    """Any kind: `message` carries `type` and its object (`image`, `location`, `contacts`, `reaction`, ...)
    and optionally `context`, exactly as Meta writes them; from, id and timestamp are added here."""
    return envelope(
        phone,
        {
            "contacts": [{"profile": {"name": profile_name}, "wa_id": from_wa_id}],
            "messages": [{"from": from_wa_id, "id": wamid, "timestamp": str(int(timestamp)), **message}],
        },
    )
