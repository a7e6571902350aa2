"""WebhookDispatcher: delivers the event stream to each workspace's webhook.

The outbox is the event stream itself read through the consumer group
`webhooks` (plus the small replay stream of dead letters put back): an event
is acknowledged only after a 2xx or after it is dead-lettered, so a crash
leaves it pending and the next incarnation (Ray restarts this actor; its loop
starts in the constructor) delivers it. At least once: receivers dedupe by
`webhook-id` (also sent as `X-Event-Id`), the stream id, which a retry or a
replay never changes.

Each POST is signed per Standard Webhooks (`webhook-signature`, with our first
scheme's `X-Signature` beside it: actors/webhook_signing.py), the timestamp
inside the signature so a captured delivery cannot be replayed later under a
fresh timestamp. Retries back off exponentially with jitter
(`backoff_s`); a 4xx is final except 408 and 429; after the workspace's
`max_attempts` the event goes to the dead-letter list. Each workspace has its
own in-flight limit, so one dead endpoint never holds up another workspace.

The URL is the tenant's: every POST goes through the egress guard
(wa_ray/egress_http.py), checked again at each attempt since DNS may have
changed since the URL was written; a refused destination is final. Nothing the
endpoint answers is kept or reported beyond its status class: the response
body is read only to be dropped, and a dead letter records the class (`4xx`)
and our own code (`http_4xx`, `timeout`, `connect_error`, `egress_denied (...)`),
so a webhook URL cannot be used to read what answers at an address.

The body is drained (up to DRAIN_BYTES within DRAIN_S, then dropped) because an
HTTP/1.1 connection goes back to the pool only once its response was read to
the end; one closed unread is closed for good, and every delivery then paid for
a new TCP (in production TLS) connection. A longer or slower answer is cut off
there: its connection is closed, and the delivery counts by its status as before.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from enum import Enum
from typing import Any

import httpx
import orjson
import ray

from wa_ray.actors.webhook_signing import sign, sign_standard, standard_key
from wa_ray.master_keys import master_and_previous
from wa_ray.storage import keys
from wa_ray.storage.events import decode
from wa_ray.storage.batch import Batcher
from wa_ray.storage.outbox import Finished, FinishQueue, Outbox, RetryPolicy
from wa_ray.storage.redis_client import connect
from wa_ray.storage.stream_consumer import ConcurrentConsumer, Entry, Outcome, Pacing
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.config import RuntimeConfig
from wa_ray.egress import EgressDenied
from wa_ray.egress_http import GuardedClient, guard_for, status_class

log = logging.getLogger(__name__)

PER_WORKSPACE = 32  # deliveries in flight per workspace
CONNECTIONS = 128
DRAIN_BYTES, DRAIN_S = 64 * 1024, 1.0  # the most of an answer read (and dropped) to keep its connection
NO_RETRY_4XX_EXCEPT = frozenset({408, 429})
CONSUMER = "dispatcher"
# a delivery never answers LATER; a crashed one is tried again after error_pause_s
PACING = Pacing(read_count=PER_WORKSPACE, retry_later_s=0.0, error_pause_s=5.0)
# the webhook stats counter each final outcome adds to (keys.webhook_stats)
STAT = {Outcome.DONE: "delivered", Outcome.FAILED: "failed", Outcome.DROPPED: "dropped"}
LANES_TTL_S = 1.0


class PostResult(Enum):
    """What one POST to the endpoint came to."""

    OK = "ok"
    RETRY = "retry"  # worth another attempt: 5xx, 408, 429, or no answer
    PERMANENT = "permanent"  # another attempt would get the same: any other 4xx, a refused destination


def backoff_s(policy: RetryPolicy, retry: int) -> float:
    """Before retry number `retry` (0 = the first): exponential from the base, capped, plus up to one base of
    jitter so the retries of many events do not land together."""
    return min(policy.base_delay_s * 2 ** retry, policy.max_delay_s) + random.uniform(0, policy.base_delay_s)


def result_of(status: int) -> PostResult:
    if 200 <= status < 300:
        return PostResult.OK
    if 400 <= status < 500 and status not in NO_RETRY_4XX_EXCEPT:
        return PostResult.PERMANENT
    return PostResult.RETRY


@ray.remote(num_cpus=0, max_concurrency=100, max_restarts=-1)
class WebhookDispatcher(ConcurrentConsumer):
    """One consumer name (`dispatcher`) for every incarnation: a restarted one reads its own pending list."""

    async def __init__(self, config: RuntimeConfig) -> None:
        redis = connect(config.redis_url)
        super().__init__(redis, keys.WEBHOOK_GROUP, CONSUMER, delete_on_ack=False, pacing=PACING)
        self._config = config
        self._targets = WebhookConfigStore(redis, *master_and_previous(config))
        self._outbox = Outbox(redis, RetryPolicy.from_config(config))
        self._finished = FinishQueue(self._outbox)
        self._batch = Batcher(redis)
        self._workspaces: set[str] = set()
        self._lanes_at = 0.0
        self._client = GuardedClient(guard_for(config), timeout=config.webhook_timeout_s,
                                     limits=httpx.Limits(max_connections=CONNECTIONS))
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def start(self) -> None:
        """Kept for callers: the loop starts with the actor (and with every restart of it)."""

    async def ping(self) -> int:
        return self.in_flight()

    # ------------------------------------------------------------ the consumer
    async def lanes(self) -> dict[str, list[str]]:
        """Every workspace with a webhook, read at most once a second (a new one is read within 1 s; its
        events wait in its consumer group meanwhile, created at the webhook's `set`)."""
        now = time.monotonic()
        if self._lanes_at <= now:
            self._workspaces, self._lanes_at = await self._targets.workspaces(), now + LANES_TTL_S
        return {ws: [keys.events(ws), keys.webhook_replay(ws)] for ws in self._workspaces}

    def readable(self, lane: str) -> bool:
        return self.in_flight(lane) < PER_WORKSPACE  # a saturated workspace waits its turn

    def lane_of(self, entry: Entry) -> str:
        return entry.stream.rsplit(":", 1)[1]

    async def adopt(self, lane: str, streams: list[str]) -> list[Entry]:
        """First sight of a workspace (or a restart): deliver what an earlier incarnation left pending."""
        await self._outbox.ensure_replay_group(lane)
        return [entry for stream in streams for entry in await self.held_all(stream)]

    async def ack(self, entry: Entry, outcome: Outcome) -> None:
        await self._finished.finish(Finished(self.lane_of(entry), entry.stream, entry.id, STAT[outcome]))

    async def handle(self, entry: Entry) -> Outcome:
        event = _event_of(entry)
        if event is None:  # trimmed away before delivery: nothing left to send
            return Outcome.DROPPED
        return await self._deliver(self.lane_of(entry), entry, event)

    # ------------------------------------------------------------- one event
    async def _deliver(self, ws: str, entry: Entry, event: dict[str, Any]) -> Outcome:
        body = orjson.dumps(event)
        counter = f"{entry.stream}|{entry.id}"
        raw_policy, (target, attempts) = await asyncio.gather(self._batch.hgetall(keys.webhook_policy(ws)),
                                                              self._begin(ws, counter))
        policy = self._outbox.policy_from(raw_policy)
        done = attempts - 1  # attempts an earlier incarnation made (the counter survives a restart)
        allowed = max(1, policy.max_attempts - done)
        status: str | None = None
        why = "no_webhook"
        for n in range(allowed):
            if n:
                await asyncio.sleep(backoff_s(policy, n - 1))
                target, attempts = await self._begin(ws, counter)  # a corrected URL applies to retries
            if target is None:
                result, status, why = PostResult.PERMANENT, None, "no_webhook"
            else:
                result, status, why = await self._post(target, event, body)
            if result is not PostResult.RETRY:
                break
        retries = max(0, attempts - done - 1)
        if retries:
            await self._outbox.count_retries(retries)
        if result is PostResult.OK:
            return Outcome.DONE
        why = f"{'permanent' if result is PostResult.PERMANENT else 'max_attempts'}: {why}"
        await self._outbox.dead_letter(ws, event, why, attempts, status)
        return Outcome.FAILED

    async def _begin(self, ws: str, counter: str) -> tuple[WebhookTarget | None, int]:
        """One attempt starts: the target as stored now and the attempt's number, counted before the POST
        so a crash mid-POST still counts it. Both commands ride the next shared pipeline."""
        rec, attempts = await asyncio.gather(self._batch.hgetall(keys.webhook(ws)),
                                             self._batch.command("hincrby", keys.webhook_attempts(ws), counter, 1))
        return self._targets.target_of(ws, rec), int(attempts)

    async def _post(self, target: WebhookTarget, event: dict[str, Any],
                    body: bytes) -> tuple[PostResult, str | None, str]:
        """(result, status class, our code): what an attempt may report, never the answer's code or body."""
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event["id"],
            "webhook-timestamp": ts,
            "webhook-signature": sign_standard(standard_key(target.secret), event["id"], ts, body),
            "X-Event-Id": event["id"],
            "X-Event-Type": event["type"],
            "X-Workspace-Id": event["workspace_id"],
            "X-Timestamp": ts,
            "X-Signature": sign(target.secret, ts, body),
        }
        try:
            async with self._client.stream("POST", target.url, content=body, headers=headers) as response:
                status = response.status_code
                await _drain(response)
        except EgressDenied as denied:
            log.info("webhook %s to workspace %s: %s", event["id"], event["workspace_id"], denied)
            return PostResult.PERMANENT, None, f"{denied.code} ({denied.verdict.value})"
        except httpx.HTTPError as exc:
            log.info("webhook %s to workspace %s: %s", event["id"], event["workspace_id"], type(exc).__name__)
            return PostResult.RETRY, None, _transport_code(exc)
        return result_of(status), status_class(status), f"http_{status_class(status)}"


async def _drain(response: httpx.Response) -> None:
    """Read a short answer to its end (and drop it), so its connection is reused; a long or slow one is cut
    off (closed with the response). Never raises: the status alone decides the delivery."""
    read = 0
    try:
        async with asyncio.timeout(DRAIN_S):
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):
        return


def _transport_code(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    return "transport_error"


def _event_of(entry: Entry) -> dict[str, Any] | None:
    if not entry.fields:
        return None
    if "d" in entry.fields:  # a replayed dead letter: the original event, original id
        return orjson.loads(entry.fields["d"])["event"]
    return decode(entry.id, entry.fields)
