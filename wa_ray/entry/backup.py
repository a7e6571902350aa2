"""`wa-ray backup` and `wa-ray restore`: one encrypted archive holds what a data dir needs to come back.

What is in it (a tar stream, encrypted by wa_ray/entry/backup_archive.py):

    manifest.json                   format, time, Redis source and db, RDB size and version, auth store
                                    kind, master key kind and id (never the key itself)
    redis.rdb                       a point-in-time RDB of the service's Redis (wa_ray/entry/redis_rdb.py)
    master.key                      the key file (current key first, older keys during a rotation);
                                    absent when the service reads WA_MASTER_KEY (the operator holds it)
    sessions/{ws}/{sid}/auth.bin    each encrypted auth state (WA_AUTH_STORE=file); with
                                    WA_AUTH_STORE=redis they are keys in the RDB instead

Not in it: the media store (`<data dir>/media/`, bounded by WA_MEDIA_RETENTION_S and possibly large),
the embedded Redis's password (a restored data dir gets a new one), Ray's state (rebuilt at start).

Consistency. The RDB is one instant of Redis (the server forks for SYNC). The auth state files are
copied after it, one by one; each is replaced whole by its writer (temp file, fsync, rename:
storage/auth_store.FileAuthStore.save), so each copy is one complete state, never half of two. So
every state is as new as the RDB or newer, never older: a session linked after the snapshot has a
file but no registry record (an unused file after a restore), one deleted after it has a record but
no file (it asks for a QR again). Across files there is no common instant, and there need not be:
each auth state belongs to one session alone. The master key file is replaced whole too, and a
rotation refuses while the service runs, so the key in the archive opens every blob in it.

Restore (onto a data dir no service holds: the data dir's lock, taken exclusive, refuses otherwise)
first reads the whole archive and checks every chunk, then writes: nothing is written for a wrong
passphrase or a damaged archive. It refuses to replace an existing master key (or existing Redis data,
embedded AOF or a non-empty external db) unless `--force`. Embedded Redis: the RDB becomes the data
dir's AOF (RDB preamble form), which the server loads at start; it is started once to check that it
loads. External Redis (WA_REDIS_URL): the RDB is loaded into a temporary embedded server and each key
of the service's db is copied with DUMP / RESTORE, TTLs kept.

Schedule: with WA_BACKUP_INTERVAL_S > 0, `wa-ray up` writes `wa-ray-backup-<UTC time>.warb` into
WA_BACKUP_DIR every interval and keeps the newest WA_BACKUP_KEEP of them (`prune`).

The passphrase (WA_BACKUP_PASSPHRASE, or the file WA_BACKUP_PASSPHRASE_FILE / --passphrase-file) is
never an argument, never printed or logged; neither is the master key.

One Redis server only. A Redis Cluster is out of scope: one SYNC gives the slots of one master, and a
restore's copy would stop at the first key another master owns. Both refuse a `redis+cluster://` URL or a
server that answers `cluster_enabled:1` (`_refuse_cluster`) rather than write or restore part of the data;
a cluster is backed up with its own tools, one RDB per master.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import redis

from wa_ray.config import Settings
from wa_ray.datadir_lock import DataDirBusy, hold_exclusive
from wa_ray.entry.backup_archive import ArchiveError, DecryptingReader, EncryptingWriter, check_passphrase
from wa_ray.entry.redis_rdb import (AOF_NAME, EMBEDDED_RDB_MAX_VERSION, SnapshotError, copy_keys, fetch_rdb,
                                    install_rdb_as_aof, rdb_version)
from wa_ray.ids import require_id
from wa_ray.master_keys import MasterKeyError, keys_from_env, read_key_file, write_key_file
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.storage.redis_client import is_cluster

log = logging.getLogger(__name__)

FORMAT = 1
ENV_PASSPHRASE = "WA_BACKUP_PASSPHRASE"
SCHEDULED_PREFIX, SUFFIX = "wa-ray-backup-", ".warb"
_AUTH_MEMBER = re.compile(r"^sessions/([^/]+)/([^/]+)/auth\.bin$")


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why and holds no secret."""


