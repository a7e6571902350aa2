"""Per-workspace provider config (WhatsApp Web or the Cloud API), breaker state, and health.

The config is what `PUT /v1/workspaces/{ws}/provider` sets: the priority, a
manual override, and the Cloud API credentials. The access token and app
secret are encrypted at rest (AES-256-GCM, a key derived from the master key
for this purpose, as storage/webhooks.py does for webhook secrets); the verify
token is kept only as a digest, since it is only ever compared.

Health is read straight from Redis by whoever needs it (the ProviderSelector,
and the senders when a send fails), so no send ever waits on a Ray call:
WhatsApp Web is healthy for a session that is `connected` and not paused by
its hourly cap; the Cloud API is healthy when it has credentials and its
circuit breaker (kept by the cloud sender, the one writer) is closed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.crypto import MasterKey, decrypt, encrypt
from wa_ray.storage import keys
from wa_ray.storage.messages import WEBJS
from wa_ray.storage.registry import SessionRegistry

DEFAULT_GRAPH_VERSION = "v21.0"
GRAPH_BASE_URL = "https://graph.facebook.com"  # Meta's; another base URL is an admin's choice (provider_api.py)
# Session states that will not come back by themselves: their queue moves to the Cloud API at once.
GONE_STATES = frozenset({"logged_out", "blocked", "failed", "stopped"})


# Consecutive failures open the breaker; any success closes it (the cloud sender is the one writer).
_BREAKER_FAILURE = """
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
if n >= tonumber(ARGV[1]) and redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
  return 1
end
return 0
"""
_BREAKER_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
local n = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if (state == false or state == 'closed') and n == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
return (state == 'open') and 1 or 0
"""


# A workspace's config is replaced in single-slot steps (issue 16): the Meta indexes are global (Meta's ids,
# not ours) and untagged, so no script holds them with the workspace's keys.
#
# 1. the new number is claimed on its own key (`_CLAIM`): a number maps to one workspace, and that uniqueness
#    only ever needed the one key. A claim in flight carries an expiry (`CLAIM_GRACE_MS`), so one left by a
#    crash lapses by itself; it is made permanent (`_SETTLE`) once the config names the number.
# 2. the global indexes gain the workspace (provider, cloud, the verify digest's set): added before the
#    config, removed after it, so a crash leaves at worst a stale member, and readers treat them as hints.
# 3. the config itself (`_SET_CONFIG`): compare-and-replace on the workspace's own keys.
# 4. what the old config named is released: a mapping only while it still names this workspace.

# KEYS: meta_number(n). ARGV: ws, grace (ms), '1' to mark an own claim in flight again (the config does not
# name the number yet), a stale owner that may be taken over ('' none). Returns {outcome, owner, owner's PTTL}.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if not owner or (owner == ARGV[4] and redis.call('PTTL', KEYS[1]) == -1) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'claimed', ARGV[1], 0}
end
if owner ~= ARGV[1] then return {'taken', owner, redis.call('PTTL', KEYS[1])} end
if ARGV[3] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {'own', owner, 0}
"""
# KEYS: meta_number(n). ARGV: ws. The config names the number now: the claim stays (no expiry); 0 when a
# claim that lapsed meanwhile went to another workspace.
_SETTLE = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PERSIST', KEYS[1]) return 1 end
if not owner then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""
# KEYS: one mapping (meta_number or the older meta_verify). ARGV: ws. Deleted only while it names ws.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# KEYS: provider(ws), breaker(ws). ARGV: the old number and verify digest as the caller read them (a
# concurrent writer changed them: 'retry'), the hash as JSON. A new config starts with a closed breaker.
_SET_CONFIG = """
if (redis.call('HGET', KEYS[1], 'phone_number_id') or '') ~= ARGV[1]
   or (redis.call('HGET', KEYS[1], 'verify_digest') or '') ~= ARGV[2] then
  return 'retry'
