"""Issue 4 on the real stack: a linked session stays linked through actor death, browser crash and
restart; the phone's unlink, ban and conflict land in the right states; nothing leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import ray

from wa_ray.supervisors.session_supervisor import actor_name
from tests.events import collect_events
from tests.flows import link_session, stream_url, wait_state
from tests.procs import chromium_under
from wa_ray import NAMESPACE

WS = "life"


def _host() -> ray.actor.ActorHandle:
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
    return ray.get_actor(names[0], namespace=NAMESPACE)


async def test_killed_actor_comes_back_connected_without_qr(api, phone_api, service) -> None:
    if service.settings.session_hosting == "host":
        pytest.skip("host hosting has no SessionActor to kill (its grain lives and dies with the host)")
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "kill", "15551001")
        qr_before = len([e for e in events.of_type("session.qr") if e["session_id"] == "kill"])
        ray.kill(ray.get_actor(actor_name(WS, "kill"), namespace=NAMESPACE), no_restart=True)
        killed = time.monotonic()
        # the replacement actor announces itself: it took over the live page, already linked
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "kill"
                              and e["data"]["reason"] == "resumed live page", timeout=10)
        print(f"actor killed -> connected again in {time.monotonic() - killed:.2f} s")
        session = await _wait_restarted(api, "kill", 1)
        assert session["state"] == "connected"
        assert len([e for e in events.of_type("session.qr") if e["session_id"] == "kill"]) == qr_before
        # and it still sends
        sent = await api.post(f"/v1/workspaces/{WS}/messages", json={"session_id": "kill", "to": "15551999",
                                                                       "text": "after the actor died"})
        await events.wait_for(lambda e: e["type"] == "message.sent" and e["data"]["message_id"] == sent.json()["message_id"])


async def test_an_actor_killed_in_a_conflict_resumes_the_retry_not_a_false_connected(api, phone_api, service) -> None:
    """The successor of an actor that died while its page was in CONFLICT takes over the retry: it says
    `disconnected`, not "resumed live page", and comes back connected through a takeover."""
    if service.settings.session_hosting == "host":
        pytest.skip("host hosting has no SessionActor to kill (its grain lives and dies with the host)")
    number = "15551009"
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "heir", number)
        mark = len(events.events)
        # the other WhatsApp Web holds the account 5 s: the successor's first takeover fails, a later one wins
        assert (await phone_api.post(f"/_phone/{number}/conflict", json={"seconds": 5})).json()["pages"] == 1
        await wait_state(api, WS, "heir", "disconnected")
        ray.kill(ray.get_actor(actor_name(WS, "heir"), namespace=NAMESPACE), no_restart=True)
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "heir"
                              and e["data"] == {"state": "disconnected", "previous": "stopped",
                                                "reason": "socket CONFLICT"}, timeout=20)
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "heir"
                              and e["data"]["reason"] == "connection restored" and events.events.index(e) > mark,
                              timeout=30)
        assert not [e for e in events.events[mark:] if e["session_id"] == "heir" and e["type"] == "session.status"
                    and e["data"]["reason"] == "resumed live page"], "a page in CONFLICT is not connected"


async def _wait_restarted(api, sid: str, restarts: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = (await api.get(f"/v1/workspaces/{WS}/sessions/{sid}")).json()
        if s["restarts"] >= restarts and s["state"] == "connected":
            return s
        await asyncio.sleep(0.05)
    raise TimeoutError(s)


async def test_browser_crash_reconnects_from_saved_state_without_qr(api, phone_api, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "crash", "15551002")
        await asyncio.sleep(0.5)  # auth state is saved right after ready
        host_pid = (await _host().ping.remote())["pid"]
        browser = chromium_under(host_pid, "")
        assert len(browser) == 1, "one Chromium per node"
        mark = len(events.events)
        os.kill(browser[0], signal.SIGKILL)
        crashed = time.monotonic()
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "crash"
                              and e["data"]["state"] == "reconnecting")
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "crash"
                              and e["data"]["state"] == "connected" and events.events.index(e) > mark, timeout=30)
        print(f"browser killed -> connected again in {time.monotonic() - crashed:.2f} s")
        assert not [e for e in events.events[mark:] if e["type"] == "session.qr" and e["session_id"] == "crash"]
        assert len(chromium_under(host_pid, "")) == 1


async def test_killed_browser_host_is_restarted_and_its_sessions_reconnect_without_qr(api, phone_api, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "hostless", "15551007")
        await asyncio.sleep(0.5)  # auth state saved after ready
        old_pid = (await _host().ping.remote())["pid"]
        old_chromium = chromium_under(old_pid)
        assert old_chromium
        mark = len(events.events)
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "hostless"
                              and e["data"]["state"] == "connected" and events.events.index(e) > mark, timeout=60)
        print(f"browser host killed -> connected again in {time.monotonic() - killed:.2f} s")
        assert not [e for e in events.events[mark:] if e["type"] == "session.qr" and e["session_id"] == "hostless"]
        assert (await _host().ping.remote())["pid"] != old_pid
        deadline = time.monotonic() + 15
        while [p for p in old_chromium if os.path.exists(f"/proc/{p}")] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not [p for p in old_chromium if os.path.exists(f"/proc/{p}") and not _zombie(p)], \
            "the dead host's Chromium went with it"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return True


async def test_phone_unlink_ban_and_conflict_states(api, phone_api, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "unlink", "15551003")
        await link_session(api, phone_api, events, WS, "ban", "15551004")
        await link_session(api, phone_api, events, WS, "clash", "15551005")
        await phone_api.post("/_phone/15551003/unlink", json={})
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "unlink"
                              and e["data"]["state"] == "logged_out")
        await events.wait_for(lambda e: e["type"] == "session.disconnected" and e["session_id"] == "unlink")
        # a logged-out session offers a fresh QR to relink
        await events.wait_for(lambda e: e["type"] == "session.qr" and e["session_id"] == "unlink"
                              and e["data"]["seq"] == 1 and events.events.index(e) > 0)
        await phone_api.post("/_phone/15551004/ban", json={"banned": True})
        await wait_state(api, WS, "ban", "blocked")
        await phone_api.post("/_phone/15551005/conflict", json={})
        await wait_state(api, WS, "clash", "disconnected")


async def test_conflict_from_the_phone_is_taken_over_and_queued_messages_go_once(api, phone_api, service) -> None:
    """Issue #15: the account opened elsewhere (CONFLICT) -> `disconnected`, a takeover after the first
    backoff delay -> `connected` ("connection restored"), and what was queued meanwhile is sent exactly once."""
    number, peer = "15551008", "15551998"
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "retake", number)
        mark = len(events.events)
        before = len((await phone_api.get(f"/_phone/{peer}/inbox")).json()["messages"])
        assert (await phone_api.post(f"/_phone/{number}/conflict", json={})).json()["pages"] == 1
        hit = time.monotonic()
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "retake"
                              and e["data"]["state"] == "disconnected" and e["data"]["reason"] == "socket CONFLICT")
        ids = []
        for n in range(3):
            r = await api.post(f"/v1/workspaces/{WS}/messages", json={"session_id": "retake", "to": peer,
                                                                     "text": f"queued in conflict {n}"})
            assert r.status_code == 202
            ids.append(r.json()["message_id"])
        assert not [e for e in events.events[mark:] if e["type"] == "message.sent"
                    and e["data"]["message_id"] in ids], "nothing is sent while another WhatsApp Web holds it"
        restored = await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "retake"
                                         and e["data"]["state"] == "connected"
                                         and events.events.index(e) > mark, timeout=15)
        print(f"conflict -> connected again in {time.monotonic() - hit:.2f} s")
        assert time.monotonic() - hit >= 1.9, "the takeover waited its first backoff delay"
        assert restored["data"] == {"state": "connected", "previous": "disconnected", "reason": "connection restored"}
        for mid in ids:
            await events.wait_for(lambda e, mid=mid: e["type"] == "message.sent" and e["data"]["message_id"] == mid,
                                  timeout=30)
        await asyncio.sleep(1.0)
        inbox = (await phone_api.get(f"/_phone/{peer}/inbox")).json()["messages"][before:]
        bodies = [m["body"] for m in inbox if m["body"].startswith("queued in conflict")]
        assert sorted(bodies) == [f"queued in conflict {n}" for n in range(3)], "each queued message exactly once"
        assert not [e for e in events.events[mark:] if e["type"] == "session.qr" and e["session_id"] == "retake"]
        assert not [e for e in events.events[mark:] if e["session_id"] == "retake"
                    and e["type"] == "session.status" and e["data"]["state"] == "failed"]


async def _settled_renderers(host_pid: int) -> int:
    """Chromium spawns and reaps renderers lazily; read the count once it holds still."""
    samples: list[int] = []
    while len(samples) < 3 or len(set(samples[-3:])) > 1:
        samples.append(len(chromium_under(host_pid, "renderer")))
        await asyncio.sleep(0.3)
    return samples[-1]


async def test_restart_logout_and_delete_leave_no_chromium_behind(api, phone_api, service) -> None:
    host_pid = (await _host().ping.remote())["pid"]
    for other in (await api.get(f"/v1/workspaces/{WS}/sessions")).json():
        await api.delete(f"/v1/workspaces/{WS}/sessions/{other['session_id']}")
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        before = await _settled_renderers(host_pid)
        await link_session(api, phone_api, events, WS, "tidy", "15551006")
        linked = await _settled_renderers(host_pid)
        assert linked > before
        assert (await api.post(f"/v1/workspaces/{WS}/sessions/tidy/restart")).status_code == 200
        await wait_state(api, WS, "tidy", "connected")  # restart reopens from saved state: no QR
        assert await _settled_renderers(host_pid) == linked, "restart replaced the page, it did not add one"
        assert (await api.delete(f"/v1/workspaces/{WS}/sessions/tidy")).status_code == 204
        assert await _settled_renderers(host_pid) <= before, "delete freed the session's renderer"
        assert (await api.get(f"/v1/workspaces/{WS}/sessions/tidy")).status_code == 404
        data_dir = service.settings.data_dir
        assert not (data_dir / "sessions" / WS / "tidy").exists(), "delete purges the auth state"
    assert len(chromium_under(host_pid, "")) == 1, "still one browser for the node"


async def test_a_new_session_opens_in_a_prepared_page_and_the_spares_refill(api, phone_api, service) -> None:
    host = _host()
    want = service.settings.spare_pages
    deadline = time.monotonic() + 30
    while (await host.ping.remote())["spares"] < want and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    before = await host.ping.remote()
    assert before["spares"] == want
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        assert (await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": "spare"})).status_code == 201
        await events.wait_for(lambda e: e["type"] == "session.qr" and e["session_id"] == "spare")
    after = await host.ping.remote()
    assert after["spares_used"] == before["spares_used"] + 1, "the new session took a prepared page"
    while (await host.ping.remote())["spares"] < want and time.monotonic() < deadline + 30:
        await asyncio.sleep(0.2)
    assert (await host.ping.remote())["spares"] == want, "and another was prepared in its place"
    assert (await api.delete(f"/v1/workspaces/{WS}/sessions/spare")).status_code == 204


async def test_a_new_sessions_page_opens_while_its_actor_starts(api, phone_api, service) -> None:
    """Actor hosting: the host opens a brand-new session's page while the SessionActor process starts, and
    the actor takes it over with what it said meanwhile, in order: starting, then the QR, then linked."""
    if service.settings.session_hosting == "host":
        pytest.skip("a grain starts inside the host: there is no actor process to wait for")
    host = _host()
    before = (await host.ping.remote())["preopened_taken"]
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "early", "15551013")
        states = [e["data"]["state"] for e in events.events
                  if e["type"] == "session.status" and e["session_id"] == "early"]
        assert states[:3] == ["initializing", "qr_required", "connected"], states
    assert (await host.ping.remote())["preopened_taken"] == before + 1, "the actor took the preopened page"
    assert (await api.delete(f"/v1/workspaces/{WS}/sessions/early")).status_code == 204


async def test_an_owner_left_unstarted_by_its_dead_placer_is_started_before_the_next_crash(api, phone_api, service) -> None:
    """A supervisor killed mid-revive leaves the replacement SessionActor created but never started: it owns
    nothing, and the page's crash signals still go to the dead predecessor. The chaos suite saw the next
    Chromium kill strand such a session. Here the replacement is made exactly as the dying placer made it."""
    if service.settings.session_hosting == "host":
        pytest.skip("host hosting has no SessionActor to leave unstarted (the host activates its grains itself)")
    from wa_ray.actors.session_actor import SessionActor
    from wa_ray.supervisors.placement import SLOT

    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "orphan", "15551011")
        await asyncio.sleep(0.5)  # auth state saved after ready
        host = _host()
        node = (await host.ping.remote())["node_id"]
        slots = any(n["NodeID"] == node and n["Resources"].get(SLOT) for n in ray.nodes())
        ray.kill(ray.get_actor(actor_name(WS, "orphan"), namespace=NAMESPACE), no_restart=True)
        SessionActor.options(name=actor_name(WS, "orphan"), namespace=NAMESPACE, lifetime="detached",
                             resources={SLOT: 1} if slots else {}).remote(service.config, WS, "orphan", host)
        # the supervisor finds the replacement by name and adopts it; it must also see it was never started
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "orphan"
                              and e["data"]["reason"] == "resumed live page", timeout=20)
        mark = len(events.events)
        os.kill(chromium_under((await host.ping.remote())["pid"], "")[0], signal.SIGKILL)
        await events.wait_for(lambda e: e["type"] == "session.status" and e["session_id"] == "orphan"
                              and e["data"]["state"] == "connected" and events.events.index(e) > mark, timeout=30)
        assert not [e for e in events.events[mark:] if e["type"] == "session.qr" and e["session_id"] == "orphan"]
