"""The first GET of a media a `lazy` workspace received: download it now, once, under its announced id.

`message.received` carried a `media_id` with `status: pending` (actors/media_intake.py); the record of
storage/media_pending.py says where the bytes are. `resolve` turns such an id into a stored media:

* Cloud API: `GET /{media-id}` -> url -> bytes with the workspace's token, read from the provider store
  now (the record holds none), through the egress guard (actors/inbound_cloud.py `media_chunks`).
* WhatsApp Web: the page of the session holds the media; the BrowserHost of the node the registry gives the
  session (kept in the replica's PageHosts, serve_app/page_hosts.py, as session_pages.py keeps it) pulls it
  from the page into the store (BrowserHost.download_pending).

Invariants:
* Once: one request per id holds the download lock (SET NX with a TTL); the others wait for its outcome,
  polling the store, and none starts a second download while the lock is held.
* An id that was never allotted, and another workspace's, are both `None` (the route's 404): every key
  names the workspace, so the other workspace's record is never read, let alone fetched.
* A failure is an ApiError in the error shape: 502 `media_unavailable` when the provider (or the page)
  no longer gives the media, 502 `media_too_large` over the cap of the policy at receipt, 504 `media_timeout`
  when the download outlived the wait. The record is kept, so a later GET may try again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
import redis.asyncio as aioredis

from wa_ray.actors.cloud_api import CloudApiClient, MediaDownloadFailed
from wa_ray.actors.inbound_cloud import media_chunks
from wa_ray.actors.media_intake import DEFAULT_TIMEOUT_S
from wa_ray.egress import EgressGuard
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.page_hosts import PageHosts
from wa_ray.storage.media import MediaInfo, MediaStore, MediaTooLarge
from wa_ray.storage.media_pending import PendingMedia, PendingMediaStore
from wa_ray.storage.providers import ProviderStore
from wa_ray.storage.registry import SessionRegistry

log = logging.getLogger(__name__)

DOWNLOAD_WAIT_S = DEFAULT_TIMEOUT_S  # the longest one download may take
LOCK_TTL_S = DOWNLOAD_WAIT_S + 15.0  # outlives the download it guards; frees itself if its holder died
POLL_S = 0.1


def _unavailable() -> ApiError:
    return ApiError(502, "media_unavailable", "the provider no longer has this media")


class LazyMedia:
    def __init__(self, redis: aioredis.Redis, media: MediaStore, providers: ProviderStore, guard: EgressGuard,
                 retention_s: int, page_hosts: PageHosts) -> None:
        self._media = media
        self._pending = PendingMediaStore(redis, retention_s)
        self._providers = providers
        self._registry = SessionRegistry(redis)
        self._guard = guard
        self._page_hosts = page_hosts  # the replica's, shared with session_pages.call_page
        self._client: CloudApiClient | None = None  # made at the first Cloud API download

    async def resolve(self, ws: str, media_id: str) -> MediaInfo | None:
        """The stored media of `ws` with that id, downloading it first if it is still pending; None when
        `ws` has no such media (stored or pending)."""
        info = await self._media.info(ws, media_id)
        if info is not None:
            return info
        pending = await self._pending.get(ws, media_id)
        if pending is None:
            return None
        deadline = time.monotonic() + LOCK_TTL_S
        while True:
            token = await self._pending.claim(ws, media_id, LOCK_TTL_S)
            if token is not None:
                try:
                    return await self._media.info(ws, media_id) or await self._download(pending)
                finally:
                    await self._pending.release(ws, media_id, token)
            while await self._pending.held(ws, media_id):  # another request is downloading it: wait for it
                if time.monotonic() > deadline:
                    raise ApiError(504, "media_timeout", "the media's download did not finish in time")
                await asyncio.sleep(POLL_S)
            info = await self._media.info(ws, media_id)
            if info is not None:
                return info
            raise _unavailable()  # the download it waited for failed

    async def _download(self, pending: PendingMedia) -> MediaInfo:
        try:
            async with asyncio.timeout(DOWNLOAD_WAIT_S):
                if pending.source == "cloud_api":
                    await self._from_cloud(pending)
                else:
                    await self._from_page(pending)
        except TimeoutError:
            raise ApiError(504, "media_timeout", "the media's download did not finish in time") from None
        info = await self._media.info(pending.workspace_id, pending.media_id)
        if info is None:
            raise _unavailable()
        await self._pending.done(pending.workspace_id, pending.media_id)
        return info

    async def _from_cloud(self, pending: PendingMedia) -> None:
        creds = (await self._providers.get(pending.workspace_id)).cloud
        if self._client is None:
            self._client = CloudApiClient(self._guard, 16)
        chunks: Any = None
        try:
            chunks = await media_chunks(self._client, creds, pending.locator.get("media"), pending.max_bytes)
            await self._media.put(pending.workspace_id, chunks, mimetype=pending.mimetype, filename=pending.filename,
                                  max_bytes=pending.max_bytes, media_id=pending.media_id)
        except MediaTooLarge:
            raise ApiError(502, "media_too_large", "the media is larger than the workspace's max_bytes") from None
        except MediaDownloadFailed:
            raise _unavailable() from None
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def _from_page(self, pending: PendingMedia) -> None:
        record = await self._registry.get(pending.workspace_id, pending.locator.get("session_id", ""))
        node = record.get("node_id") if record else None
        if not node:
            raise _unavailable()
        host = self._page_hosts.get(node)
        if host is None:
            log.warning("pending media of workspace %s: no host on its node", pending.workspace_id)
            raise _unavailable()
        try:
            outcome = await host.download_pending.remote(pending)
        except Exception as exc:  # noqa: BLE001 - the host died mid-call (or before): the page is gone with it
            if isinstance(exc, ray.exceptions.RayActorError):
                self._page_hosts.forget(node)  # looked up again next time
            log.warning("pending media of workspace %s: host unreachable (%s)", pending.workspace_id,
                        type(exc).__name__)
            raise _unavailable() from None
        if outcome == "too_large":
            raise ApiError(502, "media_too_large", "the media is larger than the workspace's max_bytes")
        if outcome != "stored":
            raise _unavailable()
