"""How much more each number may send now, by its pacing windows and its daily cap on new contacts.

The default sender (the primary when it can send, else the number with the most headroom) and the
campaign distribution both rank numbers by this. It is read from the same Redis keys the senders
write (storage/pacing.py send log, storage/contact_log.py, the paused marker), in one pipeline for
all the numbers asked about, so ranking 20 numbers costs one round trip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.contact_log import DAY_S, DEFAULT_DAILY_NEW_CONTACTS
from wa_ray.storage.pacing import HOUR, MINUTE, PacingPolicy


@dataclass(frozen=True)
class Headroom:
    """What one number may still send. `paused`: its sender holds every send (hourly cap, ban risk)."""

    sid: str
    minute: int
    hour: int
    new_contacts: int
    paused: bool = False

    @property
    def sends(self) -> int:
        """Messages it may send to known contacts before a cap stops it (0 while paused)."""
        return 0 if self.paused else max(0, min(self.minute, self.hour))

    def rank(self) -> tuple[int, int, int]:
        """Larger is roomier: by the hourly room, then the new-contact room, then the minute's."""
        if self.paused:
            return (-1, -1, -1)
        return (self.hour, self.new_contacts, self.minute)


async def headroom(redis: aioredis.Redis, ws: str, sids: list[str], policy: PacingPolicy,
                   daily_new_contacts: int = DEFAULT_DAILY_NEW_CONTACTS,
                   now: float | None = None) -> dict[str, Headroom]:
    """Each of `sids`'s headroom under `policy` (unpaced: the caps alone do not apply, everything is room)."""
    now = time.time() if now is None else now
    paced = policy.enabled  # unpaced, the send log's windows bound nothing: they are not read
    async with redis.pipeline(transaction=False) as pipe:
        for sid in sids:
            if paced:
                pipe.zcount(keys.pace_log(ws, sid), now - MINUTE, "+inf")
                pipe.zcount(keys.pace_log(ws, sid), now - HOUR, "+inf")
            pipe.zcount(keys.contacts(ws, sid), now - DAY_S, "+inf")
            pipe.exists(keys.session_paused(ws, sid))
        replies = await pipe.execute()
    out: dict[str, Headroom] = {}
    width = 4 if paced else 2
    for i, sid in enumerate(sids):
        row = replies[width * i: width * i + width]
        new, paused = row[-2:]
        if paced:
            minute, hour = row[0], row[1]
            out[sid] = Headroom(sid, max(0, policy.per_minute - int(minute)), max(0, policy.per_hour - int(hour)),
                                max(0, daily_new_contacts - int(new)), bool(paused))
        else:
            out[sid] = Headroom(sid, 1 << 30, 1 << 30, max(0, daily_new_contacts - int(new)), bool(paused))
    return out
