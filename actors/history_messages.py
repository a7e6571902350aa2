"""A message the page already holds (history: a sync, a listing) as the typed payload of `message.received`.

The page serializes every message that leaves it with one function (`window.__waray.serializeMsg`), so a
history message is parsed by the same normalizer as a live one (actors/inbound_webjs.received): the same
kinds, fields and bounds, plus `from_me`. Only the media differs.

Invariants:
* The shape is `message.received`'s (serve_app/event_models.MessageReceivedData) plus `from_me: bool`.
* `chat_id` names the conversation (inbound_webjs.addressing): for a message we sent (from_me), the recipient.
* Media is never downloaded here: history can hold thousands of media and a sync must not pull them. Its
  id is announced `pending` (the first GET downloads it from the page, serve_app/lazy_media.py) whatever
  the workspace's download mode, except `off`, which announces no id; over the policy's `max_bytes` it
  is `too_large`, as live inbound says.
* The media id is stable per (workspace, session, WhatsApp message id): a repeated sync or listing names the
  same media, and its pending record is written once (PendingMediaStore.allot_stable).
* A report without a string id or without its chat gives None (nothing to name it by); never an exception.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wa_ray.actors.inbound_webjs import ID_MAX, MessageOf, PageMediaInfo, received
from wa_ray.actors.media_intake import intake
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicy


async def _nobody(_wa_id: str) -> str | None:
    return None


async def _no_bytes() -> Any:
    raise RuntimeError("history media is never downloaded at announcement")


def _wid(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= ID_MAX else None


async def history_payload(ws: str, sid: str, raw: dict[str, Any], pending: PendingMediaStore, *,
                          policy: MediaPolicy, message_of: MessageOf | None = None) -> dict[str, Any] | None:
    """The payload of one serialized page message (`raw`), for `messages.synced` and message listings.

    `policy`: the workspace's media policy (read once by the caller for a whole batch); `message_of` finds
    our msg_... id of a quoted WhatsApp id (MessageStore.by_wa_id), none when not given."""
    if not isinstance(raw, dict) or _wid(raw.get("id")) is None:
        return None
    announce = policy if policy.download == "off" else replace(policy, download="lazy")

    async def media(info: PageMediaInfo) -> dict[str, Any]:
        async def defer(described: dict[str, Any]) -> str:
            record = await pending.allot_stable(
                ws, f"{sid}\x00{info.wa_message_id}", source="webjs", max_bytes=policy.max_bytes,
                locator={"session_id": sid, "wa_message_id": info.wa_message_id}, **described)
            return record.media_id

        # the store is never touched: `lazy` and `off` download nothing
        return await intake(None, announce, ws, mimetype=info.mimetype,  # type: ignore[arg-type]
                            filename=info.filename, size_hint=info.size, sha256=info.sha256,
                            chunks_factory=_no_bytes, defer=defer)

    data = await received(raw, fetch_media=media, message_of=message_of or _nobody)
    if data is None:
        return None
    data["from_me"] = raw.get("fromMe") is True
    return data
