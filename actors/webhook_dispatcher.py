"""WebhookDispatcher: delivers the event stream to each workspace's webhook and webhook endpoints.

The outbox is the event stream itself read through the consumer group
`webhooks` (plus the small replay stream of dead letters put back): an event
is acknowledged only after a 2xx or after it is dead-lettered, so a crash
leaves it pending and the next incarnation (Ray restarts this actor; its loop
starts in the constructor) delivers it. At least once: receivers dedupe by
`webhook-id` (also sent as `X-Event-Id`), the stream id, which a retry or a
replay never changes.

A workspace's first webhook (`PUT .../webhook`) is delivered straight from the
event stream. Its endpoints (storage/webhook_endpoints.py) each have a queue:
reading an event, the dispatcher first copies it into the queue of every
endpoint subscribed to its type, then delivers it to the first webhook if there
is one. Queues are read through the same group name, so one blocking read still
covers every lane; each endpoint is a lane of its own, with its own in-flight
limit, dead letters and replay, so a dead endpoint holds up only itself. A crash
between the copy and the acknowledgement copies the event again: at least once.

Retries back off exponentially with jitter (`backoff_s`); a 4xx is final
except 408 and 429; after the workspace's `max_attempts` the event goes to the
dead-letter list of where it was going. What one POST is and may report:
actors/webhook_post.py; batches: actors/webhook_batches.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import Any

import httpx
import orjson
import ray
import redis.asyncio as aioredis

from wa_ray.actors.webhook_batches import BatchCollector, batch_id
from wa_ray.actors.webhook_post import Delivery, Destination, PostResult, post
from wa_ray.master_keys import master_and_previous
from wa_ray.storage import keys
from wa_ray.storage.events import decode
from wa_ray.storage.batch import Batcher
from wa_ray.storage.outbox import Finished, FinishQueue, Outbox, RetryPolicy
from wa_ray.storage.redis_client import connect
from wa_ray.storage.stream_consumer import ConcurrentConsumer, Entry, Outcome, Pacing
from wa_ray.storage.webhook_endpoints import WebhookEndpointStore, endpoint_of, subscribed
from wa_ray.storage.webhooks import WebhookConfigStore
from wa_ray.config import RuntimeConfig
from wa_ray.egress_http import GuardedClient, guard_for

log = logging.getLogger(__name__)

PER_WORKSPACE = 32  # deliveries in flight per lane (a workspace's first webhook, or one endpoint)
CONNECTIONS = 128
CONSUMER = "dispatcher"
# a delivery never answers LATER; a crashed one is tried again after error_pause_s
PACING = Pacing(read_count=PER_WORKSPACE, retry_later_s=0.0, error_pause_s=5.0)
# the webhook stats counter each final outcome adds to (keys.webhook_stats)
STAT = {Outcome.DONE: "delivered", Outcome.FAILED: "failed", Outcome.DROPPED: "dropped"}
LANES_TTL_S = 1.0
FANNED_MEMORY = 4096  # event entries copied to the endpoints, remembered so a retried handler copies once
# An attempt begins: the target as stored (the first webhook's hash, or one endpoint's record) and, only while
# it exists, each entry's attempt counted; answers {record or nothing, the highest count}.
_BEGIN = """
local rec
if ARGV[1] == '' then
  rec = redis.call('HGETALL', KEYS[1])
  if #rec == 0 then return {rec, 0} end
else
  rec = redis.call('HGET', KEYS[1], ARGV[1])
  if not rec then return {'', 0} end
end
local most = 0
for i = 2, #ARGV do
  local n = redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
  if n > most then most = n end
