"""Backup and restore of a data dir with real embedded Redis servers (wa_ray/entry/backup.py), and the
schedule's keep-N. The whole-service round trip is in tests/scenarios/service_restart.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from tests.redis_cluster import redis_cluster_url  # noqa: F401  (fixture)
from wa_ray.config import Settings
from wa_ray.datadir_lock import hold_shared
from wa_ray.entry.backup import (BackupError, BackupSchedule, create_backup, prune, read_passphrase, restore_backup,
                                 scheduled_name)
from wa_ray.master_keys import ensure_key_file, read_key_file
from wa_ray.storage.auth_store import FileAuthStore
from wa_ray.storage.embedded import EmbeddedRedis

PASS = b"a backup passphrase, long enough"


@pytest.fixture
def source(tmp_path: Path):
    """A data dir as a running service leaves it: key file, two auth states, its embedded Redis up."""
    data = tmp_path / "src"
    keys = ensure_key_file(data / "master.key")
    server = EmbeddedRedis(data / "redis", fsync="no")
    url = server.start()
    client = redis.Redis.from_url(url)
    client.set("wa:session:acme:s1", "linked")
    client.set("wa:nonce:x", "1", ex=3000)
    client.xadd("wa:events:acme", {"type": "session.ready"})
    yield Settings(data_dir=data), url, client, keys
    client.close()
    server.stop()


async def _auth(settings: Settings, keys) -> None:
    store = FileAuthStore(settings.data_dir, list(keys))
    await store.save("acme", "s1", b'{"state": "one"}')
    await store.save("acme", "s2", b'{"state": "two"}')


async def test_round_trip_into_a_fresh_data_dir(source, tmp_path: Path) -> None:
    settings, url, client, keys = source
    await _auth(settings, keys)
    report = create_backup(settings, tmp_path / "b.warb", PASS, url)
    assert report.auth_states == 2 and report.rdb_bytes > 0 and report.size > report.rdb_bytes
    client.set("wa:after", "not in the backup")  # written after the snapshot: the backup is one instant
    archive = (tmp_path / "b.warb").read_bytes()
    assert b"linked" not in archive and keys[0].b64().encode() not in archive
    assert oct((tmp_path / "b.warb").stat().st_mode & 0o777) == "0o600"

    fresh = Settings(data_dir=tmp_path / "fresh")
    restored = restore_backup(fresh, tmp_path / "b.warb", PASS)
    assert (restored.keys, restored.auth_states) == (3, 2)
    key_file = fresh.data_dir / "master.key"
    assert read_key_file(key_file) == keys and oct(key_file.stat().st_mode & 0o777) == "0o600"
    store = FileAuthStore(fresh.data_dir, list(read_key_file(key_file)))
    assert await store.load("acme", "s1") == b'{"state": "one"}'
    assert await store.load("acme", "s2") == b'{"state": "two"}'
    with EmbeddedRedis(fresh.data_dir / "redis") as server:  # what the service loads at its start
        r = redis.Redis.from_url(server.url)
        assert r.get("wa:session:acme:s1") == b"linked" and r.xlen("wa:events:acme") == 1
        assert 2900 < r.ttl("wa:nonce:x") <= 3000 and r.get("wa:after") is None
        r.close()
    assert not list(fresh.data_dir.glob(".restore-*"))  # the staging dir is gone


async def test_wrong_passphrase_or_tampering_writes_nothing(source, tmp_path: Path) -> None:
    settings, url, _client, keys = source
    await _auth(settings, keys)
    create_backup(settings, tmp_path / "b.warb", PASS, url)
    fresh = Settings(data_dir=tmp_path / "fresh")
    with pytest.raises(BackupError, match="passphrase does not open") as err:
        restore_backup(fresh, tmp_path / "b.warb", b"the wrong passphrase, long")
    assert "wrong passphrase" not in str(err.value)
    bad = bytearray((tmp_path / "b.warb").read_bytes())
    bad[len(bad) // 2] ^= 0x40
    (tmp_path / "bad.warb").write_bytes(bytes(bad))
    with pytest.raises(BackupError, match="damaged or was altered"):
        restore_backup(fresh, tmp_path / "bad.warb", PASS)
    (tmp_path / "cut.warb").write_bytes((tmp_path / "b.warb").read_bytes()[:-40])
    with pytest.raises(BackupError, match="truncated|damaged"):
        restore_backup(fresh, tmp_path / "cut.warb", PASS)
    assert not fresh.data_dir.exists()


async def test_restore_refuses_an_existing_key_a_running_service_and_forces(source, tmp_path: Path) -> None:
    settings, url, _client, keys = source
    create_backup(settings, tmp_path / "b.warb", PASS, url)
    with pytest.raises(BackupError, match="exists"):
        create_backup(settings, tmp_path / "b.warb", PASS, url)  # never over an earlier backup
    other = Settings(data_dir=tmp_path / "other")
    other_key = ensure_key_file(other.data_dir / "master.key")
    with pytest.raises(BackupError, match="master key") as err:
        restore_backup(other, tmp_path / "b.warb", PASS)
    assert other_key[0].b64() not in str(err.value)
    assert read_key_file(other.data_dir / "master.key") == other_key
    held = hold_shared(other.data_dir)  # what a running service holds
    try:
        with pytest.raises(BackupError, match="stop it first"):
            restore_backup(other, tmp_path / "b.warb", PASS, force=True)
    finally:
        held.close()
    assert read_key_file(other.data_dir / "master.key") == other_key
    restore_backup(other, tmp_path / "b.warb", PASS, force=True)
    assert read_key_file(other.data_dir / "master.key") == keys


def test_restore_into_an_external_redis_copies_keys_with_ttl(source, tmp_path: Path) -> None:
    settings, url, _client, _keys = source
    create_backup(settings, tmp_path / "b.warb", PASS, url)
    with EmbeddedRedis(tmp_path / "target", fsync="no") as target:
        target_url = target.url.rsplit("/", 1)[0] + "/3"  # the service's own db on a shared server
        r = redis.Redis.from_url(target_url)
        fresh = Settings(data_dir=tmp_path / "fresh", redis_url=target_url)
        report = restore_backup(fresh, tmp_path / "b.warb", PASS)
        assert report.keys == 3
        assert r.get("wa:session:acme:s1") == b"linked" and 2900 < r.ttl("wa:nonce:x") <= 3000
        assert r.ttl("wa:session:acme:s1") == -1 and r.xlen("wa:events:acme") == 1
        assert redis.Redis.from_url(target.url).dbsize() == 0  # db 0 untouched
        again = Settings(data_dir=tmp_path / "again", redis_url=target_url)
        with pytest.raises(BackupError, match="not empty"):
            restore_backup(again, tmp_path / "b.warb", PASS)
        r.set("wa:session:acme:s1", "changed")
        assert restore_backup(again, tmp_path / "b.warb", PASS, force=True).keys == 3
        assert r.get("wa:session:acme:s1") == b"linked"
        r.close()


def test_passphrase_sources(tmp_path: Path) -> None:
    f = tmp_path / "pass"
    f.write_text("from the file, long enough\n")
    assert read_passphrase(f, {"WA_BACKUP_PASSPHRASE": "from the env, long enough"}) == b"from the file, long enough"
    assert read_passphrase(None, {"WA_BACKUP_PASSPHRASE": "from the env, long enough"}) == b"from the env, long enough"
    with pytest.raises(BackupError, match="WA_BACKUP_PASSPHRASE"):
        read_passphrase(None, {})
    with pytest.raises(BackupError, match="at least 12") as err:
        read_passphrase(None, {"WA_BACKUP_PASSPHRASE": "tiny-secret"})
    assert "tiny-secret" not in str(err.value)


def test_prune_keeps_the_newest_n_and_nothing_else_is_touched(tmp_path: Path) -> None:
    start = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)
    names = [scheduled_name(start + timedelta(hours=h)) for h in (5, 0, 9, 2, 7, 1)]  # created out of order
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    for other in ("wa-ray-backup-manual.warb", "notes.txt", "wa-ray-backup-20261206T210000Z.warb.tmp"):
        (tmp_path / other).write_bytes(b"y")
    removed = prune(tmp_path, 3)
    assert sorted(p.name for p in removed) == sorted(scheduled_name(start + timedelta(hours=h)) for h in (0, 1, 2))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([scheduled_name(start + timedelta(hours=h)) for h in (5, 7, 9)] +
                          ["wa-ray-backup-manual.warb", "notes.txt", "wa-ray-backup-20261206T210000Z.warb.tmp"])
    assert prune(tmp_path, 3) == []
    with pytest.raises(ValueError):
        prune(tmp_path, 0)


def test_schedule_writes_then_prunes(source, tmp_path: Path) -> None:
    settings, url, _client, _keys = source
    schedule = BackupSchedule(settings, url, PASS, tmp_path / "backups", interval_s=3600, keep=2)
    assert "backup passphrase" not in repr(schedule) and url not in repr(schedule)
    start = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)
    for minute in range(4):
        schedule.run_once(start + timedelta(minutes=minute))
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        scheduled_name(start + timedelta(minutes=2)), scheduled_name(start + timedelta(minutes=3))]
    fresh = Settings(data_dir=tmp_path / "fresh")
    assert restore_backup(fresh, tmp_path / "backups" / scheduled_name(start + timedelta(minutes=3)), PASS).keys == 3


def test_cli_backup_of_a_stopped_data_dir_and_restore(tmp_path: Path) -> None:
    """The commands as an operator types them; the passphrase only in the environment, never in output."""
    data = tmp_path / "src"
    ensure_key_file(data / "master.key")
    with EmbeddedRedis(data / "redis") as server:
        redis.Redis.from_url(server.url).set("k", "v")
    env = {**os.environ, "WA_BACKUP_PASSPHRASE": PASS.decode()}
    cli = [sys.executable, "-m", "wa_ray.entry.cli"]
    out = subprocess.run([*cli, "backup", "--out", str(tmp_path / "b.warb"), "--data-dir", str(data)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "backup written" in out.stdout
    out = subprocess.run([*cli, "restore", str(tmp_path / "b.warb"), "--data-dir", str(tmp_path / "new")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1 Redis keys" in out.stdout
    again = subprocess.run([*cli, "restore", str(tmp_path / "b.warb"), "--data-dir", str(tmp_path / "new")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "master key" in again.stderr and "Traceback" not in again.stderr
    wrong = subprocess.run([*cli, "restore", str(tmp_path / "b.warb"), "--data-dir", str(tmp_path / "w")],
                           env={**env, "WA_BACKUP_PASSPHRASE": "wrong passphrase value"},
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "passphrase does not open" in wrong.stderr
    keytext = (tmp_path / "new" / "master.key").read_text().strip()
    for run in (out, again, wrong):
        assert PASS.decode() not in run.stdout + run.stderr and keytext not in run.stdout + run.stderr
        assert "wrong passphrase value" not in run.stdout + run.stderr


def test_the_schedule_thread_backs_up_every_interval_and_logs_no_secret(source, tmp_path: Path, caplog) -> None:
    settings, url, _client, _keys = source
    schedule = BackupSchedule(settings, url, PASS, tmp_path / "backups", interval_s=1.1, keep=1).start()
    try:
        deadline = time.monotonic() + 20
        while len(list((tmp_path / "backups").glob("*.warb"))) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # a second backup, then the first is pruned
    finally:
        schedule.stop()
    kept = list((tmp_path / "backups").glob("*.warb"))
    assert len(kept) == 1
    assert restore_backup(Settings(data_dir=tmp_path / "fresh"), kept[0], PASS).keys == 3

    password = url.split(":")[2].split("@")[0]
    broken = BackupSchedule(settings, f"redis://:{password}@127.0.0.1:1/0", PASS, tmp_path / "b2", 0.2, 1).start()
    try:
        time.sleep(1.0)
    finally:
        broken.stop()
    failures = [r.getMessage() for r in caplog.records if "scheduled backup failed" in r.getMessage()]
    assert failures and all(password not in m and PASS.decode() not in m for m in failures), failures
    assert not list((tmp_path / "b2").glob("*"))  # no partial archive left behind


@pytest.mark.parametrize("name", ["../evil", "sessions/../../evil/x/auth.bin", "/etc/evil", "sessions/a/b/other"])
def test_an_archive_with_an_entry_we_never_write_is_refused(tmp_path: Path, name: str) -> None:
    import io
    import tarfile

    from wa_ray.entry.backup_archive import EncryptingWriter

    with (tmp_path / "odd.warb").open("wb") as fh:
        writer = EncryptingWriter(fh, PASS)
        with tarfile.open(fileobj=writer, mode="w|") as tar:
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        writer.close()
    with pytest.raises(BackupError, match="unexpected entry"):
        restore_backup(Settings(data_dir=tmp_path / "d" / "fresh"), tmp_path / "odd.warb", PASS)
    assert not list(tmp_path.rglob("evil")) and not list((tmp_path / "d" / "fresh").glob(".restore-*"))


def test_a_redis_cluster_is_refused_before_anything_is_written(redis_cluster_url: str, tmp_path: Path) -> None:
    """One SYNC would hold one master's slots: a backup of a cluster, by its URL or by one node's, is refused."""
    userinfo, _, hosts = redis_cluster_url.partition("://")[2].rpartition("@")
    one_node = f"redis://{userinfo}@{hosts.split(',')[0]}"
    settings = Settings(data_dir=tmp_path / "data")
    for url in (redis_cluster_url, one_node):
        with pytest.raises(BackupError, match="one Redis server only"):
            create_backup(settings, tmp_path / "b.warb", PASS, url)
    assert not list(tmp_path.glob("b.warb*"))
    (tmp_path / "any.warb").write_bytes(b"")
    with pytest.raises(BackupError, match="one Redis server only"):  # nor is a restore into one
        restore_backup(Settings(data_dir=tmp_path / "fresh", redis_url=one_node), tmp_path / "any.warb", PASS)
