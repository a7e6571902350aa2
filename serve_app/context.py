"""What a replica holds: its Redis connection, the stores, the SSE hub, the provider selector client and the
supervisor handle. Everything arrives as an argument (the config, the selector's deployment handle) or is built
from one: nothing is looked up by name in a module-global cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
import redis.asyncio as aioredis

from wa_ray.serve_app.auth import Authenticator
from wa_ray.serve_app.lazy_media import LazyMedia
from wa_ray.serve_app.page_hosts import PageHosts
from wa_ray.serve_app.provider_selector import SelectorClient
from wa_ray.serve_app.sse import EventHub
from wa_ray.master_keys import master_and_previous
from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage.audit import AuditLog
from wa_ray.storage.batch import Batcher
from wa_ray.storage.events import EventLog
from wa_ray.storage.media import MediaStore
from wa_ray.storage.messages import MessageStore
from wa_ray.storage.metrics import MetricsStore
from wa_ray.storage.providers import ProviderStore
from wa_ray.storage.redis_client import connect
from wa_ray.storage.registry import SessionRegistry
from wa_ray.storage.webhook_endpoints import WebhookEndpointStore
from wa_ray.storage.webhooks import WebhookConfigStore
from wa_ray import NAMESPACE, SUPERVISOR_NAME
from wa_ray.config import RuntimeConfig
from wa_ray.egress import EgressGuard
from wa_ray.egress_http import guard_for


@dataclass
class AppContext:
    config: RuntimeConfig
    redis: aioredis.Redis
    auth: Authenticator
    registry: SessionRegistry
    messages: MessageStore
    events: EventLog
    webhooks: WebhookConfigStore
    audit: AuditLog
    metrics: MetricsStore
    hub: EventHub
    egress: EgressGuard  # decides the URLs callers name (webhook, Cloud API base URL) at write time
    selector: SelectorClient  # the provider choice: the selector deployment's snapshots, cached per workspace
    media: MediaStore  # uploaded and fetched media, encrypted at rest (storage/media.py)
    lazy_media: LazyMedia  # downloads a `lazy` workspace's received media on its first GET
    webhook_endpoints: WebhookEndpointStore  # a workspace's several endpoints (storage/webhook_endpoints.py)
    # BrowserHost handles by node id, so a page call or a lazy download does not look the actor up (a blocking
    # GCS call) each time; the same one LazyMedia holds
    page_hosts: PageHosts = field(default_factory=PageHosts)

    @classmethod
    def build(cls, config: RuntimeConfig, selector_handle: Any = None) -> AppContext:
        """`selector_handle`: the ProviderSelector deployment handle Serve passes the Ingress (None: the
        replica decides the provider locally from Redis, see SelectorClient)."""
        redis = connect(config.redis_url)
        master, previous = master_and_previous(config)  # read here, in the replica: never an argument
        events = EventLog(redis)
        batch = Batcher(redis)  # one group commit for the hot path's commands (storage/batch.py)
        media, guard = media_store_for(redis, config), guard_for(config)
        providers = ProviderStore(redis, master, previous)
        page_hosts = PageHosts()
        return cls(config, redis, Authenticator(redis, master, previous, batch=batch), SessionRegistry(redis),
                   MessageStore(redis, batch=batch), events, WebhookConfigStore(redis, master, previous),
                   AuditLog(redis, batch=batch), MetricsStore(redis), EventHub(redis, events),
                   guard,
                   SelectorClient(providers, config.provider_cache_ttl_s, selector_handle),
                   media, LazyMedia(redis, media, providers, guard, config.media_retention_s, page_hosts),
                   WebhookEndpointStore(redis, master, previous), page_hosts)

    def supervisor(self) -> Any:
        """The supervisor's handle; ValueError when it (or Ray) is not there.

        Checked first because `ray.get_actor` in a process without Ray would start a
        whole local Ray cluster rather than fail."""
        if not ray.is_initialized():
            raise ValueError("not connected to Ray")
        return ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
