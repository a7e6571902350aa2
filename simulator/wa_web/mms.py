"""The simulator's media server for what pages send: an upload is spooled to disk as it arrives and named by
the `directPath` the page then puts in its message, which the phone side resolves to what it received.

Bounded: the newest MMS_KEEP uploads are kept, older files are deleted; an upload larger than MMS_MAX_BYTES is
refused while it streams (the page's send then fails, as an upload the real server refuses).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

MMS_KEEP = 64
MMS_MAX_BYTES = 101 * 1024 * 1024  # WhatsApp's document limit and a little
DIRECT_PREFIX = "/v/t62.7114-24/"


class UploadTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Upload:
    direct_path: str
    mimetype: str
    media_type: str
    size: int
    sha256: str  # hex, of the bytes the page uploaded
    path: str


class MmsStore:
    def __init__(self, keep: int = MMS_KEEP, max_bytes: int = MMS_MAX_BYTES) -> None:
        self._dir = tempfile.mkdtemp(prefix="wa-sim-mms-")
        self._keep, self._max = keep, max_bytes
        self._items: OrderedDict[str, Upload] = OrderedDict()

    async def receive(self, chunks: AsyncIterator[bytes], mimetype: str, media_type: str) -> Upload:
        """Spool one upload, hashing it on the way; raises UploadTooLarge past the limit."""
        direct_path = DIRECT_PREFIX + secrets.token_hex(16)
        path = os.path.join(self._dir, direct_path.rsplit("/", 1)[1])
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self._max:
                        raise UploadTooLarge(f"upload over {self._max} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            _unlink(path)
            raise
        upload = Upload(direct_path, mimetype, media_type, size, digest.hexdigest(), path)
        self._items[direct_path] = upload
        while len(self._items) > self._keep:
            _, old = self._items.popitem(last=False)
            _unlink(old.path)
        return upload

    def get(self, direct_path: str | None) -> Upload | None:
        return self._items.get(direct_path or "")

    def close(self) -> None:
        self._items.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