def read_passphrase(passphrase_file: Path | None, env: Mapping[str, str] | None = None) -> bytes:
    """The passphrase from `passphrase_file` (its first line) or WA_BACKUP_PASSPHRASE; never an argument."""
    env = os.environ if env is None else env
    if passphrase_file is not None:
        try:
            text = Path(passphrase_file).read_text().splitlines()
        except OSError as exc:
            raise BackupError(f"cannot read the passphrase file {passphrase_file}: {exc.strerror}") from None
        value = text[0] if text else ""
    else:
        value = env.get(ENV_PASSPHRASE, "")
        if not value:
            raise BackupError(f"no backup passphrase: set {ENV_PASSPHRASE} or WA_BACKUP_PASSPHRASE_FILE "
                              "(or --passphrase-file)")
    try:
        return check_passphrase(value.encode())
    except ArchiveError as exc:
        raise BackupError(str(exc)) from None


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    seconds: float
    rdb_bytes: int
    auth_states: int

    def line(self) -> str:
        return (f"backup written: {self.path} ({self.size} bytes; Redis snapshot {self.rdb_bytes} bytes, "
                f"{self.auth_states} auth state files) in {self.seconds:.2f} s")


def _redis_db(url: str) -> int:
    return int((urlparse(url).path or "/0").lstrip("/") or 0)


def _refuse_cluster(url: str) -> None:
    """BackupError when the server at `url` is a node of a Redis Cluster (see the module doc). A URL or a
    server this probe cannot use is left to the step that follows, which reports it as it always did."""
    if is_cluster(url):
        raise BackupError("WA_REDIS_URL names a Redis Cluster: wa-ray backup and restore work on one Redis "
                          "server only")
    try:
        client = redis.Redis.from_url(url, socket_timeout=30)
    except ValueError:
        return
    try:
        enabled = int(client.info("cluster").get("cluster_enabled", 0))
    except (redis.RedisError, OSError, ValueError):
        return
    finally:
        client.close()
    if enabled:
        raise BackupError("Redis is a cluster node: wa-ray backup and restore work on one Redis server only")


