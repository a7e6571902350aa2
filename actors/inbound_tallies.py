"""What an inbound message counts for its number: the day's `received` and `replies`, the contact log,
and a campaign's `replied`.

Called by the inbound recorder (actors/inbound.py) once per WhatsApp message a contact sent to a
number (never one of ours, never a status broadcast), after its dedupe, so a redelivered message counts
nothing twice. Rules:

* `received` +1 for every such message (groups included);
* in a 1:1 chat with a known phone, the contact becomes known to the number (ContactLog.heard_from: a
  contact who wrote first is never a new contact of ours);
* a reply is the first message of the UTC day from a contact this number first wrote to in the last
  24 h (the new contacts the reply ratio of the ban-risk score is taken against): `replies` +1, once per
  contact a day;
* CampaignReplies.note_reply counts the campaign's `replied` once per contact.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from wa_ray.storage import keys, tallies
from wa_ray.storage.campaign_replies import CampaignReplies
from wa_ray.storage.contact_log import DAY_S, ContactLog

REPLIERS_TTL_S = 2 * 24 * 3600


def counts_as_inbound(data: dict, from_me: bool) -> bool:
    """A message a contact sent to us: not ours (from another device of the account), not a status."""
    return not from_me and data.get("chat_id") != "status@broadcast"


def contact_of(data: dict) -> str | None:
    """The contact-log id of a 1:1 message's sender (`<digits>@c.us`); None in a group or for a sender
    whose phone is unknown (a `@lid` the page did not resolve)."""
    phone = data.get("from")
    if data.get("is_group") or not isinstance(phone, str) or not phone.isdigit():
        return None
    return f"{phone}@c.us"


async def on_inbound(redis: aioredis.Redis, ws: str, sid: str, contact: str | None, now: float | None = None) -> None:
    now = time.time() if now is None else now
    await tallies.bump(redis, ws, sid, "received", ts=now)
    if contact is None:
        return
    first_sent = await redis.zscore(keys.contacts(ws, sid), contact)
    if first_sent is None:
        await ContactLog(redis).heard_from(ws, sid, contact)
    elif float(first_sent) > 0 and float(first_sent) >= now - DAY_S:
        repliers = keys.repliers(ws, sid, tallies.day_of(now))
        async with redis.pipeline(transaction=False) as pipe:
            pipe.sadd(repliers, contact)
            pipe.expire(repliers, REPLIERS_TTL_S)
            first_today, _ = await pipe.execute()
        if int(first_today):
            await tallies.bump(redis, ws, sid, "replies", ts=now)
    await CampaignReplies(redis).note_reply(ws, sid, contact)
