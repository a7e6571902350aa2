"""Who holds a data dir: a running service (shared lock) or a key rotation (exclusive lock).

An flock on `{data_dir}/service.lock`: the kernel drops it when its process dies however it dies,
so a killed service never leaves a stale lock behind, and no pid file has to be trusted. Services
take it shared (nothing that worked before is refused); `wa-ray rotate-key` takes it exclusive and
without waiting, so it refuses while any service on this host holds the data dir.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "service.lock"


class DataDirBusy(RuntimeError):
    pass


def _open(data_dir: Path) -> IO[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    return os.fdopen(fd, "r+b")


def hold_shared(data_dir: Path) -> IO[bytes]:
    """A running service's hold; released by closing the returned file (or by the process ending)."""
    fh = _open(data_dir)
    fcntl.flock(fh, fcntl.LOCK_SH)
    return fh


def hold_exclusive(data_dir: Path) -> IO[bytes]:
    """The data dir to oneself, or DataDirBusy at once when a service holds it."""
    fh = _open(data_dir)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise DataDirBusy(f"a wa-ray service holds {data_dir}: stop it first") from None
    return fh