end
redis.call('DEL', KEYS[1], KEYS[2])
local flat = {}
for k, v in pairs(cjson.decode(ARGV[3])) do flat[#flat + 1] = k; flat[#flat + 1] = v end
redis.call('HSET', KEYS[1], unpack(flat))
return 'ok'
"""
# How long a claim may stay in flight (claimed, its config not written yet); also how long a claim left by a
# crash keeps the number from others. A set takes milliseconds.
CLAIM_GRACE_MS = 30_000
_SET_ATTEMPTS = 5


class NumberTaken(Exception):
    """The Cloud API phone_number_id is configured by another workspace."""


class Claim(StrEnum):
    """What claiming a number found (`_CLAIM`)."""

    CLAIMED = "claimed"  # free (or its mapping stale): this workspace's now, in flight until settled
    OWN = "own"  # this workspace's already
    TAKEN = "taken"  # another workspace's


@dataclass(frozen=True)
class CloudOptions:
    """Cloud API pacing and failure handling; `None` switches a limit off (load tests)."""

    throughput_per_second: int | None = 80
    pair_burst: int | None = 45
    pair_refill_s: float = 6.0
    max_throttle_retries: int = 8
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    confirm_s: float = 20.0  # how long an unanswered request may still turn out accepted (status webhook)
    timeout_s: float = 10.0
    # {"name", "language", "body_parameter": "text" | None}: a text refused for the 24 h window (131047) is
    # sent once more as this template (actors/cloud_sender.py); None: it fails as it is
    fallback_template: dict[str, Any] | None = None


@dataclass(frozen=True)
class CloudCredentials:
    phone_number_id: str
    access_token: str
    app_secret: str
    graph_base_url: str = GRAPH_BASE_URL
    graph_version: str = DEFAULT_GRAPH_VERSION
    options: CloudOptions = field(default_factory=CloudOptions)

    def messages_url(self) -> str:
        return f"{self.graph_base_url.rstrip('/')}/{self.graph_version}/{self.phone_number_id}/messages"

    def media_url(self) -> str:
        return f"{self.graph_base_url.rstrip('/')}/{self.graph_version}/{self.phone_number_id}/media"


@dataclass(frozen=True)
class ProviderConfig:
    priority: str = WEBJS
    override: str | None = None
    failover_grace_s: float = 15.0  # a session down this long (reconnecting) hands its queue over
    cloud: CloudCredentials | None = None


@dataclass(frozen=True)
class Health:
    """What a provider decision needs: which sessions can send and whether the Cloud API can."""

    sessions: dict[str, bool]  # session_id -> connected and not paused
    sessions_gone_since: dict[str, float]  # session_id -> since when it has been down (not connected)
    session_states: dict[str, str]
    meta: bool
    meta_configured: bool

    def webjs(self, session_id: str | None = None) -> bool:
        if session_id:
            return self.sessions.get(session_id, False)
        return any(self.sessions.values())

    def best_session(self, preferred: str | None = None) -> str | None:
        if preferred and self.sessions.get(preferred):
            return preferred
        ready = sorted(s for s, ok in self.sessions.items() if ok)
        return ready[0] if ready else None


def verify_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


PURPOSE = "provider-secrets"
SECRET_FIELDS = ("access_token", "app_secret")


def secret_aad(field: str, ws: str, phone_number_id: str, graph_base_url: str) -> bytes:
    """What a Cloud API secret's blob is bound to: its field, its workspace, its number and the Graph URL
    it is sent to. A secret copied to another workspace, or a `graph_base_url` edited in Redis to send the
    access token elsewhere, fails to decrypt."""
    return f"cloud-{field}:{ws}:{phone_number_id}:{graph_base_url}".encode()


def _aad(field: str, ws: str, c: CloudCredentials) -> bytes:
    return secret_aad(field, ws, c.phone_number_id, c.graph_base_url)


class ProviderStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive(PURPOSE))
        # keys of a master key being rotated out still decrypt (wa_ray/entry/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        self._registry = SessionRegistry(redis)
        self._breaker_failure = redis.register_script(_BREAKER_FAILURE)
        self._breaker_success = redis.register_script(_BREAKER_SUCCESS)
        self._claim = redis.register_script(_CLAIM)
        self._settle = redis.register_script(_SETTLE)
        self._release = redis.register_script(_RELEASE)
        self._set_config = redis.register_script(_SET_CONFIG)

    @property
    def redis(self) -> aioredis.Redis:
        """The connection it reads with: the provider snapshot reads the numbers' inputs beside it."""
        return self._redis

    async def set(self, ws: str, cfg: ProviderConfig, verify_token: str | None) -> None:
        """Replace the workspace's config; `NumberTaken` when another workspace owns the Cloud API number.

        The new number is claimed on its own key before the config names it, so two workspaces racing for a
        number cannot both get it; a release only ever deletes a mapping that names this workspace. Each step
        is single-slot (the comment above `_CLAIM`).
        """
        body: dict[str, Any] = {"priority": cfg.priority, "override": cfg.override or "",
                                "failover_grace_s": repr(cfg.failover_grace_s)}
        new_number = new_digest = ""
        if cfg.cloud is not None:
            c = cfg.cloud
            new_number, new_digest = c.phone_number_id, verify_digest(verify_token) if verify_token else ""
            body.update(phone_number_id=c.phone_number_id, graph_base_url=c.graph_base_url,
                        graph_version=c.graph_version, options=orjson.dumps(c.options.__dict__).decode(),
                        access_token=encrypt(self._key, c.access_token.encode(), _aad("access_token", ws, c)).hex(),
                        app_secret=encrypt(self._key, c.app_secret.encode(), _aad("app_secret", ws, c)).hex(),
                        verify_digest=new_digest)
        for _ in range(_SET_ATTEMPTS):
            old = await self._redis.hmget(keys.provider(ws), ["phone_number_id", "verify_digest"])
            old_number, old_digest = old[0] or "", old[1] or ""
            if new_number:
                await self._claim_number(ws, new_number, in_flight=old_number != new_number)
            await self._redis.sadd(keys.provider_workspaces(), ws)
            if new_number:
                await self._redis.sadd(keys.cloud_workspaces(), ws)
            if new_digest:
                await self._redis.sadd(keys.meta_verifiers(new_digest), ws)
            outcome = await self._set_config(keys=[keys.provider(ws), keys.breaker(ws)],
                                             args=[old_number, old_digest, orjson.dumps(body).decode()])
            if outcome != "ok":
                continue  # a claim made for this attempt lapses by itself if no later attempt settles it
            if new_number and not await self._settle(keys=[keys.meta_number(new_number)], args=[ws]):
                raise NumberTaken(new_number)  # claimed in flight for longer than CLAIM_GRACE_MS: lost meanwhile
            await self._release_old(ws, old_number, old_digest, new_number, new_digest)
            return
        raise RuntimeError(f"provider config of {ws} kept changing under {_SET_ATTEMPTS} attempts")

    async def _claim_number(self, ws: str, number: str, in_flight: bool) -> None:
        """Claim `number` for `ws` (NumberTaken when another workspace owns it). A settled claim whose owner's
        config does not name the number is stale (a crash between a config write and its release) and is
        taken over; one in flight (with an expiry) is never."""
        outcome, owner, owner_ttl = await self._claim_call(ws, number, in_flight)
        if outcome != Claim.TAKEN:
            return
        if owner_ttl == -1 and await self._redis.hget(keys.provider(owner), "phone_number_id") != number:
            outcome, _, _ = await self._claim_call(ws, number, in_flight, stale=owner)
            if outcome != Claim.TAKEN:
                return
        raise NumberTaken(number)

    async def _claim_call(self, ws: str, number: str, in_flight: bool, stale: str = "") -> tuple[str, str, int]:
        outcome, owner, owner_ttl = await self._claim(
            keys=[keys.meta_number(number)], args=[ws, CLAIM_GRACE_MS, "1" if in_flight else "0", stale])
        return outcome, owner, int(owner_ttl)

    async def _release_old(self, ws: str, old_number: str, old_digest: str, new_number: str, new_digest: str) -> None:
        """After the config is written: what the old config named and the new one does not."""
        if old_number and old_number != new_number:
            await self._release(keys=[keys.meta_number(old_number)], args=[ws])
        if old_digest:
            if old_digest != new_digest:
                await self._redis.srem(keys.meta_verifiers(old_digest), ws)
            await self._release(keys=[keys.meta_verify(old_digest)], args=[ws])  # the older single-owner form
        if not new_number:
            await self._redis.srem(keys.cloud_workspaces(), ws)

    def _open(self, field: str, ws: str, raw: dict[str, str]) -> str:
        aad = secret_aad(field, ws, raw["phone_number_id"], raw["graph_base_url"])
        return decrypt(self._readers, bytes.fromhex(raw[field]), aad).decode()

    async def get(self, ws: str) -> ProviderConfig:
        raw = await self._redis.hgetall(keys.provider(ws))
        if not raw:
            return ProviderConfig()
        cloud = None
        if raw.get("phone_number_id"):
            options = CloudOptions(**orjson.loads(raw["options"])) if raw.get("options") else CloudOptions()
            cloud = CloudCredentials(
                phone_number_id=raw["phone_number_id"],
                access_token=self._open("access_token", ws, raw), app_secret=self._open("app_secret", ws, raw),
                graph_base_url=raw["graph_base_url"], graph_version=raw["graph_version"], options=options,
            )
        return ProviderConfig(priority=raw.get("priority") or WEBJS, override=raw.get("override") or None,
                              failover_grace_s=float(raw.get("failover_grace_s") or 15.0), cloud=cloud)

    async def describe(self, ws: str) -> dict[str, Any]:
        """The config as the API shows it: never a secret."""
        cfg = await self.get(ws)
        cloud = None
        if cfg.cloud is not None:
            c = cfg.cloud
            cloud = {"phone_number_id": c.phone_number_id, "graph_base_url": c.graph_base_url,
                     "graph_version": c.graph_version, "options": c.options.__dict__,
                     "access_token": "***", "app_secret": "***"}
        return {"priority": cfg.priority, "override": cfg.override, "failover_grace_s": cfg.failover_grace_s,
                "cloud": cloud}

    async def workspaces(self) -> set[str]:
        return set(await self._redis.smembers(keys.provider_workspaces()))

    async def cloud_workspaces(self) -> set[str]:
        return set(await self._redis.smembers(keys.cloud_workspaces()))

    async def workspace_of_number(self, phone_number_id: str) -> str | None:
        """The workspace that claimed the number: a hint (a claim may be in flight, or left by a crash);
        whoever acts on it checks that the workspace's config names the number."""
        return await self._redis.get(keys.meta_number(phone_number_id))

    async def workspace_of_verify_token(self, token: str) -> str | None:
        """Some workspace whose config holds this verify token (one Meta app may serve several), or None.

        The digest's set (and the older single-owner key) are hints: a candidate counts only while its own
        config still holds the digest."""
        digest = verify_digest(token)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.meta_verifiers(digest))
            pipe.get(keys.meta_verify(digest))  # a mapping written before verify tokens became shared sets
            members, legacy = await pipe.execute()
        candidates = sorted(set(members) | ({legacy} if legacy else set()))
        if not candidates:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for ws in candidates:
                pipe.hget(keys.provider(ws), "verify_digest")
            held = await pipe.execute()
        return next((ws for ws, d in zip(candidates, held, strict=True) if d == digest), None)

    async def breaker(self, ws: str) -> dict[str, str]:
        return await self._redis.hgetall(keys.breaker(ws))

    async def breaker_failure(self, ws: str, threshold: int, error: str) -> bool:
        """Count a provider failure; True when this one opened the breaker."""
        return bool(await self._breaker_failure(keys=[keys.breaker(ws)],
                                                args=[threshold, repr(time.time()), error[:300]]))

    async def breaker_success(self, ws: str) -> bool:
        """A request went through: close the breaker; True when it was not closed before."""
        return bool(await self._breaker_success(keys=[keys.breaker(ws)]))

    async def breaker_retry_later(self, ws: str, error: str) -> None:
        """A probe of an open breaker failed: stay open for another cooldown."""
        await self._redis.hset(keys.breaker(ws), mapping={"opened_at": repr(time.time()), "last_error": error[:300]})

    async def health(self, ws: str, cfg: ProviderConfig | None = None) -> Health:
        cfg = cfg or await self.get(ws)
        sessions = await self._registry.list(ws)
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in sessions:
                pipe.exists(keys.session_paused(ws, s["session_id"]))
            pipe.hget(keys.breaker(ws), "state")
            *paused, breaker_state = await pipe.execute()
        ok, down_since, states = {}, {}, {}
        for s, is_paused in zip(sessions, paused):
            sid, state = s["session_id"], s.get("state") or ""
            ok[sid] = state == "connected" and not is_paused
            states[sid] = "paused" if state == "connected" and is_paused else state
            if not ok[sid]:
                down_since[sid] = 0.0 if state in GONE_STATES else float(s.get("since") or time.time())
        configured = cfg.cloud is not None
        return Health(ok, down_since, states, configured and (breaker_state or "closed") == "closed", configured)
