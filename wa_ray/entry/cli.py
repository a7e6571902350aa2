"""`wa-ray up` runs the service; `wa-ray demo` runs it with the simulator and walks you through linking."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from wa_ray.crypto import MasterKey
from wa_ray.config import Settings

if TYPE_CHECKING:  # imported where used: `backup` and `restore` need no Ray (it takes seconds to import)
    from wa_ray.entry.backup import BackupSchedule
    from wa_ray.entry.service import Service

console = Console()


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            stop.wait(1)
    except KeyboardInterrupt:
        pass


def cmd_up(settings: Settings) -> None:
    from wa_ray.entry.backup import BackupError, read_passphrase
    from wa_ray.entry.service import Service

    if settings.backup_interval_s > 0:  # a missing passphrase is a start error, not a failed backup hours later
        try:
            read_passphrase(settings.backup_passphrase_file)
        except BackupError as exc:
            raise SystemExit(f"WA_BACKUP_INTERVAL_S is set: {exc}") from None
    service = Service(settings).start()
    console.print(f"[bold green]wa-ray is up[/] on {service.base_url}  (data in {settings.data_dir.resolve()})")
    console.print(f"Redis: {'embedded' if service.redis else 'REDIS_URL'}; web: {settings.web_url}")
    schedule = _start_backups(settings, service)
    console.print("Ctrl-C stops it.")
    try:
        _wait_for_interrupt()
    finally:
        if schedule:
            schedule.stop()
        _stop(service)


def _start_backups(settings: Settings, service: Service) -> BackupSchedule | None:
    from wa_ray.entry.backup import schedule_from

    schedule = schedule_from(settings, service.config.redis_url)  # type: ignore[union-attr]
    if schedule:
        console.print(f"Backups: every {settings.backup_interval_s:g} s into {schedule.directory}, "
                      f"the newest {schedule.keep} kept")
        schedule.start()
    return schedule


def cmd_backup(settings: Settings, out: Path, passphrase_file: Path | None) -> None:
    """One archive of the data dir (running service or not); see wa_ray/entry/backup.py."""
    from wa_ray.entry.backup import BackupError, create_backup, read_passphrase
    from wa_ray.entry.data_redis import NoDataRedis, data_dir_redis

    try:
        passphrase = read_passphrase(passphrase_file or settings.backup_passphrase_file)
        with data_dir_redis(settings, require_data=True) as url:
            report = create_backup(settings, out, passphrase, url)
    except (BackupError, NoDataRedis) as exc:
        raise SystemExit(f"backup: {exc}") from None
    console.print(report.line(), highlight=False, soft_wrap=True)


def cmd_restore(settings: Settings, archive: Path, passphrase_file: Path | None, force: bool) -> None:
    """Restore an archive into the data dir (and Redis) no service holds; see wa_ray/entry/backup.py."""
    from wa_ray.entry.backup import BackupError, read_passphrase, restore_backup

    try:
        passphrase = read_passphrase(passphrase_file or settings.backup_passphrase_file)
        report = restore_backup(settings, archive, passphrase, force=force)
    except BackupError as exc:
        raise SystemExit(f"restore: {exc}") from None
    console.print(report.line(), highlight=False, soft_wrap=True)


def cmd_demo(settings: Settings, phone: str) -> None:
    from wa_ray.simulator.wa_web.testing import running_web_simulator
    from wa_ray.entry.demo import run_demo
    from wa_ray.entry.service import Service

    key_id, secret = settings.api_key_id or "demo-admin", settings.api_key_secret or secrets.token_urlsafe(24)
    with running_web_simulator() as sim:
        settings = settings.model_copy(update={"web_url": sim.url + "/", "api_key_id": key_id, "api_key_secret": secret})
        service = Service(settings).start()
        try:
            run_demo(console, service.base_url, sim.url, key_id, secret, phone)
            _wait_for_interrupt()
        except KeyboardInterrupt:
            pass  # Ctrl-C while the demo still follows its events is how it ends, not an error to trace
        finally:
            _stop(service)


def _stop(service: Service) -> None:
    """Stop every process the service started. A second Ctrl-C (a user pressing twice, or `timeout`, which
    signals the process and then its group) would break off the stop half way and leave Ray, Chromium or
    Redis running: it is ignored until the stop is done (SIGTERM and SIGKILL still end it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.print("Stopping: Ray, Chromium and Redis end with it.")
    service.stop()


def rotation_keys(settings: Settings, new_key: str | None) -> tuple[MasterKey, tuple[MasterKey, ...]]:
    """(new, old keys) for `rotate-key`, after making the new key durable where readers find it.

    Key file: an interrupted rotation left [new, old...] in it, and is resumed as it was; otherwise
    the new key is written in front of the old ones (atomic, fsynced) before any blob changes.
    WA_MASTER_KEY: the operator holds the keys. `--new-key` re-encrypts from WA_MASTER_KEY (and
    WA_MASTER_KEY_PREVIOUS) to it; without it, WA_MASTER_KEY is taken as the new key already and
    WA_MASTER_KEY_PREVIOUS as the old ones (resuming after the service was started on the new key).
    """
    from wa_ray.master_keys import keys_from_env, read_key_file, write_key_file

    given = MasterKey.from_b64(new_key) if new_key else None
    key_file = settings.key_file()
    if key_file is None:
        current, *previous = keys_from_env(os.environ)
        if given is None:
            if not previous:
                raise SystemExit("WA_MASTER_KEY is set: pass --new-key (then set WA_MASTER_KEY to it and "
                                 "WA_MASTER_KEY_PREVIOUS to the old key until rotate-key has finished)")
            return current, tuple(previous)
        return given, tuple(k for k in (current, *previous) if k.key_id != given.key_id)
    keys = read_key_file(key_file)
    if len(keys) > 1:  # a rotation that did not finish: finish that one first
        if given is not None and given.key_id != keys[0].key_id:
            raise SystemExit(f"a rotation to key id {keys[0].key_id.decode()} did not finish: run rotate-key "
                             "without --new-key to finish it first")
        return keys[0], keys[1:]
    new = given or MasterKey.from_b64(MasterKey.generate_b64())
    if new.key_id == keys[0].key_id:
        return new, ()  # same key: only rewrites blobs of the old format
    write_key_file(key_file, [new, *keys])  # durable before any blob is touched: both keys readable from here
    return new, keys


def cmd_rotate_key(settings: Settings, new_key: str | None, on_blob: Callable[[str], None] | None = None) -> None:
    """Re-encrypt every blob under a new master key; refuses while a service holds the data dir.

    Crash-safe: killed at any point, running it again finishes the same rotation (wa_ray/entry/rotation.py)."""
    import asyncio

    from wa_ray.master_keys import MasterKeyError, write_key_file
    from wa_ray.storage.embedded import EmbeddedRedis
    from wa_ray.storage.redis_client import connect
    from wa_ray.storage.layout_migration import prepare as prepare_layout
    from wa_ray.datadir_lock import DataDirBusy, hold_exclusive
    from wa_ray.entry.data_redis import running_embedded_port
    from wa_ray.entry.rotation import RotationError, reencrypt_all

    try:
        lock = hold_exclusive(settings.data_dir)
    except DataDirBusy as exc:
        raise SystemExit(str(exc)) from None
    try:
        if not settings.redis_url and running_embedded_port(settings.data_dir / "redis"):
            raise SystemExit("the data dir's embedded Redis is running: stop the service (and any `wa-ray keys` "
                             "left running) first")
        try:
            new, old = rotation_keys(settings, new_key)
        except (MasterKeyError, ValueError) as exc:
            raise SystemExit(f"rotate-key: {exc}") from None
        embedded = None if settings.redis_url else EmbeddedRedis(settings.data_dir / "redis",
                                                                 password=settings.redis_password, die_with_parent=True)
        url = settings.redis_url or embedded.start()  # type: ignore[union-attr]

        async def go() -> object:
            # a data set written by an older version is moved to today's key layout first: the rotation reads
            # the blobs under today's names, and would otherwise leave the old names encrypted with a key
            # it then retires (the service is stopped: checked above)
            await prepare_layout(url)
            redis = connect(url)
            try:
                return await reencrypt_all(settings.data_dir, redis, old, new, on_blob)
            finally:
                await redis.aclose()

        try:
            report = asyncio.run(go())
        except RotationError as exc:
            raise SystemExit(f"rotate-key stopped: {exc}") from None
        finally:
            if embedded:
                embedded.stop()
        key_file = settings.key_file()
        if key_file is not None:
            write_key_file(key_file, [new])  # every blob is under the new key: the old one retires
            console.print(f"re-encrypted: {report}; key id {new.key_id.decode()} is the only key in {key_file}")
        else:
            console.print(f"re-encrypted: {report}; set WA_MASTER_KEY to the new key (id {new.key_id.decode()}) "
                          "and unset WA_MASTER_KEY_PREVIOUS")
    finally:
        lock.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # its own parser (wa_ray/entry/keys_cli.py); needs no Ray and no running service
        from wa_ray.entry.keys_cli import main as keys_main

        raise SystemExit(keys_main(argv[1:]))
    parser = argparse.ArgumentParser(prog="wa-ray")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="create, list and revoke API keys; mint a console token (wa-ray keys -h)")
    up = sub.add_parser("up", help="run the service (embedded Redis and local Ray unless configured)")
    demo = sub.add_parser("demo", help="run the service against the WhatsApp Web simulator and link a session")
    demo.add_argument("--phone", default="15550001", help="the simulated phone that scans the QR")
    rotate_p = sub.add_parser("rotate-key", help="re-encrypt all stored secrets under a new master key")
    rotate_p.add_argument("--new-key", help="base64 of 32 bytes (default: generate one into the data dir)")
    backup_p = sub.add_parser("backup", help="write one encrypted archive: Redis snapshot, auth states, master key")
    backup_p.add_argument("--out", type=Path, required=True, help="the archive to write (must not exist)")
    restore_p = sub.add_parser("restore", help="restore an archive into a data dir no service runs on")
    restore_p.add_argument("archive", type=Path)
    restore_p.add_argument("--force", action="store_true",
                           help="replace an existing master key / Redis data (default: refuse)")
    for p in (backup_p, restore_p):
        p.add_argument("--passphrase-file", type=Path,
                       help="file whose first line is the passphrase (default: WA_BACKUP_PASSPHRASE)")
    for p in (up, demo, rotate_p, backup_p, restore_p):
        p.add_argument("--port", type=int, help="HTTP port (default 8000, or WA_HTTP_PORT)")
        p.add_argument("--data-dir", help="data directory (default .wa-ray, or WA_DATA_DIR)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"http_port": args.port, "data_dir": args.data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    if args.command == "up":
        cmd_up(settings)
    elif args.command == "rotate-key":
        cmd_rotate_key(settings, args.new_key)
    elif args.command == "backup":
        cmd_backup(settings, args.out, args.passphrase_file)
    elif args.command == "restore":
        cmd_restore(settings, args.archive, args.passphrase_file, args.force)
    else:
        cmd_demo(settings, args.phone)


if __name__ == "__main__":
    main()
