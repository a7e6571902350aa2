"""The webhook outbox around the event stream: attempts, dead letters, replay, per-workspace policy.

The outbox itself is the workspace's event stream read through the consumer
group `webhooks` (storage/events.py): nothing is copied on the hot path. An
event is acked once a 2xx came back or once it is dead-lettered. Dead letters
are a list per workspace (oldest first); a replay moves them, atomically,
into a small replay stream the dispatcher reads like the event stream (each
entry is the dead-letter record as stored, the original event with its id
inside), so the receiver sees the same `X-Event-Id` and body and can drop a repeat.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import NoScriptError

from wa_ray.storage import keys
from wa_ray.config import RuntimeConfig
from wa_ray.storage.group_commit import GroupCommit
from wa_ray.storage.redis_client import RedisClient
from wa_ray.storage.stream_consumer import ensure_group

# Move dead letters (all, or those whose event id is listed) into the replay stream, in order.
_REPLAY = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local wanted = nil
if ARGV[1] ~= '' then
  wanted = {}
  for id in string.gmatch(ARGV[1], '[^,]+') do wanted[id] = true end
end
local keep, moved = {}, 0
for _, raw in ipairs(items) do
  local record = cjson.decode(raw)
  if wanted == nil or wanted[record['event']['id']] then
    redis.call('XADD', KEYS[2], '*', 'd', raw)
    moved = moved + 1
  else
    keep[#keep + 1] = raw
  end
end
redis.call('DEL', KEYS[1])
if #keep > 0 then redis.call('RPUSH', KEYS[1], unpack(keep)) end
return moved
"""

# Acknowledge one workspace's settled deliveries. KEYS[1]: its attempt counters; KEYS[2..]: its streams (every
# key names the workspace, so they share its slot). ARGV[1]: the consumer group; then per stream: 1 when it is a
# queue (the entries go once settled) else 0, how many ids, the ids. Chunked: Lua's unpack has a stack limit.
_FINISH = """
local group, a = ARGV[1], 2
for s = 2, #KEYS do
  local stream, delete, n = KEYS[s], ARGV[a] == '1', tonumber(ARGV[a + 1])
  a = a + 2
  for first = a, a + n - 1, 500 do
    local last = math.min(first + 499, a + n - 1)
    local fields = {}
    for i = first, last do fields[#fields + 1] = stream .. '|' .. ARGV[i] end
    redis.call('XACK', stream, group, unpack(ARGV, first, last))
    if delete then redis.call('XDEL', stream, unpack(ARGV, first, last)) end
    redis.call('HDEL', KEYS[1], unpack(fields))
  end
  a = a + n
end
return 0
"""


# What a workspace may ask for (the operator's defaults, WA_WEBHOOK_*, are not bounded by these): a tenant
# cannot turn the dispatcher into a fast, endless hammer against its endpoint.
TENANT_MAX_ATTEMPTS = 20
TENANT_MIN_DELAY_S = 0.1
TENANT_MAX_DELAY_S = 86_400.0


@dataclass(frozen=True)
class Finished:
    """A delivery settled for good (delivered, dead-lettered or dropped), to acknowledge."""

    ws: str
    stream: str
    entry_id: str
    outcome: str  # the webhook stats counter it adds to
    delete: bool = False  # the stream is a queue (replay, an endpoint's): the entry goes once settled


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> RetryPolicy:
        return cls(config.webhook_max_attempts, config.webhook_base_delay_s, config.webhook_max_delay_s)


def _clamp(delay_s: float) -> float:
    return min(max(delay_s, TENANT_MIN_DELAY_S), TENANT_MAX_DELAY_S)


