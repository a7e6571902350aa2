"""A sender's ban-risk side: what holds a send (a ban-risk pause, the daily new-contacts cap) and what a
successful send leaves behind (the contact stamp, a fresh score, `session.ban_risk` on a crossing).

Runs in the session's sender (actors/outbound.py) at pacing level: `hold` is asked before the send's
intent is recorded, so a held message simply stays queued; `after_send` runs once the message is `sent`.
A workspace whose policy is disabled costs one cached policy read per send and nothing else.

Rules (storage/ban_risk.py has the policy and the score):
* a number paused by its score holds every send until an operator resumes it;
* a message to a contact this number never talked to holds while the number's first contacts of the
  rolling 24 h reached `daily_new_contacts`, until the oldest of them is 24 h old (or the cap is raised);
  messages to known contacts and to groups are not capped;
* after an operator's resume neither hold applies for the policy's `resume_cooldown_s`;
* the score is evaluated at most every EVAL_EVERY_S per number, before a send (so failures count) and
  after one; a send inside that interval leaves one trailing evaluation scheduled, so the last send's
  effect is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from wa_ray.events import SESSION_BAN_RISK, Event
from wa_ray.storage import keys
from wa_ray.storage.ban_risk import BanRiskPolicy, BanRiskStore, Evaluation, threshold_level
from wa_ray.storage.contact_log import DAY_S, ContactLog
from wa_ray.storage.events import EventLog
from wa_ray.wa_ids import is_group_id, recipient_id

log = logging.getLogger(__name__)
EVAL_EVERY_S = 2.0


@dataclass(frozen=True)
class Hold:
    """Why a send waits, and until when it would without a change (None: until an operator resumes)."""

    reason: str  # "ban_risk" | "daily_contacts_cap"
    resume_at: float | None


def contact_of(to: str | None) -> str | None:
    """The contact-log id of a send's recipient; None for a group (not a contact of the cap)."""
    if not to:
        return None
    chat = recipient_id(to)
    return None if is_group_id(chat) or chat.endswith("@g.us") else chat


class BanRiskGate:
    def __init__(self, redis: aioredis.Redis, ws: str, sid: str, events: EventLog,
                 on_pause: Callable[[], Awaitable[None]]) -> None:
        self._redis, self._ws, self._sid = redis, ws, sid
        self._store = BanRiskStore(redis)
        self._contacts = ContactLog(redis)
        self._events = events
        self._on_pause = on_pause  # the sender marks itself paused (marker + session.paused)
        self._last_eval = 0.0
        self._trailing: asyncio.Task[None] | None = None

    async def hold(self, to: str | None, per_hour: int) -> Hold | None:
        """Whether the send to `to` must wait. Scores the number first when a score is due: failures and
        refusals since the last send count before the next one (a number whose every send is refused
        never reaches `after_send`)."""
        policy = await self._store.policy(self._ws)
        if not policy.enabled:
            return None
        if time.monotonic() - self._last_eval >= EVAL_EVERY_S:
            await self.evaluate(policy, per_hour)
        contact = contact_of(to)
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.risk_paused(self._ws, self._sid))
            pipe.exists(keys.risk_cooldown(self._ws, self._sid))
            pipe.zscore(keys.contacts(self._ws, self._sid), contact or "")
            pipe.zcount(keys.contacts(self._ws, self._sid), now - DAY_S, "+inf")
            paused, cooling, known, new_today = await pipe.execute()
        if cooling:
            return None
        if paused:
            return Hold("ban_risk", None)
        if contact is None or known is not None or int(new_today) < policy.daily_new_contacts:
            return None
        oldest = await self._contacts.oldest_new_in_day(self._ws, self._sid, now)
        return Hold("daily_contacts_cap", (oldest if oldest is not None else now) + DAY_S)

    async def after_send(self, to: str | None, per_hour: int) -> None:
        """The message reached `sent`: stamp its contact, then score the number (now or soon)."""
        policy = await self._store.policy(self._ws)
        if not policy.enabled:
            return
        contact = contact_of(to)
        if contact is not None:
            await self._contacts.sent_to(self._ws, self._sid, contact)
        wait = self._last_eval + EVAL_EVERY_S - time.monotonic()
        if wait <= 0:
            await self.evaluate(policy, per_hour)
        elif self._trailing is None or self._trailing.done():
            self._trailing = asyncio.get_running_loop().create_task(self._evaluate_later(wait, per_hour))

    async def _evaluate_later(self, wait: float, per_hour: int) -> None:
        await asyncio.sleep(wait)
        try:
            await self.evaluate(await self._store.policy(self._ws), per_hour)
        except Exception:  # a score is a report: a failed evaluation never touches the sends
            log.exception("ban-risk evaluation of %s/%s failed", self._ws, self._sid)

    async def evaluate(self, policy: BanRiskPolicy, per_hour: int) -> Evaluation:
        self._last_eval = time.monotonic()
        inputs = await self._store.inputs(self._ws, self._sid, per_hour, policy.daily_new_contacts)
        outcome = await self._store.evaluate(self._ws, self._sid, policy, inputs)
        for threshold in outcome.crossed:
            data = {"score": outcome.risk.score, "level": threshold_level(threshold, policy),
                    "threshold": threshold, "factors": outcome.risk.factors}
            await self._events.publish(Event(SESSION_BAN_RISK, self._ws, self._sid, data))
        if outcome.paused:
            await self._on_pause()
        return outcome

    def close(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
