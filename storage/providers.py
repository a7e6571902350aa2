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
from typing import Any

import orjson
import redis.asyncio as aioredis

from sessions.crypto import MasterKey, decrypt, encrypt
from storage import keys
from storage.messages import WEBJS
from storage.registry import SessionRegistry

DEFAULT_GRAPH_VERSION = "v21.0"
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


@dataclass(frozen=True)
class CloudCredentials:
    phone_number_id: str
    access_token: str
    app_secret: str
    graph_base_url: str = "https://graph.facebook.com"
    graph_version: str = DEFAULT_GRAPH_VERSION
    options: CloudOptions = field(default_factory=CloudOptions)

    def messages_url(self) -> str:
        return f"{self.graph_base_url.rstrip('/')}/{self.graph_version}/{self.phone_number_id}/messages"


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
        # keys of a master key being rotated out still decrypt (wa_ray/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        self._registry = SessionRegistry(redis)
        self._breaker_failure = redis.register_script(_BREAKER_FAILURE)
        self._breaker_success = redis.register_script(_BREAKER_SUCCESS)

    async def set(self, ws: str, cfg: ProviderConfig, verify_token: str | None) -> None:
        old = await self._redis.hgetall(keys.provider(ws))
        body: dict[str, Any] = {"priority": cfg.priority, "override": cfg.override or "",
                                "failover_grace_s": repr(cfg.failover_grace_s)}
        if cfg.cloud is not None:
            c = cfg.cloud
            body.update(phone_number_id=c.phone_number_id, graph_base_url=c.graph_base_url,
                        graph_version=c.graph_version, options=orjson.dumps(c.options.__dict__).decode(),
                        access_token=encrypt(self._key, c.access_token.encode(), _aad("access_token", ws, c)).hex(),
                        app_secret=encrypt(self._key, c.app_secret.encode(), _aad("app_secret", ws, c)).hex(),
                        verify_digest=verify_digest(verify_token) if verify_token else "")
        async with self._redis.pipeline(transaction=True) as pipe:
            if old.get("phone_number_id") and (cfg.cloud is None or old["phone_number_id"] != cfg.cloud.phone_number_id):
                pipe.delete(keys.meta_number(old["phone_number_id"]))
            if old.get("verify_digest"):
                pipe.delete(keys.meta_verify(old["verify_digest"]))
            pipe.delete(keys.provider(ws), keys.breaker(ws))  # new credentials start with a closed breaker
            pipe.hset(keys.provider(ws), mapping=body)
            pipe.sadd(keys.provider_workspaces(), ws)
            if cfg.cloud is not None:
                pipe.set(keys.meta_number(cfg.cloud.phone_number_id), ws)
                if body["verify_digest"]:
                    pipe.set(keys.meta_verify(body["verify_digest"]), ws)
                pipe.sadd(keys.cloud_workspaces(), ws)
            else:
                pipe.srem(keys.cloud_workspaces(), ws)
            await pipe.execute()

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
        return await self._redis.get(keys.meta_number(phone_number_id))

    async def workspace_of_verify_token(self, token: str) -> str | None:
        return await self._redis.get(keys.meta_verify(verify_digest(token)))

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
