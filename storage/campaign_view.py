"""What a campaign looks like from outside: totals, per-number counts, ETA; and the numbers it may use now.

One reader for the API (GET .../campaigns/{id}) and the runner's `campaign.progress`, so both say the same.
A number is usable when it is connected and in the campaign's numbers; lost when it is gone, logged out,
waiting for a QR scan or a pairing code, blocked, failed or stopped, or not connected for longer than
LOST_GRACE_S (a short reconnect keeps its recipients). `qr_required` is lost at once: a page offers a code
only when it holds no link (a phone-side logout goes `logged_out` -> `qr_required` within a second), and
only a person linking it brings the number back, so a grace would only strand its recipients. The Cloud
API ("meta") sends template campaigns and is always usable for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis


from wa_ray.events import CAMPAIGN_PROGRESS, Event
from wa_ray.storage import tallies
from wa_ray.storage.campaign_plan import Schedule, eta_s, parse_hm
from wa_ray.storage.campaigns import Campaign, summarize
from wa_ray.storage.events import EventLog
from wa_ray.storage.pacing import PacingPolicy
from wa_ray.storage.registry import SessionRegistry

LOST_STATES = frozenset({"logged_out", "qr_required", "blocked", "failed", "stopped"})
LOST_GRACE_S = 30.0
META_NUMBER = tallies.CLOUD


@dataclass(frozen=True)
class Numbers:
    usable: list[str]  # connected, in the campaign's numbers, sorted
    lost: frozenset[str]  # its queued messages move elsewhere
    known: frozenset[str] = frozenset()  # every session of the workspace: one not among them (deleted) is lost too

    def is_lost(self, sid: str) -> bool:
        return sid in self.lost or sid not in self.known


async def numbers_of(registry: SessionRegistry, c: Campaign, now: float | None = None) -> Numbers:
    now = time.time() if now is None else now
    if c.kind == "template":
        return Numbers([META_NUMBER], frozenset(), frozenset([META_NUMBER]))
    records = {r["session_id"]: r for r in await registry.list(c.workspace_id)}
    wanted = set(records) if c.numbers is None else set(c.numbers)
    usable, lost = [], set()
    for sid, r in records.items():
        state = r.get("state") or "initializing"
        if sid in wanted and state == "connected":
            usable.append(sid)
        elif state in LOST_STATES or now - float(r.get("since") or now) > LOST_GRACE_S:
            lost.add(sid)
    lost |= {sid for sid in (c.numbers or []) if sid not in records}
    return Numbers(sorted(usable), frozenset(lost), frozenset(records))


def schedule_of(c: Campaign) -> Schedule | None:
    s = c.schedule
    if not s:
        return None
    hours = s.get("daily_hours") or None
    return Schedule(start_at=s.get("start_at"), start_hm=parse_hm(hours["from"]) if hours else None,
                    end_hm=parse_hm(hours["to"]) if hours else None, time_zone=s.get("time_zone") or "UTC")


def text_length(c: Campaign) -> int:
    return len(c.content.get("text") or c.content.get("caption") or "")


async def view(redis: aioredis.Redis, registry: SessionRegistry, c: Campaign, policy: PacingPolicy,
               now: float | None = None) -> dict[str, Any]:
    """The GET shape: campaign_id, name, status, times, totals, numbers, eta_s, eta_at, waiting."""
    now = time.time() if now is None else now
    totals, numbers = summarize(c, await tallies.campaign_counts(redis, c.workspace_id, c.campaign_id))
    eta: float | None = 0.0
    if c.status not in ("completed", "cancelled"):
        usable = (await numbers_of(registry, c, now)).usable
        eta = eta_s(totals["pending"] + totals["queued"], len(usable), policy, schedule_of(c), now,
                    length=text_length(c))
    return {"campaign_id": c.campaign_id, "name": c.name, "status": c.status, "created_at": c.created_at,
            "started_at": c.started_at, "finished_at": c.finished_at, "totals": totals, "numbers": numbers,
            "eta_s": None if eta is None else round(eta, 1), "eta_at": None if eta is None else round(now + eta, 1),
            "waiting": c.waiting or None}


async def publish_progress(events: EventLog, redis: aioredis.Redis, registry: SessionRegistry, c: Campaign,
                           policy: PacingPolicy) -> None:
    """`campaign.progress` {campaign_id, status, totals, eta_s, waiting?} (serve_app/campaign_event_models.py)."""
    v = await view(redis, registry, c, policy)
    data = {"campaign_id": c.campaign_id, "status": c.status, "totals": v["totals"], "eta_s": v["eta_s"]}
    if c.waiting:
        data["waiting"] = c.waiting
    await events.publish(Event(CAMPAIGN_PROGRESS, c.workspace_id, None, data))
