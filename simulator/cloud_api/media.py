"""The simulator's media: uploaded by a business or sent by a user, in memory (the endpoints are media_api.py).

    POST   /{version}/{phone_number_id}/media   multipart: file, type, messaging_product -> {"id"}
    GET    /{version}/{media_id}                -> {"messaging_product", "url", "mime_type", "sha256",
                                                    "file_size", "id"}
    GET    /_media/{media_id}/{nonce}           the `url`: the bytes, only with the bearer token (401 without)
    DELETE /{version}/{media_id}                -> {"success": true}

A media id belongs to the business number it was uploaded for (or that received it, for inbound media):
only that number's access token may retrieve, download, delete or send it. Another number's token gets the
same answer as an unknown id (Graph's "does not exist, cannot be loaded due to missing permissions"), so
ids do not leak across businesses. Items live in memory, as the simulator's other state does.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass


MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # the largest kind (document)


@dataclass(frozen=True)
class MediaItem:
    id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    sha256: str
    filename: str | None
    nonce: str  # part of the download url, so a url is not guessable from the id alone


class MediaStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # tests read it from their own thread
        self._items: dict[str, MediaItem] = {}

    def add(self, phone_number_id: str, data: bytes, mime_type: str, filename: str | None = None) -> MediaItem:
        media_id = str(10**15 + secrets.randbelow(9 * 10**15))  # Meta's media ids are 15-16 digits
        item = MediaItem(media_id, phone_number_id, mime_type, data, hashlib.sha256(data).hexdigest(), filename,
                         secrets.token_urlsafe(12))
        with self._lock:
            self._items[media_id] = item
        return item

    def get(self, media_id: str) -> MediaItem | None:
        with self._lock:
            return self._items.get(media_id)

    def delete(self, media_id: str) -> bool:
        with self._lock:
            return self._items.pop(media_id, None) is not None

    def usable_by(self, media_id: str, phone_number_id: str) -> MediaItem | None:
        item = self.get(media_id)
        return item if item is not None and item.phone_number_id == phone_number_id else None
