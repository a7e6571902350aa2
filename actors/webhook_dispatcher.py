"""WebhookDispatcher: delivers the event stream to each workspace's webhook.

The outbox is the event stream itself read through a consumer group: an event
is acknowledged only after a 2xx (or after it is dead-lettered), so a crash of
this actor leaves it pending and the next incarnation delivers it (at least
once; receivers dedupe by `X-Event-Id`, which is the stream id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx
import orjson
import ray

from actors.webhook_signing import sign
from sessions.crypto import MasterKey
from storage import keys
from storage.events import decode
from storage.redis_client import connect
from storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.config import RuntimeConfig

log = logging.getLogger(__name__)

CONCURRENCY = 64
NO_RETRY_4XX_EXCEPT = frozenset({408, 429})


@ray.remote(num_cpus=0, max_concurrency=100)
class WebhookDispatcher:
    def __init__(self, config: RuntimeConfig) -> None:
        self._config = config
        self._redis = connect(config.redis_url)
        self._targets = WebhookConfigStore(self._redis, MasterKey.from_b64(config.master_key_b64))
        self._client = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=CONCURRENCY))
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._inflight: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def ping(self) -> int:
        return len(self._inflight)

    async def _run(self) -> None:
        pending_done: set[str] = set()
        while True:
            try:
                workspaces = await self._targets.workspaces()
                if not workspaces:
                    await asyncio.sleep(0.5)
                    continue
                streams = {keys.events(ws): ("0" if ws not in pending_done else ">") for ws in workspaces}
                backlog = any(v == "0" for v in streams.values())
                reply = await self._redis.xreadgroup(
                    keys.WEBHOOK_GROUP, "dispatcher", streams, count=200, block=None if backlog else 1000
                )
                got_pending = {stream for stream, items in reply if items}
                for ws in workspaces:
                    if keys.events(ws) not in got_pending:
                        pending_done.add(ws)
                for stream, items in reply:
                    ws = stream.rsplit(":", 1)[1]
                    for entry_id, fields in items:
                        if fields and entry_id not in self._inflight:
                            await self._slots.acquire()
                            self._inflight.add(entry_id)
                            asyncio.get_running_loop().create_task(self._deliver(ws, entry_id, fields))
                if backlog:
                    await asyncio.sleep(0.2)  # pending entries are being retried; do not spin on them
            except Exception:
                log.exception("webhook loop error; retrying")
                await asyncio.sleep(1)

    async def _deliver(self, ws: str, entry_id: str, fields: dict[str, str]) -> None:
        try:
            target = await self._targets.get(ws)
            event = decode(entry_id, fields)
            body = orjson.dumps(event)
            attempts_key = keys.webhook_attempts(ws)
            attempt = int(await self._redis.hget(attempts_key, entry_id) or 0)
            while target is not None:
                attempt = await self._redis.hincrby(attempts_key, entry_id, 1)
                outcome = await self._post(target, event, body)
                if outcome is None:
                    break
                if outcome == "permanent" or attempt >= self._config.webhook_max_attempts:
                    await self._dead_letter(ws, event, outcome, attempt)
                    break
                delay = self._config.webhook_base_delay_s * 2 ** (attempt - 1)
                await asyncio.sleep(min(delay, 300) * random.uniform(0.5, 1.5))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(keys.events(ws), keys.WEBHOOK_GROUP, entry_id)
                pipe.hdel(attempts_key, entry_id)
                await pipe.execute()
        except Exception:
            log.exception("delivery of %s crashed; left pending for retry", entry_id)
        finally:
            self._inflight.discard(entry_id)
            self._slots.release()

    async def _post(self, target: WebhookTarget, event: dict[str, Any], body: bytes) -> str | None:
        """None on success, else "retry" or "permanent" with why kept for the dead letter."""
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Event-Id": event["id"],
            "X-Event-Type": event["type"],
            "X-Workspace-Id": event["workspace_id"],
            "X-Timestamp": ts,
            "X-Signature": sign(target.secret, ts, body),
        }
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("webhook %s to workspace %s: %s", event["id"], event["workspace_id"], type(exc).__name__)
            return "retry"
        if 200 <= response.status_code < 300:
            return None
        if 400 <= response.status_code < 500 and response.status_code not in NO_RETRY_4XX_EXCEPT:
            return "permanent"
        return "retry"

    async def _dead_letter(self, ws: str, event: dict[str, Any], why: str, attempts: int) -> None:
        record = {"event": event, "reason": why, "attempts": attempts, "ts": time.time()}
        await self._redis.rpush(keys.dead_letters(ws), orjson.dumps(record).decode())
