"""Each number's contacts, for the daily cap on new unique contacts (FR-8.4).

WhatsApp's ban heuristics weigh how many people a number writes to for the first time: a number that
messages 500 strangers a day looks like a spammer whatever its per-minute pace. So each number keeps
the contacts it has talked to (storage/keys.contacts): the first send to a contact is stamped with its
time; a contact that wrote to us first is stamped 0 and never counts as new. The cap counts the stamps
of the last 24 hours (a rolling day, so it has no midnight burst).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from wa_ray.storage import keys

DAY_S = 24 * 3600.0
DEFAULT_DAILY_NEW_CONTACTS = 500
KEEP_S = 90 * 24 * 3600  # a contact unheard of for this long is forgotten (the key's idle expiry)


class ContactLog:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def is_new(self, ws: str, sid: str, contact: str) -> bool:
        return await self._redis.zscore(keys.contacts(ws, sid), contact) is None

    async def new_in_day(self, ws: str, sid: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(await self._redis.zcount(keys.contacts(ws, sid), now - DAY_S, "+inf"))

    async def oldest_new_in_day(self, ws: str, sid: str, now: float | None = None) -> float | None:
        """When the oldest first-contact of the rolling day happened (the cap frees a slot 24 h after it)."""
        now = time.time() if now is None else now
        first = await self._redis.zrangebyscore(keys.contacts(ws, sid), now - DAY_S, "+inf", start=0, num=1,
                                                withscores=True)
        return float(first[0][1]) if first else None

    async def sent_to(self, ws: str, sid: str, contact: str, at: float | None = None) -> bool:
        """Stamp a first send to `contact`; True when it was a new contact (an existing stamp is kept)."""
        key = keys.contacts(ws, sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {contact: time.time() if at is None else at}, nx=True)
            pipe.expire(key, KEEP_S)
            added, _ = await pipe.execute()
        return bool(added)

    async def heard_from(self, ws: str, sid: str, contact: str) -> None:
        """A contact wrote to this number: known from now on, never a new contact of ours."""
        key = keys.contacts(ws, sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {contact: 0}, nx=True)
            pipe.expire(key, KEEP_S)
            await pipe.execute()
