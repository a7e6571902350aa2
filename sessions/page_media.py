"""The bytes of a received message's media, pulled out of its page in chunks.

The page downloads and decrypts the media once, the way whatsapp-web.js's `Message.downloadMedia` does
(bridge.js `mediaOpen`), and holds it until closed; this side reads it back in base64 slices of
`chunk_bytes`, so no single evaluate carries the whole file and the store receives a stream. Inbound media
is capped by the workspace's policy before it is opened (actors/media_intake.py), and the store stops a
stream that outgrows the cap.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from wa_ray.sessions.page import PageGone, PageSession

CHUNK_BYTES = 512 * 1024
_OPEN = "(id) => window.__waray.mediaOpen(id)"
_CHUNK = "([handle, offset, length]) => window.__waray.mediaChunk(handle, offset, length)"
_CLOSE = "(handle) => window.__waray.mediaClose(handle)"


class MediaUnavailable(Exception):
    """The page has no media for that message (unknown, not media, or its download failed)."""


class PageMedia:
    """Media of the messages one page received; `chunks` is an `intake` chunks factory once bound to an id."""

    def __init__(self, session: PageSession, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._session = session
        self._chunk = chunk_bytes

    async def chunks(self, wa_id: str) -> AsyncIterator[bytes]:
        """Downloads the media of message `wa_id` in the page; the iterator yields it in order and frees
        the page's copy when it ends or is closed. Raises MediaUnavailable or PageGone."""
        opened = await self._session.evaluate(_OPEN, wa_id)
        if not isinstance(opened, dict) or not isinstance(opened.get("handle"), str):
            raise MediaUnavailable(wa_id)
        return self._read(str(opened["handle"]), int(opened.get("size") or 0))

    async def _read(self, handle: str, size: int) -> AsyncIterator[bytes]:
        try:
            offset = 0
            while offset < size:
                part = base64.b64decode(str(await self._session.evaluate(_CHUNK, [handle, offset, self._chunk])))
                if not part:
                    raise MediaUnavailable("page returned an empty chunk")
                offset += len(part)
                yield part
        finally:
            try:
                await self._session.evaluate(_CLOSE, handle)
            except Exception:  # noqa: BLE001 - the page (and its copy) may be gone already
                pass
