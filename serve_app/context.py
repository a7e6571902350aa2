"""What a replica holds: its Redis connection, the stores, the supervisor handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
import redis.asyncio as aioredis

from serve_app.auth import Authenticator
from sessions.crypto import MasterKey
from storage.events import EventLog
from storage.messages import MessageStore
from storage.redis_client import connect
from storage.registry import SessionRegistry
from storage.webhooks import WebhookConfigStore
from wa_ray import NAMESPACE, SUPERVISOR_NAME
from wa_ray.config import RuntimeConfig


@dataclass
class AppContext:
    config: RuntimeConfig
    redis: aioredis.Redis
    auth: Authenticator
    registry: SessionRegistry
    messages: MessageStore
    events: EventLog
    webhooks: WebhookConfigStore

    @classmethod
    def build(cls, config: RuntimeConfig) -> AppContext:
        redis = connect(config.redis_url)
        master = MasterKey.from_b64(config.master_key_b64)
        return cls(config, redis, Authenticator(redis, master), SessionRegistry(redis), MessageStore(redis),
                   EventLog(redis), WebhookConfigStore(redis, master))

    def supervisor(self) -> Any:
        return ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
