"""Remove everything a workspace owned from Redis and the media store: `DELETE /v1/workspaces/{ws}`.

The caller (serve_app/data_protection_api.py) first deletes the workspace's sessions through the session
supervisor, the path `DELETE .../sessions/{sid}` takes, so each page is closed and its auth state purged;
then `WorkspacePurge.purge` removes:

* every key of the workspace: they are exactly the keys that start with `keys.workspace_prefix(ws)`
  (`wa:{ws}:`, one hash slot of a Redis Cluster), found with one SCAN of `wa:{ws}:*` (on a cluster, of
  the one node that owns the slot). A workspace id matches `^[a-z0-9][a-z0-9_-]{0,63}$`: no glob
  character, no `:` and no `}`, so the pattern never matches a key of `ws-ab` when purging `ws-a`, nor a
  global key (global tags, `{g:...}` and `{k:...}`, hold a `:`). `check_layout` asserts both, from the
  key functions themselves. Message records (`wa:{ws}:msg:<id>`, each deleted with its history) are
  counted apart from the other keys;
* its API keys (revoked as `keys revoke` does, so a token they issued dies too; their nonces, rate
  limit and stream leases, all under the key's own tag `wa:{k:<id>}:`, go with them; the generation
  counter stays);
* its membership in every global set or hash: workspaces, webhook and provider sets, endpoint lanes, the
  registry's all-sessions set, the media expiry set, active campaigns, metric cursors, Meta number and
  verify-token claims;
* its media files (MediaStore.delete_workspace).

A webhook delivery in flight at the delete (the dispatcher holds the event in memory while it retries)
still settles afterwards and writes its dead letter and attempt counter under the workspace. So the purge
leaves a tombstone (`keys.purged_workspaces`: when, and the endpoint ids it had) and `follow_up`, run by the
session supervisor every few seconds, deletes exactly those few keys again for FOLLOW_UP_S (longer than
the dispatcher's longest retry schedule), then drops the tombstone. It names keys directly: no SCAN.

Every command here touches one slot, or is a non-transactional pipeline of such commands, so the purge
runs on a Redis Cluster as on one server: the API-key MULTI holds only `{k:<id>}` keys, and the global
claims are read one GET each, never with one cross-slot MGET.

What stays: the audit stream (the record of who did what, including this delete; trimmed by its own
retention), aggregate metric counters (not per workspace), the key-id generation counters (a re-created
key id must stay a new generation), backups written before, and media on another node's disk in a
multi-node deployment without shared storage.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import orjson

from wa_ray.ids import is_valid_id
from wa_ray.storage import campaigns, keys
from wa_ray.storage.key_scan import scan_names
from wa_ray.storage.redis_client import RedisClient

FOLLOW_UP_S = 3600.0
DELETE_BATCH = 500
_LAYOUT_WS = "ws-layout-check"  # any valid workspace id: the layout check names keys with it
_CAMPAIGN_KEYS = (campaigns.list_key, campaigns.meta_key, campaigns.recipients_key, campaigns.phones_key,
                  campaigns.assignment_key, campaigns.open_key, campaigns.index_key)


@dataclass
class PurgeCounts:
    sessions: int = 0
    keys: int = 0
    messages: int = 0
    api_keys: int = 0
    media: int = 0
    memberships: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def workspace_pattern(ws: str) -> str:
    """The SCAN pattern of every key of `ws`, and of no other key."""
    if not is_valid_id(ws):
        raise ValueError("invalid workspace id")
    return keys.workspace_prefix(ws) + "*"


def _key_names() -> list[tuple[str, str]]:
    """(first parameter, the name it gives) of every public key function that names a Redis key, each
    parameter given a valid id; campaigns.py's key builders with them. A function that gives no name
    (`keys.workspace_of` parses one) is not a key function."""
    out: list[tuple[str, str]] = []
    functions = [fn for name, fn in inspect.getmembers(keys, inspect.isfunction)
                 if fn.__module__ == keys.__name__ and not name.startswith("_")]
    for fn in (*functions, *_CAMPAIGN_KEYS):
        params = list(inspect.signature(fn).parameters)
        first = params[0] if params else ""
        name = fn(*([_LAYOUT_WS] * len(params)))
        if isinstance(name, str) and name.startswith(f"{keys.PREFIX}:"):
            out.append((first, name))
    return out


@functools.cache
def check_layout() -> None:
    """What the purge relies on, asserted from the key functions: each one that takes `ws` first names a key
    under `workspace_prefix(ws)`, and no other one names a key that a workspace's pattern could match (its
    hash tag would have to be a valid workspace id)."""
    prefix = keys.workspace_prefix(_LAYOUT_WS)
    opening = f"{keys.PREFIX}:{{"
    for first, name in [*_key_names(), ("", campaigns.ACTIVE)]:
        if first == "ws":
            if not name.startswith(prefix):
                raise AssertionError(f"{name}: a workspace's key must start with {prefix}")
        elif name.startswith(opening) and is_valid_id(name[len(opening):].partition("}")[0]):
            raise AssertionError(f"{name}: a key no workspace owns must not carry a workspace's tag")


MediaPurge = Callable[[str], Awaitable[int]]


class WorkspacePurge:
    """`purge_media(ws)` removes the workspace's media files and returns how many (MediaStore.delete_workspace);
    None where only `follow_up` runs (the session supervisor)."""

    def __init__(self, redis: RedisClient, purge_media: MediaPurge | None = None) -> None:
        self._redis = redis
        self._purge_media = purge_media

    async def purge(self, ws: str, counts: PurgeCounts | None = None) -> PurgeCounts:
        check_layout()
        pattern = workspace_pattern(ws)
        counts = counts or PurgeCounts()
        endpoints = sorted(e for e in await self._redis.hkeys(keys.webhook_endpoints(ws)) if is_valid_id(e))
        old = await self._redis.hget(keys.purged_workspaces(), ws)
        if old:
            endpoints = sorted(set(endpoints) | set(orjson.loads(old).get("endpoints", [])))
        names = set(await scan_names(self._redis, pattern))
        records = keys.message(ws, "")
        message_ids = sorted(n[len(records):] for n in names if n.startswith(records))
        names -= {k for mid in message_ids for k in (keys.message(ws, mid), keys.message_history(ws, mid))}
        counts.api_keys += await self._api_keys(ws)
        counts.memberships += await self._memberships(ws)
        counts.messages += await self._messages(ws, message_ids)
        doomed = sorted(names)
        for i in range(0, len(doomed), DELETE_BATCH):  # one slot: a plain multi-key DEL on a cluster too
            counts.keys += int(await self._redis.delete(*doomed[i:i + DELETE_BATCH]))
        counts.media += await self._purge_media(ws) if self._purge_media is not None else 0
        # The tombstone goes last. Written first, the supervisor's follow-up (every few seconds) could run in
        # the middle of this purge and delete the endpoint lanes and delivery keys before the purge counted
        # them, so the answer undercounted. Last is as safe: a delivery that writes during the purge, before
        # or after its delete, is still caught by the follow-ups that run after this line; a purge that dies
        # before it is redone in full by a repeated DELETE.
        await self._redis.hset(keys.purged_workspaces(), ws,
                               orjson.dumps({"at": time.time(), "endpoints": endpoints}).decode())
        return counts

    async def follow_up(self, now: float | None = None) -> int:
        """Delete again what a settling webhook delivery writes for each recently deleted workspace; drop
        tombstones older than FOLLOW_UP_S. Returns the keys and members removed."""
        now = time.time() if now is None else now
        removed = 0
        for ws, raw in (await self._redis.hgetall(keys.purged_workspaces())).items():
            try:
                stone = orjson.loads(raw)
                at, endpoints = float(stone["at"]), [e for e in stone.get("endpoints", []) if is_valid_id(e)]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                at, endpoints = 0.0, []
            if not is_valid_id(ws) or now - at > FOLLOW_UP_S:
                await self._redis.hdel(keys.purged_workspaces(), ws)
                continue
            names = [keys.dead_letters(ws), keys.webhook_attempts(ws), keys.webhook_replay(ws)]
            for e in endpoints:
                names += [keys.webhook_queue(ws, e), keys.endpoint_dead_letters(ws, e), keys.endpoint_replay(ws, e)]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*names)  # all in the workspace's slot
                pipe.hdel(keys.metrics_cursor(), ws)
                pipe.srem(keys.webhook_endpoint_lanes(), *(f"{ws}/{e}" for e in endpoints or ["-"]))
                results = await pipe.execute()
            removed += sum(int(r) for r in results)
        return removed

    async def _messages(self, ws: str, message_ids: list[str]) -> int:
        """Each message record with its history (one slot), counted once per message. (A history whose record
        expired first is one of the workspace's other keys.)"""
        deleted = 0
        for i in range(0, len(message_ids), DELETE_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for mid in message_ids[i:i + DELETE_BATCH]:
                    pipe.delete(keys.message(ws, mid), keys.message_history(ws, mid))
                deleted += sum(1 for n in await pipe.execute() if int(n))
        return deleted

    async def _api_keys(self, ws: str) -> int:
        ids = sorted(await self._redis.smembers(keys.api_key_index()))
        owners = await _hget_each(self._redis, [keys.api_key(k) for k in ids], "workspace_id")
        revoked = 0
        for key_id in (k for k, owner in zip(ids, owners, strict=True) if owner == ws):
            revoked += 1 if await self._revoke_key(key_id) else 0
        return revoked

    async def _revoke_key(self, key_id: str) -> bool:
        """What `keys revoke` does, plus the key's nonces, rate limit and stream leases: one MULTI on the
        key's own slot (`{k:<id>}`), then the global index. True when it deleted anything."""
        doomed = {keys.api_key(key_id), keys.key_rate_limit(key_id), keys.key_stream_slots(key_id)}
        if is_valid_id(key_id):  # then the pattern holds no glob character but its own `*`
            kept = {keys.api_key_generation(key_id), keys.api_key_revoked(key_id)}
            doomed |= set(await scan_names(self._redis, keys.api_key_prefix(key_id) + "*")) - kept
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*sorted(doomed))
            pipe.set(keys.api_key_revoked(key_id), repr(time.time()))  # as ApiKeyStore.revoke writes it
            deleted, _ = await pipe.execute()
        await self._redis.srem(keys.api_key_index(), key_id)  # after: a stale member is skipped by its readers
        return int(deleted) > 0

    async def _memberships(self, ws: str) -> int:
        """`ws`, or members and fields `ws/...`, out of every global set and hash; global claims naming it."""
        n = 0
        for name in (keys.workspaces(), keys.webhook_workspaces(), keys.provider_workspaces(), keys.cloud_workspaces()):
            n += int(await self._redis.srem(name, ws))
        n += int(await self._redis.hdel(keys.metrics_cursor(), ws))
        for name in (keys.webhook_endpoint_lanes(), keys.all_sessions(), campaigns.ACTIVE):
            members = [m for m in await self._redis.smembers(name) if m.partition("/")[0] == ws]
            n += int(await self._redis.srem(name, *members)) if members else 0
        members = [m for m in await self._redis.zrange(keys.media_expiry(), 0, -1) if m.partition("/")[0] == ws]
        n += int(await self._redis.zrem(keys.media_expiry(), *members)) if members else 0
        fields_ = [f for f in await self._redis.hkeys(keys.metrics_qr_started()) if f.partition("/")[0] == ws]
        n += int(await self._redis.hdel(keys.metrics_qr_started(), *fields_)) if fields_ else 0
        for pattern in (keys.meta_number("*"), keys.meta_verify("*")):
            names = await scan_names(self._redis, pattern)
            values = await _get_each(self._redis, names)
            n += await _delete_each(self._redis, (k for k, v in zip(names, values, strict=True) if _claims(v, ws)))
        for name in await scan_names(self._redis, keys.meta_verifiers("*")):
            n += int(await self._redis.srem(name, ws))
        return n


def _claims(value: str | None, ws: str) -> bool:
    """A global claim names `ws`: its value is `ws`, or `ws|<time>`."""
    return value is not None and value.partition("|")[0] == ws


# The global keys below lie in many slots: one command per key, in a non-transactional pipeline (which a
# cluster client sends to each key's node), never one MGET or DEL over all of them.


async def _hget_each(redis: RedisClient, names: list[str], field: str) -> list[Any]:
    if not names:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(name, field)
        return await pipe.execute()


async def _get_each(redis: RedisClient, names: list[str]) -> list[Any]:
    if not names:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(name)
        return await pipe.execute()


async def _delete_each(redis: RedisClient, names: Iterable[str]) -> int:
    doomed = list(names)
    if not doomed:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for name in doomed:
            pipe.delete(name)
        return sum(int(n) for n in await pipe.execute())
