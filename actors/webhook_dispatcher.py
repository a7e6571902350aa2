"""WebhookDispatcher: delivers the event stream to each workspace's webhook.

The outbox is the event stream itself read through the consumer group
`webhooks` (plus the small replay stream of dead letters put back): an event
is acknowledged only after a 2xx or after it is dead-lettered, so a crash
leaves it pending and the next incarnation (Ray restarts this actor; its loop
starts in the constructor) delivers it. At least once: receivers dedupe by
`X-Event-Id`, the stream id, which a retry or a replay never changes.

Each POST is signed (`X-Signature` = HMAC-SHA256 of `"{ts}.{raw_body}"`, the
timestamp inside the signature so a captured delivery cannot be replayed
later under a fresh timestamp). Retries back off exponentially with jitter
(tenacity); a 4xx is final except 408 and 429; after the workspace's
`max_attempts` the event goes to the dead-letter list. Each workspace has its
own in-flight limit, so one dead endpoint never holds up another workspace.

The URL is the tenant's: every POST goes through the egress guard
(wa_ray/egress_http.py), checked again at each attempt since DNS may have
changed since the URL was written; a refused destination is final. Nothing the
endpoint answers is kept or reported beyond its status class: the response
body is never read, and a dead letter records the class (`4xx`) and our own
code (`http_4xx`, `timeout`, `connect_error`, `egress_denied (...)`), so a
webhook URL cannot be used to read what answers at an address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson
import ray
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from wa_ray.actors.webhook_signing import sign
from wa_ray.sessions.master_keys import master_and_previous
from wa_ray.storage import keys
from wa_ray.storage.events import decode
from wa_ray.storage.outbox import Outbox, RetryPolicy
from wa_ray.storage.redis_client import connect
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.config import RuntimeConfig
from wa_ray.egress import EgressDenied
from wa_ray.egress_http import GuardedClient, guard_for, status_class
from wa_ray.tasks import background

log = logging.getLogger(__name__)

PER_WORKSPACE = 32  # deliveries in flight per workspace
CONNECTIONS = 128
NO_RETRY_4XX_EXCEPT = frozenset({408, 429})
CONSUMER = "dispatcher"
OK, RETRY, PERMANENT = "ok", "retry", "permanent"


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return OK
    if 400 <= status < 500 and status not in NO_RETRY_4XX_EXCEPT:
        return PERMANENT
    return RETRY


@ray.remote(num_cpus=0, max_concurrency=100, max_restarts=-1)
class WebhookDispatcher:
    async def __init__(self, config: RuntimeConfig) -> None:
        self._config = config
        self._redis = connect(config.redis_url)
        self._targets = WebhookConfigStore(self._redis, *master_and_previous(config))
        self._outbox = Outbox(self._redis, RetryPolicy.from_config(config))
        self._client = GuardedClient(guard_for(config), timeout=config.webhook_timeout_s,
                                     limits=httpx.Limits(max_connections=CONNECTIONS))
        self._inflight: dict[str, set[str]] = {}
        self._adopted: set[str] = set()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def start(self) -> None:
        """Kept for callers: the loop starts with the actor (and with every restart of it)."""

    async def ping(self) -> int:
        return sum(len(v) for v in self._inflight.values())

    async def _run(self) -> None:
        while True:
            try:
                workspaces = await self._targets.workspaces()
                for ws in sorted(workspaces - self._adopted):
                    await self._adopt(ws)
                streams: dict[str, str] = {}
                for ws in sorted(workspaces):
                    if len(self._inflight.get(ws, ())) < PER_WORKSPACE:  # a saturated workspace waits its turn
                        streams[keys.events(ws)] = ">"
                        streams[keys.webhook_replay(ws)] = ">"
                if not streams:
                    await asyncio.sleep(0.2 if workspaces else 0.5)
                    continue
                reply = await self._redis.xreadgroup(keys.WEBHOOK_GROUP, CONSUMER, streams,
                                                     count=PER_WORKSPACE, block=1000)
                for stream, items in reply or []:
                    for entry_id, fields in items:
                        self._spawn(stream, entry_id, fields)
            except Exception:
                log.exception("webhook loop error; retrying")
                await asyncio.sleep(1)

    async def _adopt(self, ws: str) -> None:
        """First sight of a workspace (or a restart): deliver what an earlier incarnation left pending."""
        await self._outbox.ensure_replay_group(ws)
        for stream in (keys.events(ws), keys.webhook_replay(ws)):
            last = "0"
            while True:
                reply = await self._redis.xreadgroup(keys.WEBHOOK_GROUP, CONSUMER, {stream: last}, count=500)
                items = [item for _, entries in reply or [] for item in entries]
                if not items:
                    break
                for entry_id, fields in items:
                    self._spawn(stream, entry_id, fields)
                last = items[-1][0]
        self._adopted.add(ws)

    def _spawn(self, stream: str, entry_id: str, fields: dict[str, str] | None) -> None:
        ws = stream.rsplit(":", 1)[1]
        inflight = self._inflight.setdefault(ws, set())
        if entry_id in inflight:
            return
        inflight.add(entry_id)
        background(self._deliver(ws, stream, entry_id, fields), f"webhook delivery {entry_id}")

    async def _deliver(self, ws: str, stream: str, entry_id: str, fields: dict[str, str] | None) -> None:
        try:
            event = _event_of(stream, entry_id, fields)
            if event is None:  # trimmed away before delivery: nothing left to send
                await self._outbox.finish(ws, stream, entry_id, "dropped")
                return
            await self._deliver_event(ws, stream, entry_id, event)
        except Exception:
            log.exception("delivery of %s crashed; retrying later", entry_id)
            await asyncio.sleep(5)
            self._inflight.get(ws, set()).discard(entry_id)
            self._spawn(stream, entry_id, fields)
            return
        self._inflight.get(ws, set()).discard(entry_id)

    async def _deliver_event(self, ws: str, stream: str, entry_id: str, event: dict[str, Any]) -> None:
        policy = await self._outbox.policy(ws)
        body = orjson.dumps(event)
        counter = f"{stream}|{entry_id}"
        done = int(await self._redis.hget(keys.webhook_attempts(ws), counter) or 0)
        last: dict[str, Any] = {"attempts": done, "status": None, "why": "no_webhook"}

        async def attempt() -> str:
            last["attempts"] = await self._outbox.attempt(ws, counter)
            target = await self._targets.get(ws)  # per attempt: a corrected URL applies to retries
            if target is None:
                last.update(status=None, why="no_webhook")
                return PERMANENT
            outcome, last["status"], last["why"] = await self._post(target, event, body)
            return outcome

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, policy.max_attempts - done)),
            wait=wait_exponential_jitter(initial=policy.base_delay_s, max=policy.max_delay_s,
                                         jitter=policy.base_delay_s),
            retry=retry_if_result(lambda outcome: outcome == RETRY),
            retry_error_callback=lambda state: state.outcome.result(),
        )
        outcome = await retrying(attempt)
        retries = max(0, int(last["attempts"]) - done - 1)
        if retries:
            await self._redis.hincrby(keys.webhook_stats(), "retried", retries)
        if outcome == OK:
            await self._outbox.finish(ws, stream, entry_id, "delivered")
            return
        why = "permanent" if outcome == PERMANENT else "max_attempts"
        await self._outbox.dead_letter(ws, event, f"{why}: {last['why']}", int(last["attempts"]), last["status"])
        await self._outbox.finish(ws, stream, entry_id, "failed")

    async def _post(self, target: WebhookTarget, event: dict[str, Any], body: bytes) -> tuple[str, str | None, str]:
        """(outcome, status class, our code): what an attempt may report, never the answer's code or body."""
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
            # streamed and closed unread: the body of a tenant-named endpoint is never downloaded
            async with self._client.stream("POST", target.url, content=body, headers=headers) as response:
                status = response.status_code
        except EgressDenied as denied:
            log.info("webhook %s to workspace %s: %s", event["id"], event["workspace_id"], denied)
            return PERMANENT, None, f"{denied.code} ({denied.verdict.value})"
        except httpx.HTTPError as exc:
            log.info("webhook %s to workspace %s: %s", event["id"], event["workspace_id"], type(exc).__name__)
            return RETRY, None, _transport_code(exc)
        return outcome_of(status), status_class(status), f"http_{status_class(status)}"


def _transport_code(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    return "transport_error"


def _event_of(stream: str, entry_id: str, fields: dict[str, str] | None) -> dict[str, Any] | None:
    if not fields:
        return None
    if "d" in fields:  # a replayed dead letter: the original event, original id
        return orjson.loads(fields["d"])["event"]
    return decode(entry_id, fields)
