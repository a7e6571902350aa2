"""The media store of this process: its key material from the master key file (or environment).

Kept here so storage/media.py never imports the key handling: it receives raw `(key_id, key)` pairs,
the current key first, then every previous one, so media written before `wa-ray rotate-key` stays
readable while the previous key is still listed (and rotation rewrites every media file under the new key
before it drops the old one: wa_ray/entry/rotation.py).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from wa_ray.runtime import RuntimeConfig
from wa_ray.master_keys import load_master_keys
from wa_ray.storage.media import MediaStore, media_root


def media_store_for(redis: aioredis.Redis, config: RuntimeConfig) -> MediaStore:
    master_keys = [(k.key_id.decode(), k.key) for k in load_master_keys(config)]
    return MediaStore(redis, media_root(config.data_dir), master_keys, retention_s=config.media_retention_s)
