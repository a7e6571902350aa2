"""Cloud API inbound: Meta's webhook message objects of every kind, as our typed inbound events.

Meta's message object (developers.facebook.com, "messages" webhook reference) carries `type` and an object
of that name: `text.body`; `image`/`video`/`audio`/`document`/`sticker` with `id` (a media id to fetch),
`mime_type`, `sha256`, `caption` (image/video/document), `filename` (document), `voice: true` (a voice
note); `location` {latitude, longitude, name, address}; `contacts` [{name, phones, ...}]; `reaction`
{message_id, emoji}; `context` {from, id} on a reply; `unsupported` (or anything else) for what the Cloud
API does not deliver. `normalize` maps each to the contract's event shape:

* `message.received` with `kind` (a Kind value, or "unknown"), `text` (the text or the caption), `media`,
  `location`, `contacts`, `reply_to` beside today's fields (`type` keeps Meta's raw type, "chat" for text);
* `message.reaction` for a reaction.

Media is downloaded as Meta documents it: `GET /{media-id}` with the workspace's access token gives a url,
fetched with the same token, both through the egress guard (the Graph base url is the workspace's, so
the url it answers is never trusted further than the guard allows); the bytes stream into the media store
up to the workspace's cap. Whether and up to what size is the workspace's media policy, applied by the
shared intake (actors/media_intake.py): the wait is bounded, and a download that fails or takes too long
leaves the event with `media.status` "failed". Under a `lazy` policy nothing is fetched here: the media id
is allotted with Meta's media id as its source (`pending`), and `media_chunks` fetches it on the first GET.
Nothing here raises on a malformed object: a field that is not the documented shape is absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from wa_ray.actors.cloud_api import CloudApiClient, MediaDownloadFailed
from wa_ray.actors.media_intake import intake
from wa_ray.json_fields import as_dict, coordinate_of, dicts, text_of
from wa_ray.events import MESSAGE_RECEIVED, MESSAGE_REACTION
from wa_ray.message_kinds import Kind
from wa_ray.storage.media import MediaStore
from wa_ray.config import RuntimeConfig
from wa_ray.egress_http import guard_for
from wa_ray.master_keys import master_and_previous
from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicy, MediaPolicyStore
from wa_ray.storage.messages import META
from wa_ray.storage.providers import CloudCredentials, ProviderStore

@dataclass(frozen=True)
class CloudInboundDeps:
    """What a Cloud API media download needs, made once per process that receives Cloud API webhooks."""

    providers: ProviderStore
    client: CloudApiClient
    media: MediaStore
    policies: MediaPolicyStore
    pending: PendingMediaStore

    @classmethod
    def create(cls, redis: aioredis.Redis, config: RuntimeConfig) -> CloudInboundDeps:
        return cls(ProviderStore(redis, *master_and_previous(config)), CloudApiClient(guard_for(config), 16),
                   media_store_for(redis, config), MediaPolicyStore(redis),
                   PendingMediaStore(redis, config.media_retention_s))


MEDIA_WAIT_S = 30.0  # the longest a received message's event waits for its media
_MEDIA_TYPES = {"image": Kind.IMAGE, "video": Kind.VIDEO, "audio": Kind.AUDIO, "document": Kind.DOCUMENT,
                "sticker": Kind.STICKER}

# (message type, Meta's media object) -> the contract's `media` object
MediaFetcher = Callable[[Kind, dict[str, Any]], Awaitable[dict[str, Any]]]
# a WhatsApp id -> our message id (msg_...) of this workspace, or None
MessageOf = Callable[[str], Awaitable[str | None]]


async def normalize(msg: dict[str, Any], *, name: str | None, business: str | None,
                    fetch_media: MediaFetcher, message_of: MessageOf) -> tuple[str, dict[str, Any]] | None:
    """(event type, data) for one webhook message object; None when it has no id or sender."""
    wamid, sender, stamp = text_of(msg.get("id")), text_of(msg.get("from")), text_of(msg.get("timestamp"))
    if not wamid or not sender:
        return None
    raw_type = text_of(msg.get("type")) or "unknown"
    if raw_type == "reaction":
        reaction = as_dict(msg.get("reaction"))
        target = text_of(reaction.get("message_id"))
        return MESSAGE_REACTION, {
            "wa_message_id": wamid, "target_wa_message_id": target,
            "target_message_id": await message_of(target) if target else None,
            "emoji": text_of(reaction.get("emoji")) or "", "from": sender, "provider": META,
        }
    data: dict[str, Any] = {
        "wa_message_id": wamid, "from": sender, "chat_id": f"{sender}@c.us", "from_id": f"{sender}@c.us",
        "author": None, "is_group": False, "to": business,
        "text": None, "type": "chat" if raw_type == "text" else raw_type,
        "timestamp": int(stamp) if stamp and stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 else None,
        "name": name, "provider": META, "kind": "unknown",
    }
    if raw_type == "text":
        data.update(kind=Kind.TEXT.value, text=text_of(as_dict(msg.get("text")).get("body")))
    elif raw_type in _MEDIA_TYPES:
        obj = as_dict(msg.get(raw_type))
        kind = Kind.VOICE if raw_type == "audio" and obj.get("voice") is True else _MEDIA_TYPES[raw_type]
        data["kind"] = kind.value
        if raw_type in ("image", "video", "document"):
            data["text"] = text_of(obj.get("caption"), 1024)
        data["media"] = await fetch_media(kind, obj)
    elif raw_type == "location":
        loc = as_dict(msg.get("location"))
        lat, lng = coordinate_of(loc.get("latitude")), coordinate_of(loc.get("longitude"))
        if lat is not None and lng is not None:
            data["kind"] = Kind.LOCATION.value
            data["location"] = {"latitude": lat, "longitude": lng, "name": text_of(loc.get("name"), 1024),
                                "address": text_of(loc.get("address"), 1024)}
    elif raw_type == "contacts":
        contacts = [_contact(c) for c in dicts(msg.get("contacts"))][:50]
        if contacts:
            data.update(kind=Kind.CONTACTS.value, contacts=contacts)
    context = as_dict(msg.get("context"))
    quoted = text_of(context.get("id"))
    if quoted:
        data["reply_to"] = {"wa_message_id": quoted, "message_id": await message_of(quoted)}
    return MESSAGE_RECEIVED, data


def _contact(contact: dict[str, Any]) -> dict[str, Any]:
    name = as_dict(contact.get("name"))
    phones = []
    for phone in dicts(contact.get("phones"))[:20]:
        entry: dict[str, Any] = {"phone": text_of(phone.get("phone"), 64)}
        if text_of(phone.get("wa_id"), 64):
            entry["wa_id"] = text_of(phone.get("wa_id"), 64)
        phones.append(entry)
    return {"name": {"formatted_name": text_of(name.get("formatted_name"), 512)}, "phones": phones, "vcard": None}


async def media_chunks(client: CloudApiClient, creds: CloudCredentials | None, meta_media_id: str | None,
                       max_bytes: int) -> AsyncIterator[bytes]:
    """The bytes of one of Meta's media ids, with the workspace's token (GET /{media-id} -> url -> bytes,
    both through the egress guard). MediaDownloadFailed when Meta does not give it (any more)."""
    if creds is None or not meta_media_id:
        raise MediaDownloadFailed("no credentials or no media id")
    info = await client.media_info(creds, meta_media_id)
    if info is None:
        raise MediaDownloadFailed("no media url")
    return client.download(creds, str(info["url"]), max_bytes)


async def download_media(client: CloudApiClient, store: MediaStore, creds: CloudCredentials | None, ws: str,
                         policy: MediaPolicy, obj: dict[str, Any],
                         pending: PendingMediaStore | None = None) -> dict[str, Any]:
    """The contract's `media` object for a received media, through the shared intake (actors/media_intake.py:
    the policy, the cap, the bounded wait, cleaned names). The url is asked for only when a download happens;
    under a `lazy` policy only Meta's media id is recorded (`pending`), never the token."""
    media_id = text_of(obj.get("id"), 128)

    async def chunks() -> AsyncIterator[bytes]:
        return await media_chunks(client, creds, media_id, policy.max_bytes)

    async def defer(described: dict[str, Any]) -> str:
        if pending is None or not media_id:
            raise MediaDownloadFailed("no media id to fetch later")
        return (await pending.allot(ws, source="cloud_api", max_bytes=policy.max_bytes,
                                    locator={"media": media_id}, **described)).media_id

    return await intake(store, policy, ws, mimetype=text_of(obj.get("mime_type"), 255) or "application/octet-stream",
                        filename=text_of(obj.get("filename"), 255), size_hint=None, chunks_factory=chunks,
                        sha256=text_of(obj.get("sha256"), 128), timeout_s=MEDIA_WAIT_S, defer=defer)


