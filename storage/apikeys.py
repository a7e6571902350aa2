"""API keys: id, role, workspace scope, rate limit, client CIDRs, and the HMAC secret encrypted at rest.

The secret must be recoverable (the server recomputes the HMAC over each
request), so it is encrypted with a key derived from the master key
(AES-256-GCM, key id in the blob header) rather than hashed. It is never part
of a repr, a listing or a log line: `ApiKey.secret` has `repr=False` and
`list()` returns `ApiKeyInfo`, which has no secret at all.

Generation: every `create` of an id bumps a counter that outlives revocation
(`keys.api_key_generation`), and tokens carry the generation of the key that
issued them, so re-creating a revoked id does not bring its old tokens back.
Revocation also leaves a mark (`keys.api_key_revoked`) that only an explicit
`create` (or `reinstate`) clears: the service's bootstrap key
(`ensure_bootstrap`) is never re-created over it at a restart.

A key's record, generation and mark share the key's slot (`{k:<id>}`), so a
create or a revoke is one step on them; the global listing index
(`keys.api_key_index`) is written outside it: added before a create, removed
after a revoke, so at worst it names an id without a record, which `list()`
skips.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as aioredis

from wa_ray.crypto import DecryptError, MasterKey, decrypt, encrypt
from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.ids import is_valid_id

Role = Literal["admin", "workspace", "read"]
ROLES: tuple[str, ...] = ("admin", "workspace", "read")

# Requests per second and burst per key when the creator does not say. Admin keys are what
# operators and the bench use, so theirs sits well above the 167 msg/s throughput goal.
DEFAULT_RATE: dict[str, tuple[float, int]] = {"admin": (1000.0, 2000), "workspace": (100.0, 200),
                                              "read": (50.0, 100)}


_OPENED_MAX = 4096
PURPOSE = "api-key-secrets"
log = logging.getLogger(__name__)


def secret_aad(key_id: str, role: str, workspace_id: str | None) -> bytes:
    """What a key's secret blob is bound to: a record whose role or workspace was edited in Redis, or a
    secret copied onto another key id, no longer decrypts, and such a key authenticates nothing."""
    return f"api-key:{key_id}:{role}:{workspace_id or ''}".encode()
MAX_CIDRS = 32

# One script on the key's own slot: refuse-if-exists / refuse-if-revoked, bump the generation, write the
# record, clear the revocation mark. KEYS: record, generation, revocation mark. ARGV: replace ('0'/'1'),
# unless_revoked ('0'/'1'), the record's fields and values. Returns the new generation, -1 (exists) or
# -2 (revoked).
_CREATE = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
local gen = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HSET', KEYS[1], 'gen', gen, unpack(ARGV, 3))
return gen
"""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class KeyExists(ValueError):
    pass


class KeyRevoked(ValueError):
    pass


def parse_cidrs(values: Sequence[str] | None) -> tuple[str, ...]:
    """Normalized networks; ValueError (without echoing the input) for anything that is not one.

    Strict: host bits set ("10.0.0.1/8") is refused rather than guessed at."""
    out: list[str] = []
    for i, value in enumerate(values or ()):
        try:
            out.append(str(ipaddress.ip_network(str(value).strip(), strict=True)))
        except ValueError:
            raise ValueError(f"allowed CIDR #{i + 1} is not a network such as 10.0.0.0/8 or 2001:db8::/32") from None
    if len(out) > MAX_CIDRS:
        raise ValueError(f"at most {MAX_CIDRS} allowed CIDRs per key")
    return tuple(dict.fromkeys(out))


