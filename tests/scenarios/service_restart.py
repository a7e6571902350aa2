"""Link N sessions, stop the whole service (Ray, Serve, Chromium, embedded Redis), start it again, and time
how long until every session is connected again, counting QR codes issued.

With `--backup` it comes back somewhere else: while the service runs, `wa-ray backup` (the command, as an
operator runs it) writes an archive; after the stop, `wa-ray restore` puts it into a fresh data dir (nothing
copied by hand), and the service starts from that dir. Every session must still reconnect without a QR: the
master key, the auth states and the Redis registry all came through the archive. The restore runs within
the downtime, so it adds no time to the scenario; the backup adds its own.

With `--down-s S` the service stays down S seconds, and the first session's uptime is read after the restart
with the wall-clock bounds it must lie in: its connected time before the stop (less at most the supervisor's
alive interval) plus its time since the restart, never the downtime (storage/registry.end_stretch_at).
With `--backup` the restored Redis is the snapshot's, so the stretch before the stop is credited up to the
last alive mark the snapshot holds: the bounds are taken from the backup's start and end, not the stop's."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from wa_ray.simulator.wa_web.testing import running_web_simulator
from tests.scenarios.common import client, link_many, qr_events_since, scenario_settings, wait_all
from wa_ray.entry.service import Service
from wa_ray.supervisors.session_supervisor import ALIVE_EVERY_S

WS = "restart"


BACKUP_PASSPHRASE = "scenario backup passphrase"


def wa_ray_cli(*args: str) -> tuple[float, str]:
    """Run `wa-ray ARGS` as its own process, the passphrase in its environment only; (seconds, stdout)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wa_ray.entry.cli", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "WA_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE})
    if proc.returncode != 0:
        raise RuntimeError(f"wa-ray {args[0]} failed: {proc.stdout}{proc.stderr}")
    assert BACKUP_PASSPHRASE not in proc.stdout + proc.stderr
    return time.monotonic() - started, proc.stdout


def run(sessions: int, down_s: float = 0.0, backup: bool = False) -> dict:
    phones = {f"r{i:02d}": f"1555300{i:04d}" for i in range(sessions)}
    extra: dict = {}
    with running_web_simulator() as sim, tempfile.TemporaryDirectory() as tmp:
        settings = scenario_settings(Path(tmp) / "data", sim.url + "/")
        service = Service(settings).start()
        try:
            linked_at = time.monotonic()
            asyncio.run(_link(settings, sim.url, phones))
            link_s = time.monotonic() - linked_at
            # let the last auth states reach disk; with a downtime to check, stay connected long enough that
            # the stretch before the stop must show (it is credited up to an alive mark ALIVE_EVERY_S apart)
            asyncio.run(asyncio.sleep(ALIVE_EVERY_S + 3 if down_s else 1.0))
            connected_at = asyncio.run(_last_connected(settings))
            backup_begun = time.time()
            if backup:
                archive = Path(tmp) / "backup.warb"
                backup_s, _ = wa_ray_cli("backup", "--out", str(archive), "--data-dir", str(settings.data_dir))
                extra.update(backup_s=round(backup_s, 2), backup_bytes=archive.stat().st_size)
            backup_done = time.time()
        finally:
            stop_begun = time.time()
            service.stop()
            stopped = time.time()
        restore_begun = time.monotonic()
        if backup:  # onto a fresh data dir: the old one is left as it is, unused from here on
            fresh = Path(tmp) / "restored"
            assert not fresh.exists()
            restore_s, said = wa_ray_cli("restore", str(archive), "--data-dir", str(fresh))
            assert f"{sessions} auth state files" in said, said
            settings = settings.model_copy(update={"data_dir": fresh})
            extra.update(restore_s=round(restore_s, 2))
        time.sleep(max(0.0, down_s - (time.monotonic() - restore_begun)))  # the restore is part of the downtime
        restart_ms = int(time.time() * 1000)
        started = time.monotonic()
        service = Service(settings).start()
        try:
            up_s = time.monotonic() - started
            connected_s = asyncio.run(_wait(settings, sessions)) + up_s
            qr_after = asyncio.run(_qr(settings, restart_ms))
            uptime_s = asyncio.run(_uptime(settings))
            checked = time.time()
        finally:
            service.stop()
    since_restart = checked - restart_ms / 1000
    # the stretch before the stop ends where the Redis that came back ends: the stop, or the backup's snapshot
    credited_from, credited_to = (backup_begun, backup_done) if backup else (stop_begun, stopped)
    return {"sessions": sessions, "link_s": round(link_s, 2), "service_start_s": round(up_s, 2),
            "restart_to_all_connected_s": round(connected_s, 2), "qr_after_restart": qr_after,
            "down_s": round(restart_ms / 1000 - stopped, 2), "uptime_s": round(uptime_s, 2),
            # the first session's uptime must lie in [min, max]: connected until the last alive mark (at most
            # ALIVE_EVERY_S before the stop began, never after it ended), then again since the restart
            "uptime_min_s": round(credited_from - connected_at - ALIVE_EVERY_S - 1, 2),
            "uptime_max_s": round(credited_to - connected_at + since_restart + 1, 2), **extra}


async def _link(settings, sim_url, phones) -> None:
    async with client(settings) as api:
        await link_many(api, sim_url, WS, phones)


async def _wait(settings, count: int) -> float:
    async with client(settings) as api:
        return await wait_all(api, WS, "connected", count, timeout=120)


async def _last_connected(settings) -> float:
    async with client(settings) as api:
        r = await api.get(f"/v1/workspaces/{WS}/sessions/r00")
        return float(r.json()["last_connected_at"])


async def _uptime(settings) -> float:
    async with client(settings) as api:
        r = await api.get(f"/v1/workspaces/{WS}/sessions/r00/stats", params={"days": 2})
        assert r.status_code == 200, r.text
        return sum(day.get("uptime_s", 0.0) for day in r.json()["days"])


async def _qr(settings, since_ms: int) -> int:
    async with client(settings) as api:
        return await qr_events_since(api, WS, since_ms)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--down-s", type=float, default=0.0)
    parser.add_argument("--backup", action="store_true",
                        help="come back from `wa-ray backup` / `restore` in a fresh dir")
    args = parser.parse_args()
    result = run(args.sessions, args.down_s, args.backup)
    sys.stdout.write("RESULT " + orjson.dumps(result).decode() + "\n")