def create_backup(settings: Settings, out: Path, passphrase: bytes, redis_url: str) -> BackupReport:
    """Write the archive to `out` (through `out`.tmp, 0600, renamed when complete); see the module doc."""
    started = time.monotonic()
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists: remove it or choose another name")
    _refuse_cluster(redis_url)
    key_file = settings.key_file()
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=out.parent) as rdb:
            rdb_bytes = fetch_rdb(redis_url, rdb)  # first: the files copied next are as new as it or newer
            rdb.seek(0)
            version = rdb_version(rdb.read(9))
            rdb.seek(0)
            if key_file is not None:
                key_text = key_file.read_bytes()
                key_id = read_key_file(key_file)[0].key_id.decode()
            else:
                key_text, key_id = None, keys_from_env(os.environ)[0].key_id.decode()
            auth_files = sorted((settings.data_dir / "sessions").glob("*/*/auth.bin"))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                writer = EncryptingWriter(fh, passphrase)
                with tarfile.open(fileobj=writer, mode="w|") as tar:  # type: ignore[call-overload]
                    copied: list[tuple[str, bytes]] = []
                    for path in auth_files:
                        try:
                            copied.append((path.relative_to(settings.data_dir).as_posix(), path.read_bytes()))
                        except FileNotFoundError:
                            continue  # the session was deleted since the listing
                    manifest = {
                        "format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(),
                        "redis": {"source": "external" if settings.redis_url else "embedded",
                                  "db": _redis_db(redis_url), "rdb_bytes": rdb_bytes, "rdb_version": version},
                        "auth_store": settings.auth_store, "auth_states": len(copied),
                        "master_key": {"kind": "file" if key_text is not None else "env", "key_id": key_id},
                    }
                    _add(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                    info = tarfile.TarInfo("redis.rdb")
                    info.size, info.mode, info.mtime = rdb_bytes, 0o600, int(time.time())
                    tar.addfile(info, rdb)
                    if key_text is not None:
                        _add(tar, "master.key", key_text)
                    for name, blob in copied:
                        _add(tar, name, blob)
                writer.close()
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, out)
    except (SnapshotError, MasterKeyError, ArchiveError, ValueError) as exc:
        raise BackupError(f"backup failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return BackupReport(out, out.stat().st_size, time.monotonic() - started, rdb_bytes, len(copied))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class RestoreReport:
    data_dir: Path
    keys: int
    auth_states: int
    seconds: float
    created_at: str

    def line(self) -> str:
        return (f"restored the backup of {self.created_at} into {self.data_dir}: {self.keys} Redis keys, "
                f"{self.auth_states} auth state files, in {self.seconds:.2f} s")


def verify_archive(archive: Path, passphrase: bytes) -> None:
    """Read the whole archive and check every chunk, writing nothing (ArchiveError otherwise)."""
    with Path(archive).open("rb") as src:
        DecryptingReader(src, passphrase).read_all_and_verify()


def _stage(archive: Path, passphrase: bytes, staging: Path) -> dict:
    """Unpack into `staging` (0700; files 0600), accepting only the members this module writes."""
    with Path(archive).open("rb") as src, \
            tarfile.open(fileobj=DecryptingReader(src, passphrase), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = member.name
            match = _AUTH_MEMBER.match(name)
            if not member.isfile() or not (name in ("manifest.json", "redis.rdb", "master.key") or (
                    match and _valid_ids(match.group(1), match.group(2)))):
                raise ArchiveError(f"the archive holds an unexpected entry ({name[:80]!r}): not restoring it")
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(tar.extractfile(member), dst)  # type: ignore[arg-type]
    manifest_path = staging / "manifest.json"
    if not manifest_path.exists() or not (staging / "redis.rdb").exists():
        raise ArchiveError("the archive lacks its manifest or its Redis snapshot")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"archive format {manifest.get('format')!r}: this wa-ray reads format {FORMAT}")
    return manifest


def _valid_ids(ws: str, sid: str) -> bool:
    try:
        require_id(ws, "workspace id")
        require_id(sid, "session id")
    except ValueError:
        return False
    return True


def _check_target(settings: Settings, force: bool) -> None:
    """Refuse what restore would overwrite without --force (checked before and again under the lock)."""
    if settings.redis_url:
        _refuse_cluster(settings.redis_url)
    if force:
        return
    key_file = settings.key_file()
    if key_file is not None and key_file.exists():
        raise BackupError(f"{key_file} exists: restoring would replace this data dir's master key "
                          "(use --force to replace it)")
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        try:
            if client.dbsize():
                raise BackupError("the target Redis db is not empty (use --force to restore into it anyway)")
        except redis.RedisError as exc:
            raise BackupError(f"cannot reach the target Redis: {exc.__class__.__name__}") from None
        finally:
            client.close()
    else:
        aof = settings.data_dir / "redis" / AOF_NAME
        if aof.exists() and aof.stat().st_size:
            raise BackupError(f"{aof} holds Redis data already (use --force to replace it)")


def _install_key(settings: Settings, manifest: dict, staging: Path) -> None:
    wanted = manifest["master_key"]["key_id"]
    key_file = settings.key_file()
    if manifest["master_key"]["kind"] == "file" and key_file is not None:
        write_key_file(key_file, read_key_file(staging / "master.key"))  # whole, 0600, fsynced
        return
    try:  # the operator holds the key (WA_MASTER_KEY here, or there): it must be the archive's
        have = keys_from_env(os.environ)[0].key_id.decode() if key_file is None else \
            read_key_file(key_file)[0].key_id.decode()
    except MasterKeyError:
        have = None
    if have != wanted:
        raise BackupError(f"the archive's data is under master key id {wanted}, which this archive does not "
                          f"carry: set WA_MASTER_KEY to that key for the restore (found id {have or 'none'})")


def _install_auth_states(settings: Settings, staging: Path) -> int:
    count = 0
    for src in sorted((staging / "sessions").glob("*/*/auth.bin")):
        rel = src.relative_to(staging)
        target = settings.data_dir / rel
        for d in (settings.data_dir / "sessions", target.parent.parent, target.parent):
            d.mkdir(mode=0o700, exist_ok=True, parents=True)
            os.chmod(d, 0o700)
        tmp = target.with_name("auth.bin.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(src.read_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        count += 1
    return count


def _install_redis(settings: Settings, manifest: dict, staging: Path, force: bool) -> int:
    """Load the RDB where the service finds it; returns the number of keys it holds now."""
    rdb = staging / "redis.rdb"
    with rdb.open("rb") as fh:
        version = rdb_version(fh.read(9))
    if version > EMBEDDED_RDB_MAX_VERSION:
        raise BackupError(f"the backup's Redis snapshot is RDB version {version}; the embedded Redis reads up to "
                          f"{EMBEDDED_RDB_MAX_VERSION} (restore it into that Redis version or newer by hand)")
    if not settings.redis_url:
        redis_dir = settings.data_dir / "redis"
        install_rdb_as_aof(rdb, redis_dir)
        with EmbeddedRedis(redis_dir, password=settings.redis_password, die_with_parent=True) as server:
            client = redis.Redis.from_url(server.url)
            try:
                return int(client.dbsize())
            finally:
                client.close()
    loader_dir = staging / "loader"
    install_rdb_as_aof(rdb, loader_dir)
    server = EmbeddedRedis(loader_dir, die_with_parent=True)
    url = server.start()
    source = redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{int(manifest['redis']['db'])}")
    target = redis.Redis.from_url(settings.redis_url)
    try:
        copied = copy_keys(source, target, replace=force)
        return copied
    except redis.ResponseError as exc:
        raise BackupError(f"copying into the target Redis failed: {str(exc)[:200]}") from None
    finally:
        source.close()
        target.close()
        server.stop()


def restore_backup(settings: Settings, archive: Path, passphrase: bytes, *, force: bool = False) -> RestoreReport:
    """Restore `archive` into the settings' data dir (and Redis); see the module doc for the guarantees."""
    from wa_ray.entry.data_redis import running_embedded_port

    started = time.monotonic()
    if not Path(archive).is_file():
        raise BackupError(f"no archive at {archive}")
    _check_target(settings, force)
    try:
        verify_archive(archive, passphrase)  # nothing is written before every chunk checked out
    except ArchiveError as exc:
        raise BackupError(f"restore refused: {exc}") from None
    try:
        lock = hold_exclusive(settings.data_dir)
    except DataDirBusy as exc:
        raise BackupError(str(exc)) from None
    try:
        if not settings.redis_url and running_embedded_port(settings.data_dir / "redis"):
            raise BackupError("the data dir's embedded Redis is running: stop the service first")
        _check_target(settings, force)
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
        try:
            try:
                manifest = _stage(archive, passphrase, staging)
            except ArchiveError as exc:  # the file changed since it was verified
                raise BackupError(f"restore refused: {exc}") from None
            if manifest["auth_store"] != settings.auth_store:
                raise BackupError(f"the backup was taken with WA_AUTH_STORE={manifest['auth_store']}: restore with "
                                  "the same setting (the sessions' states would not be found otherwise)")
            _install_key(settings, manifest, staging)
            auth_states = _install_auth_states(settings, staging)
            keys = _install_redis(settings, manifest, staging, force)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.close()
    return RestoreReport(settings.data_dir, keys, auth_states, time.monotonic() - started, manifest["created_at"])


def scheduled_name(now: datetime) -> str:
    """`wa-ray-backup-20261206T212300Z.warb`: names sort as their times do."""
    return f"{SCHEDULED_PREFIX}{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}{SUFFIX}"


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled backups in `directory` (by the time in their name);
    files of any other name are never touched. Returns what was deleted."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    ours = sorted(p for p in Path(directory).glob(f"{SCHEDULED_PREFIX}*{SUFFIX}")
                  if re.fullmatch(rf"{SCHEDULED_PREFIX}\d{{8}}T\d{{6}}Z{re.escape(SUFFIX)}", p.name))
    doomed = ours[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


@dataclass
class BackupSchedule:
    """The running service's backups: one every `interval_s` into `directory`, the newest `keep` kept.

    A thread of the driver (`wa-ray up`), not a Ray actor: the snapshot is one connection to Redis
    and the files are on the driver's machine. A failed backup is logged (never with a secret) and
    the next interval tries again."""

    settings: Settings
    redis_url: str = field(repr=False)
    passphrase: bytes = field(repr=False)
    directory: Path
    interval_s: float
    keep: int
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def run_once(self, now: datetime | None = None) -> BackupReport:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        report = create_backup(self.settings, self.directory / scheduled_name(now or datetime.now(timezone.utc)),
                               self.passphrase, self.redis_url)
        prune(self.directory, self.keep)
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                report = self.run_once()
                log.info("scheduled backup: %s, %d bytes in %.2f s", report.path.name, report.size, report.seconds)
            except Exception as exc:  # noqa: BLE001 - a failed backup must not end the schedule
                log.warning("scheduled backup failed: %s", exc if isinstance(exc, BackupError) else
                            exc.__class__.__name__)

    def start(self) -> BackupSchedule:
        self._thread = threading.Thread(target=self._loop, name="wa-ray-backup", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)


def schedule_from(settings: Settings, redis_url: str) -> BackupSchedule | None:
    """The schedule WA_BACKUP_INTERVAL_S asks for (None when 0), its passphrase checked now, at start."""
    if settings.backup_interval_s <= 0:
        return None
    return BackupSchedule(settings, redis_url, read_passphrase(settings.backup_passphrase_file),
                          (settings.backup_dir or settings.data_dir / "backups").resolve(),
                          settings.backup_interval_s, settings.backup_keep)
