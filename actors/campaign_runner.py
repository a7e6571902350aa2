"""CampaignRunner: feeds each running campaign's recipients to its numbers, a few messages ahead.

One detached actor (`campaign-runner`, max_restarts=-1; its loop starts in the constructor). Every
TICK_S it takes one step of each active campaign (storage/campaigns.py ACTIVE). A step only reads Redis
and runs idempotent writes, so a crash anywhere, and the restart's first step, repeat work without ever
repeating a send:

1. Paused or cancelled: every open message still `queued` on a number is held (storage/campaign_moves.py);
   a cancelled campaign's held ones are then cancelled and the campaign leaves ACTIVE.
2. Scheduled: it becomes running when its window opens (storage/campaign_plan.py).
3. Open messages (the ones that may still be queued) are read in one pipeline: past `sending` ->
   forgotten; queued on a lost number, or held -> placed on a usable number (the recipient's assigned one
   when usable, else the roomiest), or held when there is none.
4. Feeding, while the window is open: each number gets new recipients until it has FEED_AHEAD of the
   campaign's messages queued, so a pause or a lost number has little to move. Recipient `cursor` goes
   to the number with the most headroom (storage/headroom.py, less what is already queued on it; a paused
   number gets none, a number with no room under the workspace's ban-risk `daily_new_contacts` gets no
   contact new to it), keeping an earlier assignment. When no number may take it, `waiting` is "numbers". Per recipient, in this
   order: the assignment (HSET), the plan-limit charge, `accept` with Idempotency-Key `cmp:{cid}:{index}`
   (TTL 35 days: a repeat returns the first message and queues nothing), the open set, then the cursor
   is raised past it. A crash between any two of these re-runs the same recipient: same number, same
   message. (The one thing a crash can repeat is the plan-limit charge of that one recipient.)
5. Completed once every recipient was fed and none of its messages is queued or sending.

The fallback template (a campaign's optional `fallback_template`, used only while the workspace has the
Cloud API configured, `wa:cloud-ws`): a recipient whose number is lost goes to another number of the
campaign first, as the issue orders. It gets the template from the Cloud API instead when no other number
can take it: none of the campaign's numbers is usable (connected), or every usable one is out of room for
it for the day (paused, or at its daily new-contacts cap for a contact new to it). A number that is only
busy (its few messages ahead queued, its minute or hour window full) is waited for, never bypassed. This
applies to a queued message on a lost number or held for want of a number (storage/campaign_moves.py
`to_cloud`: the same message becomes the template in one Lua step, so it is still sent once), and to
recipients not fed yet once every number the campaign uses is lost (they are accepted on the Cloud API
with their usual Idempotency-Key). `{{var}}` in the template's parameter `text` is filled from the
recipient's variables. A message handed to the Cloud API is the cloud sender's from then on (a pause or a
cancel no longer takes it back), as a template campaign's messages are. The provider failover never moves a
campaign's message to the Cloud API itself (storage/messages.py `may_move`): it would go as free text,
which the Cloud API refuses outside the 24 h window; the runner decides, by the rule above.

`campaign.progress` goes out at most every PROGRESS_EVERY_S while running and at each status change the
runner makes (the API publishes the ones it makes).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import ray

from wa_ray.config import RuntimeConfig
from wa_ray.ids import new_id
from wa_ray.storage import keys, tallies
from wa_ray.storage.ban_risk import BanRiskStore
from wa_ray.storage.campaign_moves import HELD, CampaignMoves
from wa_ray.storage.campaign_replies import CampaignReplies
from wa_ray.storage.campaign_view import META_NUMBER, Numbers, numbers_of, publish_progress, schedule_of
from wa_ray.storage.campaigns import (
    CAMPAIGN_TTL_S, CANCELLED, COMPLETED, DRAFT, PAUSED, RUNNING, SCHEDULED, Campaign, CampaignStore, Recipient)
from wa_ray.storage.contact_log import ContactLog
from wa_ray.storage.events import EventLog
from wa_ray.storage.headroom import headroom
from wa_ray.storage.messages import META, WEBJS, MessageStore, OutboundMessage
from wa_ray.storage.pacing import PacingPolicy, PacingStore
from wa_ray.storage.redis_client import connect
from wa_ray.storage.registry import SessionRegistry
from wa_ray.wa_ids import recipient_id

log = logging.getLogger(__name__)

CAMPAIGN_RUNNER_NAME = "campaign-runner"
TICK_S = 0.5
FEED_AHEAD = 3  # a number's queued messages of one campaign; the sender takes one at a time when paced
META_AHEAD = 50
PROGRESS_EVERY_S = 2.0
PLAN_RETRY_S = 30.0
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,32})\s*\}\}")


def render(text: str | None, variables: dict[str, str]) -> str | None:
    """`{{var}}` -> the recipient's value ("" when it has none); None stays None."""
    if text is None:
        return None
    return _VAR.sub(lambda m: variables.get(m.group(1), ""), text)


