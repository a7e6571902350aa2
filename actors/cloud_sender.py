"""CloudSender: sends the messages routed to the WhatsApp Cloud API.

One named actor per cluster reads every Cloud API workspace's priority queues
(`wa:cq:{ws}:{priority}`, group `senders`) and sends through one pooled httpx
client, many requests in flight. It paces itself to Meta's limits (80 msg/s
per business number, the per-recipient pair rate), backs off and retries on
130429/131056, and keeps each workspace's circuit breaker: consecutive
provider failures open it (the ProviderSelector then routes new messages to
WhatsApp Web and announces `provider.changed`), and once the cooldown is over
a probe that sends nothing decides whether it closes again.

A message is sent at most once here too: the intent (`sending`, this sender as
owner, when) is recorded before the request. A request whose answer is lost
(a timeout, or this actor crashing) is left `sending`; the status webhooks
carry our message id (`biz_opaque_callback_data`), so if Meta did accept it a
`sent`/`delivered` status settles it, and only after `confirm_s` without one is
it treated as not accepted and failed over.

Every kind but poll goes out (`_prepare`): media uploaded once per business number, replies quoting the
wamid, reactions on a wamid, templates with Meta's 132000/132001 as `template_params`/`template_missing`,
and a text refused for the 24 h window re-sent once as the workspace's fallback template.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import ray
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt

from wa_ray.actors.cloud_api import CloudApiClient, Failure, SendResult
from wa_ray.actors.routing import FailoverRouter
from wa_ray.master_keys import master_and_previous
from wa_ray.storage import keys
from wa_ray.actors.media_fetch import MediaFailure, media_for_send
from wa_ray.message_kinds import MEDIA_KINDS, FailureCode, Kind, provider_sends
from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage.media import MediaError
from wa_ray.storage.messages import META, MessageStore, content_of
from wa_ray.storage.pacing import SlidingWindow, TokenBucket
from wa_ray.storage.providers import CloudCredentials, ProviderConfig, ProviderStore
from wa_ray.storage.redis_client import connect
from wa_ray.storage.stream_consumer import ConcurrentConsumer, Entry, Outcome, Pacing
from wa_ray.config import RuntimeConfig
from wa_ray.egress_http import guard_for
from wa_ray.events import MESSAGE_SENT, Event

log = logging.getLogger(__name__)

CLOUD_SENDER_NAME = "cloud-sender"
CONCURRENCY = 64
CONFIG_TTL_S = 2.0
PROBE_EVERY_S = 1.0
HEARTBEAT_S, HEARTBEAT_TTL_S = 3.0, 10
# an exception in a send (Redis trouble or a bug) is tried again after error_pause_s: the intent is recorded
PACING = Pacing(read_count=200, retry_later_s=0.5, error_pause_s=2.0)
THROTTLE_BASE_S, THROTTLE_MAX_S = 0.5, 8.0


RE_ENGAGEMENT = 131047  # outside the 24 h customer-service window: only a template goes through
MEDIA_UPLOAD_ERROR = 131053  # Meta does not know (any more) the media id we sent
# Meta's template errors are the request's fault: no retry, no failover (the other provider has no templates)
TEMPLATE_ERRORS = {132001: FailureCode.TEMPLATE_MISSING, 132000: FailureCode.TEMPLATE_PARAMS}


@dataclass(frozen=True)
class Prepared:
    kind: Kind
    content: dict[str, Any]
    reply_wa_id: str | None
    cloud_media_id: str | None


@dataclass(frozen=True)
class Refused:
    """This message cannot go out on the Cloud API as it is; `error` its stable code."""

    reason: str
    error: str | None
    failover: bool = True


@ray.remote(num_cpus=0, max_concurrency=100, max_restarts=-1)
class CloudSender(ConcurrentConsumer):
    """Each incarnation is a consumer of its own (`cloud@{epoch}`) and reclaims, at a workspace's first
    sight, whatever earlier incarnations read and never acknowledged."""

    async def __init__(self, config: RuntimeConfig) -> None:
        redis = connect(config.redis_url)
        self.epoch = secrets.token_hex(6)
        super().__init__(redis, keys.QUEUE_GROUP, f"cloud@{self.epoch}", delete_on_ack=True, pacing=PACING,
                         max_in_flight=CONCURRENCY)
        self._providers = ProviderStore(redis, *master_and_previous(config))
        self._messages = MessageStore(redis)
        self._router = FailoverRouter(redis, self._providers, self._messages)
        self._guard = guard_for(config)
        self._client = CloudApiClient(self._guard, max_connections=CONCURRENCY)  # checked at every send
        self._media = media_store_for(redis, config)
        self._configs: dict[str, tuple[float, ProviderConfig]] = {}
        self._throughput: dict[str, SlidingWindow] = {}
        self._pairs: dict[tuple[str, str], TokenBucket] = {}
        self._ws_of_stream: dict[str, str] = {}  # a queue's workspace, which the message key needs (filled by lanes)
        loop = asyncio.get_running_loop()
        # started here, not by a call: after a crash Ray restarts the actor and the loops come back with it
        self._tasks = [loop.create_task(self.run()), loop.create_task(self._heartbeat()),
                       loop.create_task(self._probe_loop())]

    async def ping(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "inflight": self.in_flight(), "workspaces": sorted(self.adopted)}

    # ------------------------------------------------------------ the consumer
    async def lanes(self) -> dict[str, list[str]]:
        lanes = {ws: [keys.cloud_queue(ws, p) for p in keys.PRIORITIES]
                 for ws in await self._providers.cloud_workspaces()}
        # kept when a workspace leaves the set: its entries still in flight name it (four names per workspace)
        self._ws_of_stream.update((stream, ws) for ws, streams in lanes.items() for stream in streams)
        return lanes

    def order(self, entries: list[Entry]) -> list[Entry]:
        return sorted(entries, key=lambda e: keys.PRIORITIES.index(e.stream.rsplit(":", 1)[1]))

    def flight_key(self, entry: Entry) -> str:
        return entry.fields.get("m") or entry.id  # a message queued twice is sent by one task

    async def handle(self, entry: Entry) -> Outcome:
        message_id = entry.fields.get("m")
        if not message_id:
            return Outcome.DROPPED
        ws = self._ws_of_stream.get(entry.stream)
        if ws is None:  # not seen: every stream read comes from lanes(), which names it first; never drop a message
            return Outcome.LATER
        return await self._attempt(ws, message_id)

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self._redis.set(keys.sender_alive(self.epoch), self.name, ex=HEARTBEAT_TTL_S)
            except Exception:
                log.exception("cloud sender heartbeat")
            await asyncio.sleep(HEARTBEAT_S)

    # --------------------------------------------------------------- one send
    async def _attempt(self, ws: str, message_id: str) -> Outcome:
        """One send of workspace `ws`'s message (its Cloud API queue named `ws`)."""
        record = await self._messages.record(ws, message_id)
        if not record or record.get("provider") != META or record.get("status") not in ("queued", "sending"):
            return Outcome.DONE
        if record.get("workspace_id") != ws:  # defence in depth: the key names ws, so the record must too
            return Outcome.DONE
        cfg = await self._config(ws)
        if cfg.cloud is None:
            await self._router.fail_or_failover(record, "cloud_api: this workspace has no Cloud API credentials")
            return Outcome.DONE
        creds = cfg.cloud
        if record["status"] == "sending":
            owner = record.get("owner") or ""
            if owner != self.epoch and owner and await self._redis.exists(keys.sender_alive(owner)):
                return Outcome.LATER
            # an earlier request's answer was lost: a status webhook may still show Meta accepted it
            if await self._confirmed(ws, message_id, float(record.get("intent_at") or 0), creds.options.confirm_s):
                return Outcome.DONE
        breaker = await self._providers.breaker(ws)
        if breaker.get("state") == "open":
            await self._router.fail_or_failover(
                record, f"cloud_api: circuit open after repeated failures ({breaker.get('last_error', '')})",
                allowed=("queued", "sending"))
            return Outcome.DONE
        intent = {"owner": self.epoch, "intent_at": repr(time.time())}
        if not await self._messages.transition(message_id, ws, "sending", expect=("queued", "sending"),
                                               provider=META, fields=intent, note={"provider": META}):
            return Outcome.DONE
        sending = {**record, "status": "sending"}
        prepared = await self._prepare(creds, sending)
        if isinstance(prepared, Refused):
            await self._router.fail_or_failover(sending, prepared.reason, error=prepared.error,
                                                failover=prepared.failover, allowed=("sending",))
            return Outcome.DONE
        if record.get("fallback") == "1" and prepared.kind == Kind.TEXT:
            # its 131047 came in a status webhook (actors/inbound.py): this time it goes as the template
            prepared = await self._fallback(creds, record, prepared) or prepared
        result = await self._send_with_backoff(creds, record, prepared)
        if not result.ok and result.code == MEDIA_UPLOAD_ERROR and prepared.cloud_media_id:
            # Meta keeps an upload for 30 days: a retry's kept id may be gone; upload again, once
            await self._redis.hdel(keys.message(ws, message_id), f"cloud_media:{creds.phone_number_id}")
            prepared = await self._prepare(creds, sending)
            if isinstance(prepared, Refused):
                await self._router.fail_or_failover(sending, prepared.reason, error=prepared.error,
                                                    failover=prepared.failover, allowed=("sending",))
                return Outcome.DONE
            result = await self._send_with_backoff(creds, record, prepared)
        if not result.ok and result.code == RE_ENGAGEMENT and prepared.kind == Kind.TEXT and record.get(
                "fallback") != "1":
            fallback = await self._fallback(creds, record, prepared)
            if fallback is not None:
                result = await self._send_with_backoff(creds, record, fallback)
        if result.ok:
            await self._sent(record, result.wamid or "")
            if breaker.get("state", "closed") != "closed" or int(breaker.get("failures") or 0):
                await self._providers.breaker_success(ws)
            return Outcome.DONE
        record = {**record, "status": "sending"}
        if result.failure in (Failure.PROVIDER_DOWN, Failure.UNKNOWN) and await self._providers.breaker_failure(
                ws, creds.options.breaker_failures, result.reason()):
            log.warning("cloud api circuit opened for %s: %s", ws, result.reason())
        if result.failure is Failure.UNKNOWN and await self._confirmed(
                ws, message_id, float(intent["intent_at"]), creds.options.confirm_s):
            return Outcome.DONE
        error = TEMPLATE_ERRORS.get(result.code or 0)
        await self._router.fail_or_failover(record, result.reason(), code=result.code, allowed=("sending",),
                                            error=error, failover=error is None)
        return Outcome.DONE

    # ------------------------------------------------------------ what to send
    async def _prepare(self, creds: CloudCredentials, record: dict[str, str]) -> Prepared | Refused:
        """The request's parts: the kind and content, the wamid a reply quotes, Meta's media id.

        A reply to one of our messages quotes its wamid when that message went out on the Cloud API; a
        message sent on WhatsApp Web (or an inbound WhatsApp Web id) has no id the Cloud API knows, so the
        message goes out without the quote and its history says so. A reaction cannot go without its
        target: no wamid is `target_not_found`. Media is taken from the media store (a url is fetched once,
        through the egress guard, by `media_for_send`) and uploaded to this number once: the Cloud media id
        is kept on the record per phone_number_id, so a retry does not upload again."""
        kind_raw, content = content_of(record)
        try:
            kind = Kind(kind_raw)
        except ValueError:
            return Refused(f"cloud_api: unknown message kind {kind_raw[:40]}", FailureCode.KIND_NOT_SUPPORTED, False)
        if not provider_sends(META, kind):
            return Refused(f"cloud_api: the Cloud API cannot send a {kind.value}", FailureCode.KIND_NOT_SUPPORTED)
        ws, mid = record["workspace_id"], record["message_id"]
        if kind == Kind.REACTION:
            target = await self._wamid_of(ws, str(content.get("message_id") or ""))
            if target is None:
                return Refused("cloud_api: the reacted-to message has no Cloud API id", FailureCode.TARGET_NOT_FOUND)
            content = {**content, "message_id": target}
        reply_wa_id = None
        if content.get("reply_to"):
            reply_wa_id = await self._wamid_of(ws, str(content["reply_to"]))
            if reply_wa_id is None:
                await self._messages.transition(mid, ws, "sending", expect=("sending",), note={
                    "provider": META, "note": "reply_to has no Cloud API id: sent without the quote"})
        cloud_media_id = None
        if kind in MEDIA_KINDS:
            field = f"cloud_media:{creds.phone_number_id}"
            cloud_media_id = await self._redis.hget(keys.message(ws, mid), field)
            if not cloud_media_id:
                uploaded = await self._upload(creds, record, kind, content)
                if isinstance(uploaded, Refused):
                    return uploaded
                cloud_media_id = uploaded
                await self._redis.hset(keys.message(ws, mid), field, cloud_media_id)
        return Prepared(kind, content, reply_wa_id, cloud_media_id)

    async def _upload(self, creds: CloudCredentials, record: dict[str, str], kind: Kind,
                      content: dict[str, Any]) -> str | Refused:
        ws, mid = record["workspace_id"], record["message_id"]
        try:
            info = await media_for_send(self._media, ws, kind, content, self._guard)
        except MediaFailure as failure:
            return Refused(f"cloud_api: {failure.reason}", failure.code, False)  # the media's fault: no failover
        if not content.get("media_id"):
            await self._messages.set_media(ws, mid, info.media_id)
        try:  # streamed from the store into the request: never held whole
            upload = await self._client.upload_media(creds, self._media.chunks(ws, info.media_id), info.mimetype,
                                                     content.get("filename") or info.filename, size=info.size)
        except MediaError:
            return Refused("cloud_api: the stored media is gone or unreadable", FailureCode.MEDIA_NOT_FOUND, False)
        if not upload.ok:
            return Refused(upload.reason(), None, True)
        return upload.media_id or ""

    async def _wamid_of(self, ws: str, ref: str) -> str | None:
        """The Cloud API id of a message reference: our id (`msg_...`) of a message this workspace sent on
        the Cloud API, or an inbound wamid as is; None for anything else (a WhatsApp Web id)."""
        if not ref:
            return None
        if ref.startswith("wamid."):
            return ref
        if not ref.startswith("msg_"):
            return None
        target = await self._messages.record(ws, ref)
        if not target or target.get("workspace_id") != ws or target.get("provider") != META:
            return None
        wamid = target.get("wa_message_id") or ""
        return wamid if wamid.startswith("wamid.") else None

    async def _fallback(self, creds: CloudCredentials, record: dict[str, str], text: Prepared) -> Prepared | None:
        """The workspace's fallback template for a text refused for the 24 h window (131047), once; the
        history records that it was used."""
        template = creds.options.fallback_template
        if not template or not template.get("name") or not template.get("language"):
            return None
        components: list[dict[str, Any]] = []
        if template.get("body_parameter") == "text":
            components = [{"type": "body", "parameters": [{"type": "text", "text": text.content.get("text", "")}]}]
        ws, mid = record["workspace_id"], record["message_id"]
        await self._redis.hset(keys.message(ws, mid), "fallback", "1")  # once, whichever way 131047 came
        await self._messages.transition(mid, ws, "sending", expect=("sending",),
                                        note={"provider": META, "fallback_template": template["name"],
                                              "note": "outside the 24 h window (131047): sent as the fallback template"})
        content = {"name": template["name"], "language": template["language"], "components": components}
        return Prepared(Kind.TEMPLATE, content, text.reply_wa_id, None)

    async def _send_with_backoff(self, creds: CloudCredentials, record: dict[str, str],
                                 prepared: Prepared) -> SendResult:
        """Meta's throttling answers (130429, 131056) are retried here, on the same number, with backoff."""
        opts = creds.options

        def wait(state: Any) -> float:
            result: SendResult = state.outcome.result()
            if result.failure is Failure.PAIR_LIMITED:
                self._pair(creds, record["to"]).drain()
                return opts.pair_refill_s
            return min(THROTTLE_MAX_S, THROTTLE_BASE_S * 2 ** (state.attempt_number - 1)) * random.uniform(0.5, 1.5)

        retrying = AsyncRetrying(stop=stop_after_attempt(opts.max_throttle_retries + 1), wait=wait,
                                 retry=retry_if_result(lambda r: r.retryable),
                                 retry_error_callback=lambda state: state.outcome.result())
        async for attempt in retrying:
            with attempt:
                await self._rate(creds, record["to"])
                result = await self._client.send(creds, record["to"], prepared.kind, prepared.content,
                                                 record["message_id"], prepared.reply_wa_id, prepared.cloud_media_id)
            if not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(result)
        return result

    async def _confirmed(self, ws: str, message_id: str, since: float, confirm_s: float) -> bool:
        """Wait out the confirm window for a status webhook; True when one moved the message on."""
        while True:
            status = await self._redis.hget(keys.message(ws, message_id), "status")
            if status != "sending":
                return True
            if time.time() >= since + confirm_s:
                return False
            await asyncio.sleep(min(0.5, since + confirm_s - time.time()))

    async def _sent(self, record: dict[str, str], wamid: str) -> None:
        message_id, ws = record["message_id"], record["workspace_id"]
        await self._messages.bind_wa_id(ws, message_id, wamid)
        data = {"message_id": message_id, "wa_message_id": wamid, "to": record["to"], "provider": META,
                "failover": record.get("failover") == "1"}
        await self._messages.transition(message_id, ws, "sent", provider=META, fields={"wa_message_id": wamid},
                                        note={"provider": META},
                                        event=Event(MESSAGE_SENT, ws, record.get("session_id") or None, data))

    # ----------------------------------------------------------------- pacing
    async def _rate(self, creds: CloudCredentials, to: str) -> None:
        opts = creds.options
        wait = 0.0
        if opts.throughput_per_second:
            window = self._throughput.setdefault(creds.phone_number_id, SlidingWindow(opts.throughput_per_second))
            window.limit = opts.throughput_per_second
            wait = window.take()
        if opts.pair_burst:
            wait = max(wait, self._pair(creds, to).take())
        if wait > 0:
            await asyncio.sleep(wait)

    def _pair(self, creds: CloudCredentials, to: str) -> TokenBucket:
        opts = creds.options
        key = (creds.phone_number_id, to)
        bucket = self._pairs.get(key)
        if bucket is None or bucket.burst != opts.pair_burst or bucket.refill_s != opts.pair_refill_s:
            if len(self._pairs) > 100_000:  # idle pairs are full buckets: forgetting them changes nothing
                horizon = time.monotonic() - (opts.pair_burst or 1) * opts.pair_refill_s
                self._pairs = {k: b for k, b in self._pairs.items() if b.stamp > horizon}
            bucket = self._pairs[key] = TokenBucket(float(opts.pair_burst or 1), opts.pair_refill_s)
        return bucket

    async def _config(self, ws: str) -> ProviderConfig:
        hit = self._configs.get(ws)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        cfg = await self._providers.get(ws)
        self._configs[ws] = (time.monotonic() + CONFIG_TTL_S, cfg)
        return cfg

    # ------------------------------------------------------------------ probe
    async def _probe_loop(self) -> None:
        """An open breaker is probed after its cooldown with a request that sends nothing."""
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                for ws in await self._providers.cloud_workspaces():
                    breaker = await self._providers.breaker(ws)
                    if breaker.get("state") != "open":
                        continue
                    cfg = await self._config(ws)
                    if cfg.cloud is None:
                        continue
                    if time.time() < float(breaker.get("opened_at") or 0) + cfg.cloud.options.breaker_cooldown_s:
                        continue
                    probe = await self._client.probe(cfg.cloud)
                    if probe.ok:
                        await self._providers.breaker_success(ws)
                        log.info("cloud api circuit closed again for %s", ws)
                    else:
                        await self._providers.breaker_retry_later(ws, probe.reason())
            except Exception:
                log.exception("cloud api probe loop")
