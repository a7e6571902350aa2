"""Move a Redis written in the old key layout to LAYOUT "2" (storage/keys.py), once, so an upgrade loses nothing.

The old layout named keys `wa:<kind>:<ws>:...` without hash tags; the new one puts a workspace's keys under
`wa:{<ws>}:`, an API key's under `wa:{k:<id>}:`, and the dispatcher's and the metrics' globals under `{g:wh}`
and `{g:metrics}`. `keys.layout()` says which layout the data is in: "2", or absent for the old one.

`ensure_layout` runs at every service start (wa_ray/entry/wiring.py `bring_up`), before the control plane
opens Redis:

* marker "2": nothing to do;
* no marker, single Redis: `migrate` moves every old name, then writes the marker (a Redis without any
  `wa:` key just gets the marker);
* no marker, Redis Cluster: a cluster refuses RENAME across slots, so nothing is moved there; the start
  refuses while old-layout names exist (migrate on the single Redis first, then copy it into the cluster),
  and an empty cluster gets the marker.

How a key moves (`RULES`, one row per old name): RENAMENX, which keeps the value, the TTL, and a stream's
consumer groups, consumers and pending entries. A few need more than their own name:

* `wa:msg:<mid>` and its history take the workspace from the record's `workspace_id`; a history whose record
  is gone (expired) has no owner left and is deleted;
* `wa:cmp-replied:<cid>:<contact>` takes the workspace of the campaign (its meta key, old or new name); a
  mark whose campaign is gone is deleted;
* the global hashes `wa:apikey-gen` and `wa:apikey-revoked` become one string per key id;
* the webhook attempt counters name a stream in each field (`<stream>|<entry id>`,
  actors/webhook_dispatcher.py): the stream part is rewritten to the stream's new name;
* `wa:sessions:all` keeps its name, but a workspace literally called `all` shared it in the old layout
  (its members are bare session ids, the global ones `ws/sid`): those move to that workspace's index;
* `wa:streams:token:<jti>` is deleted: a stream token's leases last seconds and the next request takes them
  again (the new name also needs the issuing key, which the old name does not say).

No other stored value names a key (checked: member lists such as media expiry, endpoint lanes, active
campaigns and all-sessions hold `ws/<id>`; metric cursors are keyed by workspace; stream entries carry ids).

Idempotent and resumable without a progress record: each step is atomic, a rerun just finds fewer old names,
and the order inside a message (history first, then the record that names its workspace) keeps what a rerun
needs. A new name is never overwritten: an old name whose new name exists already is a conflict, left as it
is and reported, and the marker is not written until none is left. Writers must be stopped meanwhile (the
start refuses while the service's actors run); a lock key keeps two migrations apart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from redis.exceptions import ResponseError

from wa_ray.storage import campaigns, keys
from wa_ray.storage.key_scan import scan_batches
from wa_ray.storage.redis_client import RedisClient, connect, is_cluster

log = logging.getLogger(__name__)

NEW = f"{keys.PREFIX}:{{"  # every name of the new layout that is not a kept global starts with it
LOCK = f"{keys.PREFIX}:layout-lock"
LOCK_TTL_S = 600  # renewed after every batch; a migration killed half-way frees it within this
SAMPLE = 10  # names quoted in a report or an error


class LayoutError(RuntimeError):
    """This Redis cannot be used by this version as it is; the message says what the operator does."""


class Action(Enum):
    RENAME = "rename"  # new(*parts of the old name)
    BY_MESSAGE = "by message"  # new(ws, mid): ws from the old record's `workspace_id`
    BY_CAMPAIGN = "by campaign"  # new(ws, cid, contact): ws of the campaign
    ATTEMPTS = "attempts"  # rename, and the stream named in each field too
    SPLIT_HASH = "split hash"  # field <key id> -> string new(key id)
    ALL_SESSIONS = "all sessions"  # kept; members of a workspace called `all` move to its session index
    DELETE = "delete"
    KEEP = "keep"  # same name in both layouts


@dataclass(frozen=True)
class Rule:
    """An old name (`{part}`: one segment, no `:`; `{part...}`: the rest of the name, may hold `:`) and the new
    key function its parts are passed to, in order."""

    old: str
    new: Callable[..., str] | None = None
    action: Action = Action.RENAME


R, A = Rule, Action
RULES: tuple[Rule, ...] = (
    # a workspace's keys
    R("wa:events:{ws}", keys.events),
    R("wa:session:{ws}:{sid}", keys.session),
    R("wa:sessions:all", keys.all_sessions, A.ALL_SESSIONS),  # before the next row: `all` is a valid ws
    R("wa:sessions:{ws}", keys.session_index),
    R("wa:q:{ws}:{sid}:{priority}", keys.queue),
    R("wa:cq:{ws}:{priority}", keys.cloud_queue),
    R("wa:msg:{mid}", keys.message, A.BY_MESSAGE),
    R("wa:msg:{mid}:history", keys.message_history, A.BY_MESSAGE),
    R("wa:wamsg:{ws}:{wa_id...}", keys.wa_message),
    R("wa:idem:{ws}:{key...}", keys.idempotency),
    R("wa:seen:{ws}:{wa_id...}", keys.seen),
    R("wa:auth:{ws}:{sid}", keys.auth_state),
    R("wa:webhook:{ws}", keys.webhook),
    R("wa:webhook-attempts:{ws}", keys.webhook_attempts, A.ATTEMPTS),
    R("wa:dead-letters:{ws}", keys.dead_letters),
    R("wa:dead-letters:{ws}:{endpoint}", keys.endpoint_dead_letters),
    R("wa:webhook-replay:{ws}", keys.webhook_replay),
    R("wa:webhook-replay:{ws}:{endpoint}", keys.endpoint_replay),
    R("wa:webhook-endpoints:{ws}", keys.webhook_endpoints),
    R("wa:webhook-queue:{ws}:{endpoint}", keys.webhook_queue),
    R("wa:webhook-policy:{ws}", keys.webhook_policy),
    R("wa:provider:{ws}", keys.provider),
    R("wa:provider-current:{ws}", keys.provider_current),
    R("wa:breaker:{ws}", keys.breaker),
    R("wa:pacing:{ws}", keys.pacing),
    R("wa:pace:{ws}:{sid}", keys.pace_log),
    R("wa:paused:{ws}:{sid}", keys.session_paused),
    R("wa:media-policy:{ws}", keys.media_policy),
    R("wa:media:{ws}:{media_id...}", keys.media),
    R("wa:media-pending:{ws}:{media_id...}", keys.media_pending),
    R("wa:media-pending-lock:{ws}:{media_id...}", keys.media_pending_lock),
    R("wa:sync-policy:{ws}", keys.sync_policy),
    R("wa:stats:{ws}:{day}", keys.session_day_stats),
    R("wa:cmp-n:{ws}", keys.campaign_counts),
    R("wa:contacts:{ws}:{sid}", keys.contacts),
    R("wa:cmp-contact:{ws}:{sid}:{contact...}", keys.campaign_contact),
    R("wa:cmp-replied:{cid}:{contact...}", keys.campaign_replied, A.BY_CAMPAIGN),
    R("wa:primary:{ws}", keys.primary),
    R("wa:plan:{ws}", keys.plan_limits),
    R("wa:plan-msgs:{ws}:{day}", keys.plan_messages),
    R("wa:ban-risk:{ws}", keys.ban_risk_policy),
    R("wa:risk:{ws}:{sid}", keys.risk),
    R("wa:risk-above:{ws}:{sid}", keys.risk_above),
    R("wa:risk-paused:{ws}:{sid}", keys.risk_paused),
    R("wa:risk-cooldown:{ws}:{sid}", keys.risk_cooldown),
    R("wa:repliers:{ws}:{sid}:{day}", keys.repliers),
    R("wa:retention:{ws}", keys.retention),
    R("wa:cmp:{ws}:{cid}", campaigns.meta_key),
    R("wa:cmp-rcp:{ws}:{cid}", campaigns.recipients_key),
    R("wa:cmp-phones:{ws}:{cid}", campaigns.phones_key),
    R("wa:cmp-asg:{ws}:{cid}", campaigns.assignment_key),
    R("wa:cmp-open:{ws}:{cid}", campaigns.open_key),
    R("wa:cmp-idx:{ws}:{cid}", campaigns.index_key),
    R("wa:cmp-list:{ws}", campaigns.list_key),
    # an API key's
    R("wa:apikey:{key_id}", keys.api_key),
    R("wa:apikey-gen", keys.api_key_generation, A.SPLIT_HASH),
    R("wa:apikey-revoked", keys.api_key_revoked, A.SPLIT_HASH),
    R("wa:nonce:{key_id}:{value...}", keys.nonce),
    R("wa:rl:key:{key_id}", keys.key_rate_limit),  # before the kept `wa:rl:` row
    R("wa:streams:key:{key_id}", keys.key_stream_slots),
    R("wa:streams:token:{jti...}", None, A.DELETE),
    # globals read together: one tag each
    R("wa:webhook-workspaces", keys.webhook_workspaces),
    R("wa:webhook-endpoint-lanes", keys.webhook_endpoint_lanes),
    R("wa:webhook-lanes-version", keys.webhook_lanes_version),
    R("wa:webhook-lanes-seen", keys.webhook_lanes_seen),
    R("wa:metrics:cursor", keys.metrics_cursor),
    R("wa:metrics:counters", keys.metrics_counters),
    R("wa:metrics:hist:{name...}", keys.metrics_histogram),
    R("wa:metrics:qr-started", keys.metrics_qr_started),
    R("wa:stats:webhooks", keys.webhook_stats),
    # globals that keep their name
    R("wa:workspaces", keys.workspaces, A.KEEP),
    R("wa:apikeys", keys.api_key_index, A.KEEP),
    R("wa:token-revoked:{jti...}", keys.revoked_token, A.KEEP),
    R("wa:rl:{subject...}", keys.rate_limit, A.KEEP),  # stream tokens' and the number check's
    R("wa:audit", keys.audit, A.KEEP),
    R("wa:audit:anonymous", keys.audit_anonymous, A.KEEP),
    R("wa:cfg:admission", keys.admission, A.KEEP),
    R("wa:provider-workspaces", keys.provider_workspaces, A.KEEP),
    R("wa:cloud-workspaces", keys.cloud_workspaces, A.KEEP),
    R("wa:meta-number:{phone_number_id...}", keys.meta_number, A.KEEP),
    R("wa:meta-verify:{digest...}", keys.meta_verify, A.KEEP),
    R("wa:meta-verifiers:{digest...}", keys.meta_verifiers, A.KEEP),
    R("wa:sender:{epoch...}", keys.sender_alive, A.KEEP),
    R("wa:media-expiry", keys.media_expiry, A.KEEP),
    R("wa:service-alive", keys.service_alive, A.KEEP),
    R("wa:purged-workspaces", keys.purged_workspaces, A.KEEP),
    R("wa:cmp-active", lambda: campaigns.ACTIVE, A.KEEP),
    R("wa:layout", keys.layout, A.KEEP),
    R("wa:layout-lock", lambda: LOCK, A.KEEP),
)
del R, A

_PART = re.compile(r"\{(\w+)(\.\.\.)?\}")


def _regex(template: str) -> re.Pattern[str]:
    out, at = [], 0
    for m in _PART.finditer(template):
        out += [re.escape(template[at:m.start()]), f"(?P<{m[1]}>.+)" if m[2] else f"(?P<{m[1]}>[^:]+)"]
        at = m.end()
    return re.compile("".join([*out, re.escape(template[at:])]))


# rows by the old name's kind (its second segment), in table order: the first full match wins
_BY_KIND: dict[str, list[tuple[re.Pattern[str], Rule]]] = {}
for _rule in RULES:
    _BY_KIND.setdefault(_rule.old.split(":")[1], []).append((_regex(_rule.old), _rule))


def classify(name: str) -> tuple[Rule, tuple[str, ...]] | None:
    """The row an old-layout name falls under and its parts; None for a new name or one no version wrote."""
    prefix, _, rest = name.partition(":")
    if prefix != keys.PREFIX or name.startswith(NEW):
        return None
    for regex, rule in _BY_KIND.get(rest.split(":", 1)[0], ()):
        m = regex.fullmatch(name)
        if m:
            return rule, m.groups()
    return None


def new_name(name: str) -> str | None:
    """The new name of an old name that moves by its name alone (a stream's, in an attempts field), else None."""
    found = classify(name)
    if found is None or found[0].action not in (Action.RENAME, Action.ATTEMPTS):
        return None
    rule, parts = found
    return rule.new(*parts)  # type: ignore[misc]


def is_old(name: str) -> bool:
    """Written by the old layout and not (yet) moved: what the start refuses on a cluster."""
    found = classify(name)
    return found is not None and found[0].action not in (Action.KEEP, Action.ALL_SESSIONS)


@dataclass
class MigrationReport:
    renamed: int = 0
    fields_rewritten: int = 0  # webhook attempt counters whose stream name was rewritten
    fields_split: int = 0  # API key generations and revocations moved out of the global hashes
    members_moved: int = 0  # `wa:sessions:all` members of a workspace called `all`
    deleted: int = 0  # stream token leases
    orphans: int = 0  # histories without their message record, reply marks without their campaign: deleted
    kept: int = 0  # globals whose name does not change
    unknown: int = 0  # `wa:` names no version wrote: left as they are
    unknown_sample: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (old, new): both exist, nothing done

    def summary(self) -> str:
        return (f"renamed {self.renamed}, attempt fields rewritten {self.fields_rewritten}, api-key fields "
                f"split {self.fields_split}, session members moved {self.members_moved}, deleted {self.deleted}, "
                f"orphans deleted {self.orphans}, kept {self.kept}, unknown {self.unknown}, "
                f"conflicts {len(self.conflicts)}")

    def _unknown(self, name: str) -> None:
        self.unknown += 1
        if len(self.unknown_sample) < SAMPLE:
            self.unknown_sample.append(name)


# KEYS: the attempts hash, its new name. ARGV: pairs (old field, new field). Returns 1 moved, 0 the new name
# exists (a conflict), -1 nothing under the old name. The fields first: a rerun finds them rewritten already.
_ATTEMPTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i = 1, #ARGV, 2 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    redis.call('HSETNX', KEYS[1], ARGV[i + 1], v)
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""

# KEYS: the global hash, then the new string key of each id in ARGV[2...]. Each field moves and leaves the hash in
# one step. ARGV[1] 'max' (a generation): the larger of both stays, a counter never goes back; '' (a revocation
# time): a new key that exists already stays.
_SPLIT = """
local counter = ARGV[1] == 'max'
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local cur = redis.call('GET', KEYS[i])
    if not cur or (counter and tonumber(v) and tonumber(cur) and tonumber(v) > tonumber(cur)) then
      redis.call('SET', KEYS[i], v)
    end
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return #ARGV - 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# a campaign's meta key in the new layout, from its own function (NUL and SOH stand in for the parts)
_NEW_CAMPAIGN = re.compile(re.escape(campaigns.meta_key("\0", "\1")).replace("\0", "(?P<ws>[^:{}]+)")
                           .replace("\1", "(?P<cid>[^:]+)"))


def _is_missing(reply: object) -> bool:
    return isinstance(reply, ResponseError) and "no such key" in str(reply).lower()


class _Migration:
    """One run of `migrate`: the scripts, the lock, what it found."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self.report = MigrationReport()
        self.token = secrets.token_hex(8)
        self.campaign_ws: dict[str, set[str]] = {}
        self._attempts = redis.register_script(_ATTEMPTS)
        self._split = redis.register_script(_SPLIT)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def run(self) -> MigrationReport:
        if not await self.redis.set(LOCK, self.token, nx=True, ex=LOCK_TTL_S):
            raise LayoutError(f"another key layout migration holds {LOCK}; wait for it (or, if it was killed, "
                              f"for the lock to expire within {LOCK_TTL_S} s) and start again")
        try:
            # first everything but the reply marks, noting every campaign's workspace on the way
            async for names in scan_batches(self.redis, f"{keys.PREFIX}:*"):
                await self._batch(names)
                await self._renew(keys=[LOCK], args=[self.token, LOCK_TTL_S])
            async for names in scan_batches(self.redis, "wa:cmp-replied:*"):
                await self._replied(names)
                await self._renew(keys=[LOCK], args=[self.token, LOCK_TTL_S])
            left, sample = await old_names(self.redis)
            if self.report.conflicts or left:
                conflicts = ", ".join(f"{o} -> {n}" for o, n in self.report.conflicts[:SAMPLE])
                raise LayoutError(f"key layout migration incomplete: {left} old name(s) left (e.g. {sample}); "
                                  f"conflicts, where the new name exists already and nothing was overwritten: "
                                  f"[{conflicts}]. Resolve them (keep one of each pair) and start again.")
            await self.redis.set(keys.layout(), keys.LAYOUT)
            return self.report
        finally:
            await self._release(keys=[LOCK], args=[self.token])

    async def _batch(self, names: list[str]) -> None:
        renames: list[tuple[str, str]] = []
        deletes: list[str] = []
        messages: set[str] = set()
        for name in names:
            if name == LOCK:
                continue
            if name.startswith(NEW):
                m = _NEW_CAMPAIGN.fullmatch(name)
                if m:  # a campaign moved by an earlier run: its reply marks still need its workspace
                    self.campaign_ws.setdefault(m["cid"], set()).add(m["ws"])
                continue
            found = classify(name)
            if found is None:
                self.report._unknown(name)
                continue
            rule, parts = found
            if rule.action is Action.RENAME:
                if rule.new is campaigns.meta_key:
                    self.campaign_ws.setdefault(parts[1], set()).add(parts[0])
                renames.append((name, rule.new(*parts)))  # type: ignore[misc]
            elif rule.action is Action.BY_MESSAGE:
                messages.add(parts[0])
            elif rule.action is Action.ATTEMPTS:
                await self._move_attempts(name, rule.new(*parts))  # type: ignore[misc]
            elif rule.action is Action.SPLIT_HASH:
                await self._split_hash(name, rule.new)  # type: ignore[arg-type]
            elif rule.action is Action.ALL_SESSIONS:
                await self._split_all_sessions(name)
            elif rule.action is Action.DELETE:
                deletes.append(name)
            elif rule.action is Action.KEEP:
                self.report.kept += 1
            # BY_CAMPAIGN: the second pass, once every campaign's workspace is known
        await self._rename(renames)
        if deletes:
            self.report.deleted += int(await self.redis.delete(*deletes))
        await self._messages(sorted(messages))

    async def _rename(self, pairs: Sequence[tuple[str, str]]) -> list[bool | None]:
        """RENAMENX each; per pair True (moved), False (conflict, reported) or None (the old name is gone:
        moved or expired since the SCAN named it)."""
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for old, new in pairs:
                pipe.renamenx(old, new)
            replies = await pipe.execute(raise_on_error=False)
        out: list[bool | None] = []
        for (old, new), reply in zip(pairs, replies):
            if _is_missing(reply):
                out.append(None)
            elif isinstance(reply, Exception):
                raise reply
            elif reply:
                self.report.renamed += 1
                out.append(True)
            else:
                self.report.conflicts.append((old, new))
                out.append(False)
        return out

    async def _messages(self, mids: list[str]) -> None:
        """Each message's history, then its record: the record names the workspace both need, so it moves last
        (a rerun after a stop between the two still finds it), and not at all while the history conflicts."""
        if not mids:
            return
        old_record = {mid: f"{keys.PREFIX}:msg:{mid}" for mid in mids}
        old_history = {mid: f"{keys.PREFIX}:msg:{mid}:history" for mid in mids}
        async with self.redis.pipeline(transaction=False) as pipe:
            for mid in mids:
                pipe.hget(old_record[mid], "workspace_id")
            owners = await pipe.execute()
        owned = [(mid, ws) for mid, ws in zip(mids, owners) if ws]
        # no record (expired), or a fragment without its workspace: nobody can reach it under any name
        lost = [name for mid, ws in zip(mids, owners) if not ws for name in (old_history[mid], old_record[mid])]
        if lost:
            self.report.orphans += int(await self.redis.delete(*lost))
        histories = await self._rename([(old_history[mid], keys.message_history(ws, mid)) for mid, ws in owned])
        await self._rename([(old_record[mid], keys.message(ws, mid))
                            for (mid, ws), moved in zip(owned, histories) if moved is not False])

    async def _replied(self, names: list[str]) -> None:
        renames, orphans = [], []
        for name in names:
            found = classify(name)
            if found is None or found[0].action is not Action.BY_CAMPAIGN:
                continue
            cid, contact = found[1]
            owners = self.campaign_ws.get(cid, set())
            if len(owners) == 1:
                renames.append((name, keys.campaign_replied(next(iter(owners)), cid, contact)))
            elif not owners:
                orphans.append(name)
            else:  # one campaign id in two workspaces: which one it counted for is not known
                self.report.conflicts.append((name, f"one of {sorted(owners)}"))
        await self._rename(renames)
        if orphans:
            self.report.orphans += int(await self.redis.delete(*orphans))

    async def _move_attempts(self, old: str, new: str) -> None:
        pairs: list[str] = []
        for name in await self.redis.hkeys(old):
            stream, sep, entry = name.rpartition("|")
            moved = new_name(stream) if sep else None
            if moved:
                pairs += [name, f"{moved}|{entry}"]
        result = int(await self._attempts(keys=[old, new], args=pairs))
        if result == 1:
            self.report.renamed += 1
            self.report.fields_rewritten += len(pairs) // 2
        elif result == 0:
            self.report.fields_rewritten += len(pairs) // 2
            self.report.conflicts.append((old, new))

    async def _split_hash(self, name: str, new: Callable[[str], str]) -> None:
        # every step removes the fields it moved, so reading from the start again always progresses
        while True:
            _, fields = await self.redis.hscan(name, 0, count=500)
            if not fields:
                return
            ids = list(fields)
            mode = "max" if new is keys.api_key_generation else ""
            await self._split(keys=[name, *(new(i) for i in ids)], args=[mode, *ids])
            self.report.fields_split += len(ids)

    async def _split_all_sessions(self, name: str) -> None:
        ours = [m for m in await self.redis.smembers(name) if "/" not in m]  # global members are `ws/sid`
        if ours:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(keys.session_index("all"), *ours)
                pipe.srem(name, *ours)
                await pipe.execute()
            self.report.members_moved += len(ours)
        self.report.kept += 1


async def old_names(redis: RedisClient) -> tuple[int, list[str]]:
    """How many names of the old layout are left, and a few of them (SCAN: on a cluster, every primary)."""
    count, sample = 0, []
    async for names in scan_batches(redis, f"{keys.PREFIX}:*"):
        for name in names:
            if is_old(name):
                count += 1
                if len(sample) < SAMPLE:
                    sample.append(name)
    return count, sample


async def migrate(redis: RedisClient) -> MigrationReport:
    """Move every old name to its new one and write the marker; raises LayoutError (marker not written) while a
    conflict or an old name is left. A single Redis only, with the service's writers stopped."""
    return await _Migration(redis).run()


async def ensure_layout(redis: RedisClient, *, cluster: bool, running: Sequence[str] = ()) -> MigrationReport | None:
    """The data in LAYOUT, or LayoutError. None when it was already; else what was done.

    `running`: the service's actors still alive (detached ones survive a driver): they would write old names
    while the data moves, so a migration refuses to start while there are any."""
    marker = await redis.get(keys.layout())
    if marker == keys.LAYOUT:
        return None
    if marker is not None:
        raise LayoutError(f"this Redis holds key layout {marker!r}; this version reads layout {keys.LAYOUT!r} only "
                          "(was it written by a newer version?)")
    if cluster:
        left, sample = await old_names(redis)
        if left:
            raise LayoutError(
                f"this Redis Cluster holds {left} key(s) of the old key layout (e.g. {sample}), and a cluster cannot "
                "rename keys across slots. Migrate on a single Redis first: start this version once on the "
                "single Redis that holds the data (or run `python -m wa_ray.storage.layout_migration "
                "redis://<that server>`), then copy it into the cluster (e.g. `redis-cli --cluster import "
                "<cluster node> --cluster-from <that server> --cluster-copy`) and start again.")
        await redis.set(keys.layout(), keys.LAYOUT, nx=True)
        return MigrationReport()
    if running:
        raise LayoutError(f"the key layout must be migrated, but the service's actors still run ({sorted(running)}); "
                          "stop the whole service (`ray stop`, or kill those detached actors) and start again")
    return await migrate(redis)


async def prepare(url: str, *, running: Sequence[str] = ()) -> MigrationReport | None:
    """`ensure_layout` on the Redis at `url`, logged: what the service start runs before any actor opens Redis."""
    redis = connect(url)
    try:
        report = await ensure_layout(redis, cluster=is_cluster(url), running=running)
    finally:
        await redis.aclose()
    if report is not None:
        log.info("key layout %s: %s", keys.LAYOUT, report.summary())
        if report.unknown:
            log.warning("key layout migration left %d unknown name(s) as they were, e.g. %s", report.unknown,
                        report.unknown_sample)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m wa_ray.storage.layout_migration <redis url>`: migrate with the service stopped."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m wa_ray.storage.layout_migration redis://[:password@]host:port", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(prepare(args[0]))
    except LayoutError as exc:
        print(f"layout migration: {exc}", file=sys.stderr)
        return 1
    print(f"key layout {keys.LAYOUT}: " + ("already" if report is None else report.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