def template_for(template: dict[str, Any], variables: dict[str, str]) -> dict[str, Any]:
    """The fallback template's content for one recipient: every parameter's `text` rendered."""
    components = [{**comp, "parameters": [{**p, "text": render(p["text"], variables)} if isinstance(p.get("text"), str)
                                          else p for p in comp.get("parameters") or []]}
                  for comp in template.get("components") or []]
    return {**template, "components": components}


def message_for(c: Campaign, r: Recipient) -> tuple[str, dict[str, Any]]:
    """(OutboundMessage.text, content) of recipient `r`: text and caption rendered with its variables."""
    content = dict(c.content)
    if c.kind == "text":
        content["text"] = render(content.get("text"), r.variables)
        return content["text"] or "", content
    if "caption" in content:
        content["caption"] = render(content.get("caption"), r.variables)
    return content.get("caption") or "", content


async def charge(redis: Any, ws: str, n: int) -> bool:
    """Part A's plan limit (storage/plan_limits.py charge_messages) when it is there; else no limit."""
    try:
        from wa_ray.storage.plan_limits import PlanLimitStore
    except ImportError:
        return True
    store = PlanLimitStore(redis)
    result = await store.charge_messages(ws, n)
    return bool(result.ok)


@ray.remote(num_cpus=0, max_restarts=-1)
class CampaignRunner:
    async def __init__(self, config: RuntimeConfig) -> None:
        self._redis = connect(config.redis_url)
        self._store = CampaignStore(self._redis)
        self._moves = CampaignMoves(self._redis)
        self._messages = MessageStore(self._redis)
        self._registry = SessionRegistry(self._redis)
        self._pacing = PacingStore(self._redis, PacingPolicy.from_config(config))
        self._contacts = ContactLog(self._redis)
        self._ban_risk = BanRiskStore(self._redis)
        self._replies = CampaignReplies(self._redis)
        self._events = EventLog(self._redis)
        self._published: dict[str, tuple[float, str]] = {}  # cid -> (when, status) of its last progress event
        self._plan_wait: dict[str, float] = {}  # cid -> when to try the plan limit again
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def ping(self) -> bool:
        return not self._task.done()

    async def step_now(self) -> int:
        """One step of every active campaign (tests call it to avoid waiting a tick)."""
        return await self._tick()

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:
                log.exception("campaign runner tick failed; next tick runs it again")
            await asyncio.sleep(TICK_S)

    async def _tick(self) -> int:
        active = await self._store.active()
        await asyncio.gather(*(self._guarded(ws, cid) for ws, cid in active))
        return len(active)

    async def _guarded(self, ws: str, cid: str) -> None:
        try:
            await self.step(ws, cid)
        except Exception:
            log.exception("campaign %s/%s step failed", ws, cid)

    # ------------------------------------------------------------------ one step
    async def step(self, ws: str, cid: str) -> None:
        c = await self._store.get(ws, cid)
        if c is None or c.status == COMPLETED:
            await self._store.deactivate(ws, cid)
            return
        if c.status == DRAFT:
            # the API adds a campaign to ACTIVE before the script that moves it out of draft (one slot per
            # workspace on a cluster), so a draft here is one on its way in: skip it, never SREM it (that
            # would race the API's add-then-move and leave a started campaign out of ACTIVE)
            return
        if c.status in (PAUSED, CANCELLED):
            await self._stand_still(c)
            return
        now = time.time()
        schedule = schedule_of(c)
        window_open = schedule is None or schedule.is_open(now)
        if c.status == SCHEDULED:
            if not window_open:
                return
            moved, _ = await self._store.set_status(ws, cid, (SCHEDULED,), RUNNING)
            c = await self._store.get(ws, cid)
            if c is None or not moved:
                return
        numbers = await numbers_of(self._registry, c, now)
        policy = await self._pacing.policy(ws)
        counts = await tallies.campaign_counts(self._redis, ws, cid)
        inflight = {sid: counts.get(sid, {}).get("queued", 0) + counts.get(sid, {}).get("sending", 0)
                    for sid in [*numbers.usable, META_NUMBER]}
        room = await self._room(c, numbers.usable, policy)
        for sid, r in room.items():  # what is queued on a number is not in its send log yet: count it as sent
            ahead = inflight.get(sid, 0)
            room[sid] = [r[0] - ahead, r[1] - ahead, r[2] - ahead]
        fallback = await self._fallback_ready(c)
        open_left = await self._tend_open(c, numbers, inflight, room, window_open, fallback)
        waiting, fed = "", 0
        if not window_open:
            waiting = "schedule"
        elif c.cursor < c.total:
            if fallback and not numbers.usable and self._all_lost(c, numbers):  # their recipients: the template
                waiting, fed = await self._feed(c, [META_NUMBER], inflight, {META_NUMBER: [1 << 30] * 3})
            else:
                waiting, fed = await self._feed(c, numbers.usable, inflight, room)
        if waiting != c.waiting:
            await self._store.set_waiting(ws, cid, waiting)
            c.waiting = waiting
        c = await self._store.get(ws, cid) or c
        if c.cursor >= c.total and open_left == 0 and fed == 0:  # what this step fed is still open
            moved, _ = await self._store.set_status(ws, cid, (RUNNING,), COMPLETED)
            if moved:
                await self._store.deactivate(ws, cid)
                c = await self._store.get(ws, cid) or c
        await self._progress(c, policy)

    async def _room(self, c: Campaign, usable: list[str], policy: PacingPolicy) -> dict[str, list[int]]:
        """Per usable number [hour, new_contacts, minute] still free (paused numbers are left out)."""
        if c.kind == "template":
            return {META_NUMBER: [1 << 30, 1 << 30, 1 << 30]}
        risk = await self._ban_risk.policy(c.workspace_id)  # its daily new-contacts cap; off: no cap
        cap = risk.daily_new_contacts if risk.enabled else 1 << 30
        rooms = await headroom(self._redis, c.workspace_id, usable, policy, cap)
        return {sid: [h.hour, h.new_contacts, h.minute] for sid, h in rooms.items() if not h.paused}

    async def _fallback_ready(self, c: Campaign) -> bool:
        """Whether lost numbers' recipients may get the fallback template: the campaign has one, is not a
        template campaign, and the workspace has the Cloud API configured now."""
        if not c.fallback or c.kind == "template":
            return False
        return bool(await self._redis.sismember(keys.cloud_workspaces(), c.workspace_id))

    @staticmethod
    def _all_lost(c: Campaign, numbers: Numbers) -> bool:
        """Every number the campaign uses is lost (not merely reconnecting): its unfed recipients have none."""
        wanted = c.numbers if c.numbers is not None else sorted(numbers.known)
        return bool(wanted) and all(numbers.is_lost(sid) for sid in wanted)

    async def _may_take(self, c: Campaign, phone: str, room: dict[str, list[int]]) -> bool:
        """Some usable, unpaused number has room for this recipient today (busy or not right now)."""
        for sid, r in room.items():
            if sid != META_NUMBER and (r[1] > 0 or not await self._contacts.is_new(
                    c.workspace_id, sid, recipient_id(phone))):
                return True
        return False

    @staticmethod
    def _ahead(c: Campaign, sid: str) -> int:
        return META_AHEAD if c.kind == "template" or sid == META_NUMBER else FEED_AHEAD

    def _pick(self, c: Campaign, inflight: dict[str, int], room: dict[str, list[int]],
              exclude: frozenset[str] = frozenset()) -> list[str]:
        """Numbers that can take one more message now, roomiest first."""
        ok = [s for s, r in room.items()
              if s not in exclude and inflight.get(s, 0) < self._ahead(c, s) and r[0] > 0 and r[2] > 0]
        return sorted(ok, key=lambda s: (room[s][0], room[s][1], room[s][2], s), reverse=True)

    async def _choose(self, c: Campaign, phone: str, assigned: str | None, inflight: dict[str, int],
                      room: dict[str, list[int]]) -> str | None:
        candidates = self._pick(c, inflight, room)
        if assigned in candidates:
            return assigned
        if assigned and assigned in room:  # its number is there but full right now: wait for it
            return None
        for sid in candidates:
            if sid == META_NUMBER or room[sid][1] > 0 or not await self._contacts.is_new(
                    c.workspace_id, sid, recipient_id(phone)):
                return sid
        return None

    def _took(self, sid: str, inflight: dict[str, int], room: dict[str, list[int]]) -> None:
        inflight[sid] = inflight.get(sid, 0) + 1
        if sid in room:
            room[sid] = [room[sid][0] - 1, room[sid][1] - 1, room[sid][2] - 1]

    async def _tend_open(self, c: Campaign, numbers: Numbers, inflight: dict[str, int], room: dict[str, list[int]],
                         window_open: bool, fallback: bool) -> int:
        """Prune settled open messages; move the queued ones of lost numbers and the held ones (to another
        number, else, with `fallback`, to the Cloud API as the fallback template when no number may take its
        recipient today). Returns how many open messages are still queued or sending."""
        ws, cid = c.workspace_id, c.campaign_id
        mids = await self._store.open_messages(ws, cid)
        if not mids:
            return 0
        records = await self._fields(ws, mids)
        done, left = [], 0
        for mid, (status, sid, held, to, provider) in zip(mids, records, strict=True):
            if status not in ("queued", "sending"):
                done.append(mid)
                continue
            left += 1
            if status != "queued" or c.kind == "template" or provider == META:
                continue
            if held == "1" or numbers.is_lost(sid):
                expect = HELD if held == "1" else sid
                target = None
                if window_open:
                    assigned = (await self._store.assignments(ws, cid, [to])).get(to)
                    target = await self._choose(c, to, None if assigned and numbers.is_lost(assigned) else assigned,
                                                inflight, room)
                    if target is None and fallback and not await self._may_take(c, to, room):
                        await self._to_cloud(c, mid, to, expect)
                        continue
                if target is not None:
                    if await self._moves.place(ws, cid, mid, target, c.priority, expect=expect):
                        self._took(target, inflight, room)
                        await self._store.assign(ws, cid, to, target)
                        await self._replies.remember_recipient(ws, target, recipient_id(to), cid)
                elif held != "1":
                    await self._moves.hold(ws, cid, mid, expect=sid)
        await self._store.close_open(ws, cid, done)
        return left

    async def _to_cloud(self, c: Campaign, mid: str, to: str, expect: str) -> None:
        """The queued message becomes the fallback template on the Cloud API (one step; a rerun finds it moved)."""
        if c.fallback is None:
            return
        ws, cid = c.workspace_id, c.campaign_id
        r = await self._store.recipient_of(ws, cid, to)
        if await self._moves.to_cloud(ws, cid, mid, c.priority, template_for(c.fallback, r.variables),
                                      str(c.fallback.get("name", "")), expect=expect):
            await self._store.assign(ws, cid, to, META_NUMBER)

    async def _fields(self, ws: str, mids: list[str]) -> list[tuple[str, str, str, str, str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for mid in mids:
                pipe.hmget(keys.message(ws, mid), "status", "session_id", "held", "to", "provider")
            rows = await pipe.execute()
        return [(r[0] or "", r[1] or "", r[2] or "", r[3] or "", r[4] or "") for r in rows]

    async def _feed(self, c: Campaign, usable: list[str], inflight: dict[str, int],
                    room: dict[str, list[int]]) -> tuple[str, int]:
        """New recipients from the cursor on: (the reason it stopped short, "" when nothing stops it; how many
        it fed)."""
        ws, cid = c.workspace_id, c.campaign_id
        if not usable:
            return "numbers", 0
        if self._plan_wait.get(cid, 0) > time.time():
            return "plan_limit", 0
        budget = sum(max(0, self._ahead(c, s) - inflight.get(s, 0)) for s in room)
        if budget <= 0:
            return "", 0
        batch = await self._store.recipients(ws, cid, c.cursor, budget)
        phones = [r.to for r in batch]
        assigned = await self._store.assignments(ws, cid, phones)
        for offset, r in enumerate(batch):
            index = c.cursor + offset
            if not r.to:  # a recipient erased on its data subject's request (storage/subject_erasure.py)
                await self._store.advance(ws, cid, index + 1)
                continue
            sid = await self._choose(c, r.to, assigned.get(r.to), inflight, room)
            if sid is None:  # every number is busy (wait), or none may take this recipient now
                return ("numbers" if not any(inflight.get(s, 0) for s in room) else ""), offset
            await self._store.assign(ws, cid, r.to, sid)
            await self._store.note_index(ws, cid, r.to, index)
            if not await charge(self._redis, ws, 1):
                self._plan_wait[cid] = time.time() + PLAN_RETRY_S
                return "plan_limit", offset
            await self._accept(c, index, r, sid)
            await self._store.advance(ws, cid, index + 1)
            self._took(sid, inflight, room)
        return "", len(batch)

    async def _accept(self, c: Campaign, index: int, r: Recipient, sid: str) -> None:
        ws, cid = c.workspace_id, c.campaign_id
        text, content = message_for(c, r)
        provider, session, kind = (META, "", c.kind) if sid == META_NUMBER else (WEBJS, sid, c.kind)
        if sid == META_NUMBER and c.kind != "template" and c.fallback:  # every number lost: the fallback
            text, content, kind = "", template_for(c.fallback, r.variables), "template"
        msg = OutboundMessage(new_id("msg"), ws, session, r.to, text, c.priority, provider, kind=kind,
                              content=content, campaign=cid)
        accepted = await self._messages.accept(msg, f"cmp:{cid}:{index}", f"cmp:{cid}:{index}",
                                               idempotency_ttl_s=CAMPAIGN_TTL_S)
        await self._store.add_open(ws, cid, accepted.message_id)
        if provider == WEBJS:
            await self._replies.remember_recipient(ws, sid, recipient_id(r.to), cid)

    async def _stand_still(self, c: Campaign) -> None:
        """Paused: hold what is queued on numbers. Cancelled: hold, then cancel; then leave ACTIVE."""
        ws, cid = c.workspace_id, c.campaign_id
        mids = await self._store.open_messages(ws, cid)
        records = await self._fields(ws, mids) if mids else []
        done, left = [], 0
        for mid, (status, _sid, held, _to, provider) in zip(mids, records, strict=True):
            if status not in ("queued", "sending"):
                done.append(mid)
                continue
            if provider == META:  # the Cloud API's (a template campaign, or the fallback): its sender's now
                left += 1
                continue
            if status == "queued" and c.status == CANCELLED:
                if await self._moves.cancel(ws, cid, mid):
                    done.append(mid)
                    continue
            elif status == "queued" and held != "1":
                await self._moves.hold(ws, cid, mid)
            left += 1
        await self._store.close_open(ws, cid, done)
        if c.status == CANCELLED and left == 0:
            await self._store.deactivate(ws, cid)
        policy = await self._pacing.policy(ws)
        await self._progress(c, policy)

    async def _progress(self, c: Campaign, policy: PacingPolicy) -> None:
        """`campaign.progress` on a status change, else at most every PROGRESS_EVERY_S while running."""
        last_at, last_status = self._published.get(c.campaign_id, (0.0, ""))
        now = time.time()
        if c.status == last_status and (c.status != RUNNING or now - last_at < PROGRESS_EVERY_S):
            return
        await publish_progress(self._events, self._redis, self._registry, c, policy)
        self._published[c.campaign_id] = (now, c.status)