end
return {rec, most}
"""


def backoff_s(policy: RetryPolicy, retry: int) -> float:
    """Before retry number `retry` (0 = the first): exponential from the base, capped, plus up to one base of
    jitter so the retries of many events do not land together."""
    return min(policy.base_delay_s * 2 ** retry, policy.max_delay_s) + random.uniform(0, policy.base_delay_s)


@ray.remote(num_cpus=0, max_concurrency=100, max_restarts=-1)
class WebhookDispatcher(ConcurrentConsumer):
    """One consumer name (`dispatcher`) for every incarnation: a restarted one reads its own pending list.

    Lanes: a workspace id (its event stream and the first webhook's replay stream), or `{ws}/{endpoint}` (the
    endpoint's queue and replay stream)."""

    async def __init__(self, config: RuntimeConfig) -> None:
        redis = connect(config.redis_url)
        super().__init__(redis, keys.WEBHOOK_GROUP, CONSUMER, delete_on_ack=False, pacing=PACING)
        self._config = config
        self._targets = WebhookConfigStore(redis, *master_and_previous(config))
        self._endpoints = WebhookEndpointStore(redis, *master_and_previous(config))
        self._outbox = Outbox(redis, RetryPolicy.from_config(config))
        self._finished = FinishQueue(self._outbox)
        self._batch = Batcher(redis)
        self._batches = BatchCollector(self._send_batch)
        self._begin_script = redis.register_script(_BEGIN)
        self._lanes: dict[str, list[str]] = {}
        self._lane_of_stream: dict[str, str] = {}
        self._limits: dict[str, int] = {}  # lanes allowed more than PER_WORKSPACE in flight (batching)
        self._fan_out_from: set[str] = set()  # workspaces with endpoints
        self._fanned: deque[str] = deque(maxlen=FANNED_MEMORY)
        self._lanes_at = 0.0
        self._version_seen = 0  # the last webhook_lanes_version this incarnation acknowledged
        self._client = GuardedClient(guard_for(config), timeout=config.webhook_timeout_s,
                                     limits=httpx.Limits(max_connections=CONNECTIONS))
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def start(self) -> None:
        """Kept for callers: the loop starts with the actor (and with every restart of it)."""

    async def ping(self) -> int:
        return self.in_flight()

    # ------------------------------------------------------------ the consumer
    async def lanes(self) -> dict[str, list[str]]:
        """Every workspace with a webhook or an endpoint, and every endpoint, read at most once a second (a new
        one is read within 1 s; its events wait in its consumer group meanwhile, created when it was set)."""
        now = time.monotonic()
        if self._lanes_at <= now:
            async with self._redis.pipeline(transaction=True) as pipe:  # one snapshot of the three
                pipe.get(keys.webhook_lanes_version())
                pipe.smembers(keys.webhook_workspaces())
                pipe.smembers(keys.webhook_endpoint_lanes())
                version, workspaces, members = await pipe.execute()
            endpoints = [tuple(m.split("/", 1)) for m in members]
            lanes = {ws: [keys.events(ws), keys.webhook_replay(ws)] for ws in workspaces}
            lanes |= {f"{ws}/{ep}": [keys.webhook_queue(ws, ep), keys.endpoint_replay(ws, ep)]
                      for ws, ep in endpoints}
            self._lanes, self._fan_out_from = lanes, {ws for ws, _ in endpoints}
            self._lane_of_stream = {stream: lane for lane, streams in lanes.items() for stream in streams}
            self.adopted &= set(lanes)  # a deleted endpoint's lane is forgotten
            self._lanes_at = now + LANES_TTL_S
            if int(version or 0) > self._version_seen:  # told only once the fan-out set above includes it
                await self._redis.set(keys.webhook_lanes_seen(), version)
                self._version_seen = int(version)
        return self._lanes

    async def lease(self, streams: list[str], count: int, block_ms: int | None = None) -> list[Entry]:
        try:
            return await super().lease(streams, count, block_ms)
        except aioredis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._lanes_at = 0.0  # an endpoint was deleted since the lanes were read: read them afresh
            return []

    def readable(self, lane: str) -> bool:
        return self.in_flight(lane) < self._limits.get(lane, PER_WORKSPACE)  # a saturated lane waits its turn

    def lane_of(self, entry: Entry) -> str:
        return self._lane_of_stream.get(entry.stream) or lane_of_stream(entry.stream)

    async def adopt(self, lane: str, streams: list[str]) -> list[Entry]:
        """First sight of a lane (or a restart): deliver what an earlier incarnation left pending."""
        ws, _, endpoint = lane.partition("/")
        await self._outbox.ensure_replay_group(ws, endpoint or None)
        try:
            return [entry for stream in streams for entry in await self.held_all(stream)]
        except aioredis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []  # the endpoint was deleted meanwhile

    async def ack(self, entry: Entry, outcome: Outcome) -> None:
        ws, _, endpoint = self.lane_of(entry).partition("/")
        await self._finished.finish(Finished(ws, entry.stream, entry.id, STAT[outcome], delete=bool(endpoint)))

    async def handle(self, entry: Entry) -> Outcome:
        lane = self.lane_of(entry)
        event = _event_of(entry)
        if event is None:  # trimmed away before delivery: nothing left to send
            return Outcome.DROPPED
        ws, _, endpoint = lane.partition("/")
        if endpoint:
            return await self._to_endpoint(lane, ws, endpoint, entry, event)
        if entry.stream == keys.events(ws) and ws in self._fan_out_from:
            await self._fan_out(ws, entry, event)
        return await self._deliver(ws, None, [entry], [event])

    # ------------------------------------------------------------- endpoints
    async def _fan_out(self, ws: str, entry: Entry, event: dict[str, Any]) -> None:
        """Copy the event into the queue of each endpoint subscribed to it (once per entry and incarnation)."""
        if entry.id in self._fanned:
            return
        raw = await self._batch.hgetall(keys.webhook_endpoints(ws))
        queues = [keys.webhook_queue(ws, eid) for eid, rec in sorted(raw.items())
                  if subscribed(endpoint_of(eid, orjson.loads(rec)).events, event["type"])]
        if queues:
            copy = {"ev": orjson.dumps(event)}
            await asyncio.gather(*(self._batch.xadd(queue, copy) for queue in queues))
        self._fanned.append(entry.id)

    async def _to_endpoint(self, lane: str, ws: str, endpoint: str, entry: Entry, event: dict[str, Any]) -> Outcome:
        target = self._endpoints.target_of(ws, endpoint, await self._batch.command(
            "hget", keys.webhook_endpoints(ws), endpoint))
        if target is None:  # deleted: its queue went with it
            return Outcome.DROPPED
        batch = target.endpoint.batch
        if batch is None:
            self._limits.pop(lane, None)
            return await self._deliver(ws, endpoint, [entry], [event])
        self._limits[lane] = max(PER_WORKSPACE, 2 * batch.max_events)  # one batch out, the next one filling
        return await self._batches.add(lane, batch, entry, event)

    async def _send_batch(self, lane: str, entries: list[Entry], events: list[dict[str, Any]]) -> Outcome:
        ws, _, endpoint = lane.partition("/")
        return await self._deliver(ws, endpoint, entries, events, batched=True)

    # ------------------------------------------------------------- delivery
    async def _deliver(self, ws: str, endpoint: str | None, entries: list[Entry], events: list[dict[str, Any]],
                       batched: bool = False) -> Outcome:
        """Deliver one event (or a batch: a JSON array, retried whole) to the first webhook (`endpoint` None) or
        to an endpoint; DONE after a 2xx, FAILED once each event is dead-lettered."""
        if batched:
            delivery = Delivery(batch_id(events), "batch", ws, orjson.dumps(events), len(events))
        else:
            delivery = Delivery(events[0]["id"], events[0]["type"], ws, orjson.dumps(events[0]))
        counters = [f"{entry.stream}|{entry.id}" for entry in entries]
        raw_policy, (dest, attempts) = await asyncio.gather(self._batch.hgetall(keys.webhook_policy(ws)),
                                                            self._begin(ws, endpoint, counters))
        if dest is None:  # no first webhook (endpoints only), or deleted (the endpoint, the workspace): nobody
            return Outcome.DONE if endpoint is None else Outcome.DROPPED  # to deliver to, nothing to record
        policy = self._outbox.policy_from(raw_policy)
        done = attempts - 1  # attempts an earlier incarnation made (the counter survives a restart)
        allowed = max(1, policy.max_attempts - done)
        status: str | None = None
        for n in range(allowed):
            if n:
                await asyncio.sleep(backoff_s(policy, n - 1))
                dest, attempts = await self._begin(ws, endpoint, counters)  # a corrected URL applies to retries
                if dest is None:  # deleted meanwhile: no dead letter for a target (or workspace) that is gone
                    return Outcome.DROPPED
            result, status, why = await post(self._client, dest, delivery)
            if result is not PostResult.RETRY:
                break
        retries = max(0, attempts - done - 1)
        if retries:
            await self._outbox.count_retries(retries)
        if result is PostResult.OK:
            return Outcome.DONE
        why = f"{'permanent' if result is PostResult.PERMANENT else 'max_attempts'}: {why}"
        for event in events:
            await self._outbox.dead_letter(ws, event, why, attempts, status, endpoint)
        return Outcome.FAILED

    async def _begin(self, ws: str, endpoint: str | None, counters: list[str]) -> tuple[Destination | None, int]:
        """One attempt starts: where to as stored now and the attempt's number, counted before the POST so a
        crash mid-POST still counts it (a batch: its most tried event's). One script on the next shared
        pipeline, which counts nothing when the target is gone: a delivery still in flight when its endpoint or
        workspace is deleted writes nothing under the deleted names."""
        where = keys.webhook(ws) if endpoint is None else keys.webhook_endpoints(ws)
        rec, attempts = await self._begin_script(keys=[where, keys.webhook_attempts(ws)],
                                                 args=[endpoint or "", *counters], client=self._batch)
        if endpoint is None:
            rec = dict(zip(rec[::2], rec[1::2]))
        return self._destination(ws, endpoint, rec or None), int(attempts)

    def _destination(self, ws: str, endpoint: str | None, rec: Any) -> Destination | None:
        if endpoint is None:
            target = self._targets.target_of(ws, rec)
            return None if target is None else Destination(target.url, target.secret)
        opened = self._endpoints.target_of(ws, endpoint, rec)
        return None if opened is None else Destination(opened.endpoint.url, opened.secret, opened.headers)


def lane_of_stream(stream: str) -> str:
    """The lane of one of the dispatcher's streams, from its name alone (a lane read before the last refresh of
    the lanes, an endpoint deleted since): `ws` for the event stream and the first webhook's replay stream,
    `ws/endpoint` for an endpoint's queue and replay stream. The workspace is the name's hash tag
    (`keys.workspace_of`); a name without one has the lane ""."""
    ws = keys.workspace_of(stream)
    if ws is None:
        return ""
    for endpoint_stream in (keys.webhook_queue, keys.endpoint_replay):
        prefix = endpoint_stream(ws, "")
        if stream.startswith(prefix) and len(stream) > len(prefix):
            return f"{ws}/{stream[len(prefix):]}"
    return ws


def _event_of(entry: Entry) -> dict[str, Any] | None:
    if not entry.fields:
        return None
    if "d" in entry.fields:  # a replayed dead letter: the original event, original id
        return orjson.loads(entry.fields["d"])["event"]
    if "ev" in entry.fields:  # an endpoint's copy of the event
        return orjson.loads(entry.fields["ev"])
    return decode(entry.id, entry.fields)
