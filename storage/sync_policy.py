"""A workspace's history sync policy: how much of a linked number's history a sync reads from its page.

`days`: messages older than this are not read (1..365, default 30); `max_chats`: the newest chats read
(1..5000, default 500); `messages_per_chat`: the newest messages of each chat within `days` (0..500, default
50; 0 syncs chats and contacts only); `on_link`: a sync runs by itself at the first `connected` of a newly
linked number (default true; a restore never syncs by itself).

Stored as JSON under keys.sync_policy(ws) and read once per sync (no cache: a sync is rare). A stored value
that is not valid (edited by hand, or written under older bounds) falls back to the default field by field,
so a sync never meets an out-of-range limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys

DAYS = (1, 365)
MAX_CHATS = (1, 5000)
MESSAGES_PER_CHAT = (0, 500)


@dataclass(frozen=True)
class SyncPolicy:
    days: int = 30
    max_chats: int = 500
    messages_per_chat: int = 50
    on_link: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def valid(self) -> bool:
        return (_within(self.days, DAYS) and _within(self.max_chats, MAX_CHATS)
                and _within(self.messages_per_chat, MESSAGES_PER_CHAT) and isinstance(self.on_link, bool))


def _within(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def policy_from(raw: Any) -> SyncPolicy:
    """The policy `raw` describes (anything: it comes from Redis); each invalid field is the default's."""
    if not isinstance(raw, dict):
        return SyncPolicy()
    d = SyncPolicy()
    days, chats, per_chat, on_link = (raw.get("days"), raw.get("max_chats"), raw.get("messages_per_chat"),
                                      raw.get("on_link"))
    return SyncPolicy(days if _within(days, DAYS) else d.days,
                      chats if _within(chats, MAX_CHATS) else d.max_chats,
                      per_chat if _within(per_chat, MESSAGES_PER_CHAT) else d.messages_per_chat,
                      on_link if isinstance(on_link, bool) else d.on_link)


class SyncPolicyStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def get(self, ws: str) -> SyncPolicy:
        raw = await self._redis.get(keys.sync_policy(ws))
        if not raw:
            return SyncPolicy()
        try:
            return policy_from(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return SyncPolicy()

    async def set(self, ws: str, policy: SyncPolicy) -> SyncPolicy:
        """Stores `policy` (checked: a value outside the bounds is a ValueError, nothing stored)."""
        if not policy.valid():
            raise ValueError("sync policy out of bounds")
        await self._redis.set(keys.sync_policy(ws), orjson.dumps(policy.to_dict()))
        return policy
