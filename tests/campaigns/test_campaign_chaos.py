"""kill -9 mid-campaign: the process hosting one number's session, the SessionSupervisor, or both at once,
while a campaign over three linked numbers is part sent and part queued (issue #15). The campaign still
completes and every recipient's phone holds exactly one of its messages: the simulator's inboxes are the
judge, not our records. The GET's counts must equal what the phones received.

Which process hosts a session depends on WA_SESSION_HOSTING: with `actor` (the default) the session's
lifecycle runs in a SessionActor worker of its own, and its page and sender in the node's BrowserHost;
with `host` the session is a grain of the BrowserHost. `session_host` kills the former (SessionActor
worker, or BrowserHost under host hosting); `browser_host` kills the BrowserHost under actor hosting too,
since that is where a send is in flight; the kill waits for a campaign message in `sending`. A page that
dies mid-send leaves that message `failed` `unconfirmed` (actors/outbound.py: never sent again). That is the
only failure allowed and the only way a phone may lack its message; since whether the server took it first
cannot be known from the new page, an unconfirmed message may be on the phone too (once), and the GET then
counts it failed. The test prints how many of each there were.

The default suite runs the two cases that cover every kind of process: `session_host+supervisor` (both at
once) and `browser_host`; `WA_CAMPAIGN_CHAOS=all` runs each of the four (about 20 s each on 2 cores).

Each process is killed with SIGKILL by its pid (from the Ray state API), and the test checks that Ray or
the supervisor brought a new one up (a new pid under the same name), so a kill that missed fails the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest
from ray.util.state import list_actors

from tests.campaigns.test_campaigns import get_campaign, inboxes, recipients, wait_campaign
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import put_pacing
from wa_ray import NAMESPACE, SUPERVISOR_NAME, session_actor_name
from wa_ray.storage import keys
from wa_ray.storage.campaigns import open_key

N_RECIPIENTS = 60
# 3 numbers x one send per 0.3 s (plus the send itself): several seconds of sending, so a kill lands with most
# recipients still to go; the minute and hour caps are out of reach (not under test here)
PACING = {"steps": [[1000, 0.3]], "typing": False, "per_minute": 1000, "per_hour": 100_000}
# one way to WhatsApp's server: each send is in flight (`sending`, no ack yet) for a good part of its number's
# cycle, and the kill waits for one, so a dying page really cuts a send mid-flight
LATENCY_MS = 250
KILL_AFTER_SENT = 9
BROWSER_HOST = "BrowserHost"

CASES = {  # fault -> (workspace, number prefix, recipient prefix)
    "session_host": ("cmp-chaos-sh", "1555380", "1555381"),
    "supervisor": ("cmp-chaos-sv", "1555382", "1555383"),
    "session_host+supervisor": ("cmp-chaos-both", "1555384", "1555385"),
    "browser_host": ("cmp-chaos-bh", "1555386", "1555387"),
}


def _sent(counts: dict[str, Any]) -> int:
    return counts["sent"] + counts["delivered"] + counts["read"]


async def _actors(service) -> list[Any]:
    return await asyncio.to_thread(list_actors, address=service.dashboard_url, detail=True, limit=10_000,
                                   filters=[("ray_namespace", "=", NAMESPACE)], raise_on_missing_output=False)


async def _pid(service, *, name: str | None = None, class_name: str | None = None,
               not_pid: int | None = None, timeout: float = 60.0) -> int:
    """The pid of the ALIVE actor with that name (or class), other than `not_pid`; waits for it to exist."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [a.pid for a in await _actors(service) if a.state == "ALIVE" and a.pid and a.pid != not_pid
                and (name is None or a.name == name) and (class_name is None or a.class_name == class_name)]
        if len(pids) == 1:
            return pids[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no single live actor {name or class_name} other than pid {not_pid}: {pids}")
        await asyncio.sleep(0.5)


def _targets(fault: str, hosting: str, ws: str, sid: str) -> list[dict[str, str]]:
    """The actors whose processes the fault kills, as list_actors selectors."""
    session_host = ({"name": session_actor_name(ws, sid)} if hosting == "actor" else {"class_name": BROWSER_HOST})
    return {
        "session_host": [session_host],
        "supervisor": [{"name": SUPERVISOR_NAME}],
        "session_host+supervisor": [session_host, {"name": SUPERVISOR_NAME}],
        "browser_host": [{"class_name": BROWSER_HOST}],
    }[fault]


async def _records(redis, ws: str, cid: str, n: int) -> list[dict[str, str]]:
    """Our own records of the campaign's messages (status, reason), for the failed ones and a post-mortem."""
    out = []
    for i in range(n):
        mid = ((await redis.get(keys.idempotency(ws, f"cmp:{cid}:{i}"))) or "").partition("|")[0]
        rec = await redis.hgetall(keys.message(ws, mid)) if mid else {}
        out.append({"i": i, "mid": mid, **{k: rec.get(k, "") for k in ("status", "session_id", "held", "reason")}})
    return out


async def _in_flight(redis, ws: str, cid: str, timeout: float = 15.0) -> list[str]:
    """The campaign's messages in `sending` (intent recorded, the server's answer not yet in), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mids = sorted(await redis.smembers(open_key(ws, cid)))
        async with redis.pipeline(transaction=False) as pipe:
            for mid in mids:
                pipe.hget(keys.message(ws, mid), "status")
            statuses = await pipe.execute()
        sending = [mid for mid, status in zip(mids, statuses, strict=True) if status == "sending"]
        if sending:
            return sending
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no message of campaign {cid} was ever seen in flight")


DEFAULT_CASES = ("session_host+supervisor", "browser_host")
RUN_CASES = list(CASES) if os.environ.get("WA_CAMPAIGN_CHAOS") == "all" else list(DEFAULT_CASES)


@pytest.mark.parametrize("fault", RUN_CASES)
async def test_kill_9_mid_campaign_reaches_every_recipient_once(fault, api, phone_api, service, live_redis) -> None:
    hosting = service.settings.session_hosting
    if fault == "browser_host" and hosting != "actor":
        pytest.skip("under host hosting the BrowserHost is the session host: covered by session_host")
    ws, number_prefix, rcpt_prefix = CASES[fault]
    await put_pacing(api, ws, **PACING)
    numbers = {f"k{i}": f"{number_prefix}000{i}" for i in (1, 2, 3)}
    rcpts = recipients(rcpt_prefix, N_RECIPIENTS)
    marker = f"Chaos[{fault}]"
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        for sid, phone in numbers.items():
            await link_session(api, phone_api, events, ws, sid, phone)
        await asyncio.sleep(0.5)  # the auth state is saved right after ready: a restarted page restores without QR
        for phone in numbers.values():
            r = await phone_api.put(f"/_phone/{phone}/config", json={"latency_ms": LATENCY_MS})
            assert r.status_code == 200, r.text
        victims = _targets(fault, hosting, ws, "k1")
        before = [await _pid(service, **v) for v in victims]

        created = await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": fault, "message": {"text": marker + " {{name}}"}, "recipients": rcpts, "numbers": "all"})
        assert created.status_code == 201, created.text
        cid = created.json()["campaign_id"]
        at_kill = await wait_campaign(api, ws, cid, lambda c: _sent(c["totals"]) >= KILL_AFTER_SENT
                                      and c["numbers"].get("k1", {}).get("queued", 0) >= 1)
        in_flight = await _in_flight(live_redis, ws, cid)
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        done = await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed", timeout=90)
        took = time.monotonic() - killed
        # each killed process came back under a new pid (the supervisor revives a SessionActor, Ray the rest)
        after = [await _pid(service, **v, not_pid=old) for v, old in zip(victims, before, strict=True)]
        assert not set(after) & set(before)
    for phone in numbers.values():
        await phone_api.put(f"/_phone/{phone}/config", json={"latency_ms": 0})

    got = await inboxes(phone_api, rcpts)
    ours = {to: [m for m in msgs if m["body"].startswith(marker)] for to, msgs in got.items()}
    records = await _records(live_redis, ws, cid, N_RECIPIENTS)
    assert {to: len(m) for to, m in ours.items() if len(m) > 1} == {}, records  # nobody got it twice
    for r in rcpts:
        for m in ours[r["to"]]:
            assert m["body"] == f"{marker} {r['variables']['name']}"
    failed = [(rec, rcpts[rec["i"]]["to"]) for rec in records if rec["status"] == "failed"]
    # A send cut mid-flight by a dying page is failed `unconfirmed` and never sent again (actors/outbound.py):
    # the only failure allowed, at most one per number (one message per session is between intent and answer),
    # and the only way a phone may lack its message. Whether the server took it first cannot be known from the
    # new page, so an unconfirmed one may also be on the phone: once, never twice.
    assert [rec for rec, _ in failed if not rec["reason"].startswith("unconfirmed")] == [], f"{failed}"
    assert len(failed) <= len(numbers), f"{failed}"
    missing = sorted(to for to, m in ours.items() if not m)
    assert missing == sorted(to for rec, to in failed if not ours[to]), f"{missing} {records}"
    unconfirmed_received = Counter(ours[to][0]["from"] for _, to in failed if ours[to])
    if fault != "browser_host" and not (fault.startswith("session_host") and hosting == "host"):
        assert failed == []  # no page died: every recipient was reached and counted sent

    # the campaign's counts are what the phones received (less the unconfirmed ones that got there anyway),
    # in total and per number
    t = done["totals"]
    received = sum(len(m) for m in ours.values())
    assert t["recipients"] == N_RECIPIENTS and t["pending"] == 0 and t["queued"] == 0 and t["cancelled"] == 0
    assert _sent(t) == received - sum(unconfirmed_received.values()) and t["failed"] == len(failed)
    by_number = Counter(m[0]["from"] for m in ours.values() if m)
    assert set(by_number) <= set(numbers.values())
    for sid, phone in numbers.items():
        assert _sent(done["numbers"][sid]) == by_number[phone] - unconfirmed_received[phone], (sid, done["numbers"])
        assert done["numbers"][sid]["queued"] == 0
    assert (await get_campaign(api, ws, cid))["status"] == "completed"
    for sid in numbers:  # the next case's kill must not make these restore too (the service is shared)
        gone = await api.delete(f"/v1/workspaces/{ws}/sessions/{sid}")
        assert gone.status_code == 204, gone.text
    print(f"\n{fault} ({hosting} hosting): killed pids {before} -> {after} after {_sent(at_kill['totals'])} sent, "
          f"{len(in_flight)} in flight (then {sorted(r['status'] for r in records if r['mid'] in in_flight)}); "
          f"completed {took:.1f} s later; received {received}/{N_RECIPIENTS}, duplicates 0, "
          f"unconfirmed {len(failed)} (on the phone anyway {sum(unconfirmed_received.values())}); "
          f"per number {dict(by_number)}")