class Outbox:
    def __init__(self, redis: RedisClient, default: RetryPolicy) -> None:
        self._redis = redis
        self._default = default
        self._replay = redis.register_script(_REPLAY)
        self._finish = redis.register_script(_FINISH)

    async def policy(self, ws: str) -> RetryPolicy:
        return self.policy_from(await self._redis.hgetall(keys.webhook_policy(ws)))

    def policy_from(self, raw: dict[str, str]) -> RetryPolicy:
        """The policy in a stored override (HGETALL of `keys.webhook_policy(ws)`), the defaults where unset."""
        d = self._default
        # a stored override is clamped to the tenant bounds on read too (it may predate them)
        return RetryPolicy(
            min(int(raw["max_attempts"]), TENANT_MAX_ATTEMPTS) if raw.get("max_attempts") else d.max_attempts,
            _clamp(float(raw["base_delay_s"])) if raw.get("base_delay_s") else d.base_delay_s,
            _clamp(float(raw["max_delay_s"])) if raw.get("max_delay_s") else d.max_delay_s)

    async def set_policy(self, ws: str, overrides: dict[str, Any]) -> RetryPolicy:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.webhook_policy(ws))
            if overrides:
                pipe.hset(keys.webhook_policy(ws), mapping={k: str(v) for k, v in overrides.items()})
            await pipe.execute()
        return await self.policy(ws)

    async def ensure_replay_group(self, ws: str, endpoint: str | None = None) -> None:
        await ensure_group(self._redis, _replay_key(ws, endpoint), keys.WEBHOOK_GROUP)

    async def finish_many(self, done: Sequence[Finished]) -> list[Exception | None]:
        """Acknowledge settled deliveries in one round trip: per workspace one `_FINISH` script (per stream one
        XACK, and one XDEL for a queue; one HDEL of their attempt counters), then one HINCRBY per outcome.

        Answers, per delivery, None once it is acknowledged, or the error of its workspace's script or of its
        outcome's counter: the caller then handles the entry again (at least once; XACK, XDEL and HDEL are
        idempotent).

        Why no transaction across workspaces: their keys are in different slots of a Redis
        Cluster, and nothing needs them together. What must hold is per delivery: its entry is acknowledged only
        once settled (the caller submits it only then), with its attempt counter cleared in the same step (one
        script per workspace: its keys share the workspace's slot). No workspace's acknowledgement depends on
        another's, and the stats are operators' counters: a crash between a script and the HINCRBYs loses a few
        counts, never an acknowledgement."""
        by_ws: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        queues: set[str] = set()
        outcomes: Counter[str] = Counter()
        owned = [d.stream.startswith(keys.workspace_prefix(d.ws)) for d in done]
        for d, own in zip(done, owned, strict=True):
            if not own:
                continue  # not the workspace's stream: refused on its own below, never sent with the others
            by_ws[d.ws][d.stream].append(d.entry_id)
            if d.delete or d.stream == keys.webhook_replay(d.ws):
                queues.add(d.stream)
            outcomes[d.outcome] += 1
        calls = [finish_call(ws, streams, queues) for ws, streams in by_ws.items()]
        counted = list(outcomes)
        replies = await self._send(calls, [(outcome, outcomes[outcome]) for outcome in counted])
        scripts, stats = replies[:len(calls)], replies[len(calls):]
        failed_ws = {ws: r for ws, r in zip(by_ws, scripts, strict=True) if isinstance(r, Exception)}
        failed_outcome = {o: r for o, r in zip(counted, stats, strict=True) if isinstance(r, Exception)}
        return [(failed_ws.get(d.ws) or failed_outcome.get(d.outcome)) if own
                else ValueError(f"{d.stream} is not a stream of workspace {d.ws}") for d, own in zip(done, owned)]

    async def _send(self, calls: list[tuple[list[str], list[str]]], counts: list[tuple[str, int]]) -> list[Any]:
        """One non-transactional pipeline (on a Redis Cluster, one batch per node): the scripts, then the stats.
        The script goes as a bare EVALSHA (no SCRIPT EXISTS round trip first): a node that does not know it
        (restarted, failed over) answers NOSCRIPT without running anything, so those calls are sent again
        once it is loaded. A cluster pipeline does not do this itself, unlike a script called on the client."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for names, args in calls:
                pipe.evalsha(self._finish.sha, len(names), *names, *args)
            for outcome, n in counts:
                pipe.hincrby(keys.webhook_stats(), outcome, n)
            replies = list(await pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(replies[:len(calls)]) if isinstance(r, NoScriptError)]
        if missing:
            self._finish.sha = await self._redis.script_load(_FINISH)
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in missing:
                    names, args = calls[i]
                    pipe.evalsha(self._finish.sha, len(names), *names, *args)
                for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                    replies[i] = reply
        return replies

    async def dead_letter(self, ws: str, event: dict[str, Any], reason: str, attempts: int,
                          status_class: str | None, endpoint: str | None = None) -> None:
        """`reason` and `status_class` are our words only (the tenant's endpoint is never quoted).
        `endpoint`: one of the workspace's endpoints (storage/webhook_endpoints.py), None for its first webhook."""
        record = {"event": event, "reason": reason, "attempts": attempts, "status_class": status_class,
                  "ts": time.time()}
        await self._redis.rpush(_dead_key(ws, endpoint), orjson.dumps(record).decode())

    async def dead_letters(self, ws: str, offset: int = 0, limit: int = 100,
                           endpoint: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.llen(_dead_key(ws, endpoint))
            pipe.lrange(_dead_key(ws, endpoint), offset, offset + limit - 1)
            total, items = await pipe.execute()
        return int(total), [orjson.loads(i) for i in items]

    async def replay(self, ws: str, event_ids: list[str] | None = None, endpoint: str | None = None) -> int:
        await self.ensure_replay_group(ws, endpoint)
        return int(await self._replay(keys=[_dead_key(ws, endpoint), _replay_key(ws, endpoint)],
                                      args=[",".join(event_ids or [])]))

    async def count_retries(self, n: int) -> None:
        await self._redis.hincrby(keys.webhook_stats(), "retried", n)


def finish_call(ws: str, streams: dict[str, list[str]], queues: set[str]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of `_FINISH` for one workspace: `streams` maps each of its streams to the entry ids to
    acknowledge; those in `queues` also lose the entries."""
    names, args = [keys.webhook_attempts(ws)], [keys.WEBHOOK_GROUP]
    for stream, ids in streams.items():
        names.append(stream)
        args += ["1" if stream in queues else "0", str(len(ids)), *ids]
    return names, args


def _dead_key(ws: str, endpoint: str | None) -> str:
    return keys.dead_letters(ws) if endpoint is None else keys.endpoint_dead_letters(ws, endpoint)


def _replay_key(ws: str, endpoint: str | None) -> str:
    return keys.webhook_replay(ws) if endpoint is None else keys.endpoint_replay(ws, endpoint)


class FinishQueue:
    """Group commit of `Outbox.finish_many` (storage/group_commit.py): the deliveries settled while one
    round trip is on the wire are acknowledged by the next one. Each caller returns once its own entry is
    acknowledged (or gets the error of its workspace's step), so "acked only after a 2xx or a dead letter"
    holds per entry, as with a call each."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._commit: GroupCommit[Finished, None] = GroupCommit(self._finish)

    async def finish(self, done: Finished) -> None:
        await self._commit.submit(done)

    async def _finish(self, done: list[Finished]) -> list[Exception | None]:
        return await self._outbox.finish_many(done)
