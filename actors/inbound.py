"""Inbound messages and delivery statuses, from both providers, straight to the event stream.

WhatsApp Web: the BrowserHost hands over the page's `message` and `ack`
signals. Cloud API: the Meta webhook receiver hands over each verified
payload. Kept off Ray RPC on purpose: acks and inbound messages are the hot path.

* `message.received` once per WhatsApp message id (a reconnecting page and
  Meta both redeliver);
* `message.ack` (`delivered`/`read`) only when the status moves forward, so a
  duplicate or out-of-order status (Meta promises neither order nor once) is
  a no-op;
* a send WhatsApp rejected after the fact (Web ack -1, a Cloud API `failed`
  status) is failed, or retried once on the other provider.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import redis.asyncio as aioredis

from wa_ray.actors import inbound_cloud
from wa_ray.actors import inbound_tallies
from wa_ray.actors import inbound_webjs
from wa_ray.actors.routing import FailoverRouter
from wa_ray.sessions.page_media import PageMedia
from wa_ray.sessions.state import PageSignal
from wa_ray.master_keys import master_and_previous
from wa_ray.storage import keys, tallies
from wa_ray.storage.events import EventLog
from wa_ray.storage.media_pending import PendingMedia
from wa_ray.storage.messages import META, WEBJS, MessageStore
from wa_ray.storage.providers import ProviderStore
from wa_ray.config import RuntimeConfig
from wa_ray.json_fields import as_dict, dicts, text_of
from wa_ray.events import MESSAGE_ACK, MESSAGE_RECEIVED, MESSAGE_SENT, Event

ACK_STATUS = {2: "delivered", 3: "read", 4: "read"}  # 4 = played (voice): read for text purposes
ACK_ERROR = -1
RE_ENGAGEMENT = 131047  # the Cloud API's "outside the 24 h window"
SEEN_TTL_S = 7 * 24 * 3600


class InboundRecorder:
    def __init__(self, redis: aioredis.Redis, config: RuntimeConfig) -> None:
        self._redis = redis
        self._events = EventLog(redis)
        self._messages = MessageStore(redis)
        self._router = FailoverRouter(redis, ProviderStore(redis, *master_and_previous(config)),
                                      self._messages)
        self._page_media = inbound_webjs.PageMediaIntake(redis, config)
        self._in_flight = inbound_webjs.InFlight()
        self._config = config
        self._cloud: inbound_cloud.CloudInboundDeps | None = None  # made at the first Cloud API message

    async def _first_time(self, ws: str, wa_id: str) -> bool:
        return bool(await self._redis.set(keys.seen(ws, wa_id), 1, nx=True, ex=SEEN_TTL_S))

    # ----------------------------------------------------------- WhatsApp Web
    async def message(self, ws: str, sid: str, msg: dict[str, Any], media: PageMedia | None = None) -> None:
        """Any kind, normalized by actors/inbound_webjs.py; a media is pulled from the page (`media`) into
        the media store first when the workspace's policy says so (bounded wait)."""
        if not isinstance(msg.get("id"), str):
            return

        async def fetch_media(info: inbound_webjs.PageMediaInfo) -> dict[str, Any]:
            return await self._page_media.fetch(ws, info, media, sid=sid)

        # Tracked before the first await: a reaction, edit or revoke the page reported right after this message
        # is handled in a task started after this one, and must find the message in flight. Tracked only after
        # the dedupe round trip, a change whose own round trip came back first was published before its message.
        async with self._in_flight.track(ws, msg["id"]):
            if not await self._first_time(ws, msg["id"]):
                return
            data = await inbound_webjs.received(msg, fetch_media=fetch_media,
                                                message_of=functools.partial(self._messages.by_wa_id, ws))
            if data is not None:
                await self._events.publish(Event(MESSAGE_RECEIVED, ws, sid, data))
                if inbound_tallies.counts_as_inbound(data, msg.get("fromMe") is True):
                    await inbound_tallies.on_inbound(self._redis, ws, sid, inbound_tallies.contact_of(data))

    async def pending_media(self, pending: PendingMedia, media: PageMedia) -> str:
        """A media the `lazy` policy left on the page, stored now under its allotted id (PageMediaIntake)."""
        return await self._page_media.store_pending(pending, media)

    async def message_change(self, ws: str, sid: str, kind: PageSignal, payload: dict[str, Any]) -> None:
        """A reaction, revoke or edit the page reported: its event, once per WhatsApp id."""
        change = await inbound_webjs.change(kind, payload, message_of=functools.partial(self._messages.by_wa_id, ws))
        if change is None:
            return
        await self._in_flight.settled(ws, change.target)  # never before the message it is about
        if await self._first_time(ws, change.dedupe):
            await self._events.publish(Event(change.type, ws, sid, change.data))

    async def ack(self, ws: str, sid: str, wa_id: str, ack: int) -> None:
        message_id = await self._messages.by_wa_id(ws, wa_id)
        if message_id is None:
            return
        if ack == ACK_ERROR:
            await self._after_sent(ws, message_id)
            record = await self._messages.record(ws, message_id)
            if record and record.get("provider") == WEBJS:
                if await self._first_time(ws, f"refused:{wa_id}"):  # a ban-risk factor (storage/ban_risk.py)
                    await tallies.bump(self._redis, ws, sid, "refused")
                await self._router.fail_or_failover(record, "webjs: WhatsApp refused the message (ack -1)",
                                                    allowed=("sending", "sent"))
            return
        status = ACK_STATUS.get(ack)
        if status is not None:
            await self._acked(ws, sid, message_id, wa_id, status, WEBJS)

    # -------------------------------------------------------------- Cloud API
    async def cloud_payload(self, ws: str, payload: dict[str, Any]) -> None:
        """A verified `whatsapp_business_account` webhook for `ws`'s number: inbound messages and statuses.

        The receiver checked the signature, not the shape: anything that is not the documented shape
        is skipped, never an exception."""
        for entry in dicts(payload.get("entry")):
            for change in dicts(entry.get("changes")):
                value = change.get("value")
                if not isinstance(value, dict):
                    continue
                names = {c.get("wa_id"): text_of(as_dict(c.get("profile")).get("name"))
                         for c in dicts(value.get("contacts")) if isinstance(c.get("wa_id"), str)}
                business = text_of(as_dict(value.get("metadata")).get("display_phone_number"))
                for msg in dicts(value.get("messages")):
                    await self._cloud_message(ws, msg, names.get(text_of(msg.get("from")) or ""), business)
                for status in dicts(value.get("statuses")):
                    await self._cloud_status(ws, status)

    async def _cloud_message(self, ws: str, msg: dict[str, Any], name: str | None, business: str | None) -> None:
        """Every kind, normalized by actors/inbound_cloud.py (media downloaded first, bounded)."""
        wamid = text_of(msg.get("id"))
        if not wamid or not await self._first_time(ws, wamid):
            return
        cloud = self._cloud_inbound()

        async def fetch_media(kind: Any, obj: dict[str, Any]) -> dict[str, Any]:
            creds = (await cloud.providers.get(ws)).cloud
            return await inbound_cloud.download_media(cloud.client, cloud.media, creds, ws,
                                                      await cloud.policies.get(ws), obj, cloud.pending)

        async def message_of(wa_id: str) -> str | None:
            return await self._messages.by_wa_id(ws, wa_id)

        normalized = await inbound_cloud.normalize(msg, name=name, business=business, fetch_media=fetch_media,
                                                   message_of=message_of)
        if normalized is not None:
            await self._events.publish(Event(normalized[0], ws, None, normalized[1]))

    def _cloud_inbound(self) -> inbound_cloud.CloudInboundDeps:
        if self._cloud is None:
            self._cloud = inbound_cloud.CloudInboundDeps.create(self._redis, self._config)
        return self._cloud

    async def _cloud_status(self, ws: str, status: dict[str, Any]) -> None:
        wamid = text_of(status.get("id"))
        if not wamid:
            return
        message_id = await self._message_of(ws, wamid, text_of(status.get("biz_opaque_callback_data")))
        if message_id is None:
            return
        kind = status.get("status")
        if kind == "sent":
            # normally the send's own answer got there first; this covers an answer lost in a crash or timeout
            await self._messages.transition(
                message_id, ws, "sent", provider=META, fields={"wa_message_id": wamid}, note={"provider": META},
                event=Event(MESSAGE_SENT, ws, None, {"message_id": message_id, "wa_message_id": wamid,
                                                     "provider": META, "via": "status_webhook"}))
        elif kind in ("delivered", "read"):
            await self._acked(ws, None, message_id, wamid, kind, META)
        elif kind == "failed":
            error = next(iter(dicts(status.get("errors"))), {})
            code = error.get("code")
            details = (text_of(as_dict(error.get("error_data")).get("details")) or text_of(error.get("message"))
                       or text_of(error.get("title")))
            record = await self._messages.record(ws, message_id)
            if record and record.get("provider") == META and code == RE_ENGAGEMENT and await self._fallback(
                    ws, record):
                return
            if record and record.get("provider") == META:
                await self._router.fail_or_failover(record, f"cloud_api (#{code}): {details}",
                                                    code=code if isinstance(code, int) else None,
                                                    allowed=("sending", "sent"))

    async def _fallback(self, ws: str, record: dict[str, str]) -> bool:
        """A text Meta refused for the 24 h window after accepting it (131047 in a `failed` status) goes
        once more, as the workspace's fallback template (the cloud sender sends a record marked
        `fallback` as that template); True when it was queued again."""
        if (record.get("kind") or "text") != "text" or record.get("fallback") == "1":
            return False
        await self._after_sent(ws, record["message_id"])  # the sender records `sent` first, or it would undo this
        record = await self._messages.record(ws, record["message_id"]) or record
        cloud = (await self._cloud_inbound().providers.get(ws)).cloud
        template = cloud.options.fallback_template if cloud is not None else None
        if not template:
            return False
        return await self._messages.requeue_once(record["message_id"], record, "fallback", {
            "fallback_template": template.get("name"),
            "reason": "cloud_api (#131047): outside the 24 h window, queued again as the fallback template"})

    async def _message_of(self, ws: str, wamid: str, opaque: str | None) -> str | None:
        """The message of `ws` this status is about; None for any other workspace's message."""
        message_id = await self._messages.by_wa_id(ws, wamid)
        # our own id rides along in every status: enough to match one whose send answer was lost
        if message_id is None and opaque and await self._redis.hget(keys.message(ws, opaque), "workspace_id") == ws:
            message_id = opaque
            await self._messages.bind_wa_id(ws, message_id, wamid)
        return message_id

    # ----------------------------------------------------------------- common
    async def _acked(self, ws: str, sid: str | None, message_id: str, wa_id: str, status: str, provider: str) -> None:
        await self._after_sent(ws, message_id)
        data = {"message_id": message_id, "wa_message_id": wa_id, "status": status, "provider": provider}
        await self._messages.transition(message_id, ws, status, note={"provider": provider},
                                        event=Event(MESSAGE_ACK, ws, sid, data))

    async def _after_sent(self, ws: str, message_id: str, timeout_s: float = 2.0) -> None:
        """An ack can overtake the sender recording `sent`; keep the history in order."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self._redis.hget(keys.message(ws, message_id), "status") == "sending":
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.02)