def address_in(host: str | None, networks: Sequence[IpNetwork]) -> bool:
    """Whether a client address (as the proxy saw it) is inside one of the networks; never raises."""
    if host is None:
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: everything but the secret."""

    key_id: str
    role: str
    workspace_id: str | None
    rate_per_s: float  # 0 = unlimited
    burst: int
    created_at: float
    label: str = ""
    generation: int = 0  # 0: created before generations existed (its tokens carry none either)
    allowed_cidrs: tuple[str, ...] = ()  # empty: from anywhere
    max_streams: int = 0  # concurrent SSE streams of the key and its tokens; 0: the service's default


@dataclass(frozen=True)
class ApiKey(ApiKeyInfo):
    secret: str = field(default="", repr=False)

    def info(self) -> ApiKeyInfo:
        return ApiKeyInfo(self.key_id, self.role, self.workspace_id, self.rate_per_s, self.burst,
                          self.created_at, self.label, self.generation, self.allowed_cidrs, self.max_streams)

    def allows(self, host: str | None) -> bool:
        """A key without CIDRs may be used from anywhere; with them, only from inside one."""
        if not self.allowed_cidrs:
            return True
        return address_in(host, [ipaddress.ip_network(c) for c in self.allowed_cidrs])


def validate(role: str, workspace_id: str | None, key_id: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "workspace" and not workspace_id:
        raise ValueError("a workspace key needs a workspace id")
    if role == "admin" and workspace_id:
        raise ValueError("an admin key covers every workspace; give it no workspace id")
    if workspace_id is not None and not is_valid_id(workspace_id):
        raise ValueError("workspace id must match ^[a-z0-9][a-z0-9_-]{0,63}$")
    if not is_valid_id(key_id):
        raise ValueError("key id must match ^[a-z0-9][a-z0-9_-]{0,63}$")


class ApiKeyStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = (),
                 batch: Batcher | None = None) -> None:
        self._redis = redis
        self._reader: Batcher | aioredis.Redis = batch or redis  # `get` is on every signed request
        self._key = MasterKey(master.derive(PURPOSE))
        # keys of a master key being rotated out still decrypt (wa_ray/entry/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        # (encrypted blob, what it is bound to) -> its secret: every signed request reads its key, and
        # AES-GCM (plus the blob's parsing) need not run again for a blob already opened. Keyed by the
        # ciphertext and its associated data, so a key re-created or rotated (new blob) is decrypted
        # afresh and an edited role is checked afresh; a revoked key is gone from Redis, so `get` still
        # answers None at once. Bounded: cleared when full.
        self._opened: dict[tuple[str, bytes], str] = {}
        self._create = redis.register_script(_CREATE)

    async def create(self, role: str, workspace_id: str | None = None, key_id: str | None = None,
                     secret: str | None = None, *, rate_per_s: float | None = None, burst: int | None = None,
                     label: str = "", replace: bool = True, allowed_cidrs: Sequence[str] | None = None,
                     max_streams: int = 0, unless_revoked: bool = False) -> ApiKey:
        """Store a key under a new generation. `replace=False` refuses to overwrite an existing id
        (the CLI); `unless_revoked=True` refuses an id revoked since its last create (the bootstrap).
        Otherwise an explicit create clears the id's revocation mark."""
        key_id = key_id or f"key_{secrets.token_hex(6)}"
        validate(role, workspace_id, key_id)
        default_rate, default_burst = DEFAULT_RATE[role]
        rate = default_rate if rate_per_s is None else float(rate_per_s)
        if rate < 0 or (burst is not None and burst < 1):
            raise ValueError("rate must be >= 0 (0 = unlimited) and burst >= 1")
        if max_streams < 0:
            raise ValueError("max streams must be >= 0 (0 = the service's default)")
        cidrs = parse_cidrs(allowed_cidrs)
        key = ApiKey(key_id, role, workspace_id, rate, burst or max(default_burst, int(rate * 2)),
                     time.time(), label[:200], 0, cidrs, int(max_streams), secret or secrets.token_urlsafe(32))
        record = {"role": key.role, "workspace_id": key.workspace_id or "", "rate_per_s": key.rate_per_s,
                  "burst": key.burst, "created_at": key.created_at, "label": key.label,
                  "cidrs": ",".join(cidrs), "max_streams": key.max_streams,
                  "secret": encrypt(self._key, key.secret.encode(),
                                    secret_aad(key_id, key.role, key.workspace_id)).hex()}
        flat = [part for item in record.items() for part in item]
        if unless_revoked and await self.is_revoked(key_id):
            raise KeyRevoked(f"key {key_id} was revoked; only an explicit create brings it back")  # nothing indexed
        await self._redis.sadd(keys.api_key_index(), key_id)  # before the record: a stale member is harmless
        gen = int(await self._create(
            keys=[keys.api_key(key_id), keys.api_key_generation(key_id), keys.api_key_revoked(key_id)],
            args=["1" if replace else "0", "1" if unless_revoked else "0", *flat]))
        if gen == -1:
            raise KeyExists(f"key {key_id} exists; revoke it first")
        if gen == -2:
            raise KeyRevoked(f"key {key_id} was revoked; only an explicit create brings it back")
        # again after the record: a revoke of the id racing this create may have removed the member meanwhile
        await self._redis.sadd(keys.api_key_index(), key_id)
        return dataclasses.replace(key, generation=gen)

    async def get(self, key_id: str) -> ApiKey | None:
        if not is_valid_id(key_id):
            return None  # never builds a Redis key from a malformed id
        rec = await self._reader.hgetall(keys.api_key(key_id))
        if not rec or "secret" not in rec:
            return None
        if rec.get("role") not in ROLES:
            return None
        opened = (rec["secret"], secret_aad(key_id, rec["role"], rec.get("workspace_id") or None))
        secret = self._opened.get(opened)
        if secret is None:
            try:
                secret = decrypt(self._readers, bytes.fromhex(opened[0]), opened[1]).decode()
            except (DecryptError, ValueError):
                # edited in Redis (role, workspace, or a secret from another key), or not ours at all
                log.warning("api key %s: its secret does not open for its record; refusing the key", key_id)
                return None
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[opened] = secret
        return ApiKey(key_id, rec["role"], rec.get("workspace_id") or None,
                      float(rec.get("rate_per_s") or DEFAULT_RATE[rec["role"]][0]),
                      int(rec.get("burst") or DEFAULT_RATE[rec["role"]][1]),
                      float(rec.get("created_at") or 0), rec.get("label", ""), int(rec.get("gen") or 0),
                      tuple(c for c in rec.get("cidrs", "").split(",") if c), int(rec.get("max_streams") or 0),
                      secret)

    async def exists(self, key_id: str) -> bool:
        return is_valid_id(key_id) and bool(await self._redis.exists(keys.api_key(key_id)))

    async def list(self) -> list[ApiKeyInfo]:
        out = []
        for key_id in sorted(await self._redis.smembers(keys.api_key_index())):
            key = await self.get(key_id)
            if key is not None:
                out.append(key.info())
        return out

    async def revoke(self, key_id: str) -> bool:
        """Immediate: the next signed request with this key is 403, tokens it issued stop working, and
        its open streams end at their next access check. Leaves the id's revocation mark."""
        if not is_valid_id(key_id):
            return False
        async with self._redis.pipeline(transaction=True) as pipe:  # the key's own slot
            pipe.delete(keys.api_key(key_id))
            pipe.set(keys.api_key_revoked(key_id), repr(time.time()))
            deleted, _ = await pipe.execute()
        await self._redis.srem(keys.api_key_index(), key_id)  # after the record: `list()` skips a stale member
        if await self._redis.exists(keys.api_key(key_id)):  # re-created meanwhile: it stays listed
            await self._redis.sadd(keys.api_key_index(), key_id)
        return bool(deleted)

    async def is_revoked(self, key_id: str) -> bool:
        return is_valid_id(key_id) and bool(await self._redis.exists(keys.api_key_revoked(key_id)))

    async def reinstate(self, key_id: str) -> bool:
        """Clear an id's revocation mark (the operator's word), so the bootstrap may create it again."""
        return is_valid_id(key_id) and bool(await self._redis.delete(keys.api_key_revoked(key_id)))


async def ensure_bootstrap(store: ApiKeyStore, key_id: str, secret: str) -> str:
    """The service's admin key from its environment, at every start. Returns what happened:

    - "revoked": the id was revoked and not reinstated since; it stays revoked (nothing written);
    - "kept": it exists as an admin key with this secret; left alone, so its generation (and the
      tokens it issued) survive the restart;
    - "created" / "replaced": absent, or a different secret or role (the environment rotated it):
      written under a new generation.
    """
    existing = await store.get(key_id)
    if (existing is not None and existing.role == "admin" and existing.workspace_id is None
            and hmac.compare_digest(existing.secret.encode(), secret.encode())):
        return "kept"
    try:
        await store.create("admin", None, key_id, secret, unless_revoked=True)
    except KeyRevoked:
        return "revoked"
    return "replaced" if existing is not None else "created"
