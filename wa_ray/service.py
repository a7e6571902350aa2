"""Bring the whole service up and down: Redis, Ray, the supervisor, the dispatcher, Serve."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import serve
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.cloud_sender import CLOUD_SENDER_NAME, CloudSender
from actors.webhook_dispatcher import WebhookDispatcher
from sessions.crypto import MasterKey
from storage.embedded import EmbeddedRedis
from supervisors.session_supervisor import SLOT, SessionSupervisor
from wa_ray import DISPATCHER_NAME, NAMESPACE, SUPERVISOR_NAME
from wa_ray.config import RuntimeConfig, Settings

log = logging.getLogger(__name__)


def load_master_key(settings: Settings) -> str:
    """WA_MASTER_KEY wins; otherwise a key generated once into the data dir (0600), never printed."""
    if settings.master_key:
        MasterKey.from_b64(settings.master_key)
        return settings.master_key
    path = settings.data_dir / "master.key"
    if path.exists():
        return path.read_text().strip()
    value = MasterKey.generate_b64()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    log.warning("generated a master key in %s; set WA_MASTER_KEY in production", path)
    return value


@dataclass
class Service:
    settings: Settings
    config: RuntimeConfig | None = None
    redis: EmbeddedRedis | None = None
    handles: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def start(self) -> Service:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a half-started service must not leave Redis, Ray or Chromium behind
            raise

    def _start(self) -> Service:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        redis_url = s.redis_url
        if not redis_url:
            self.redis = EmbeddedRedis(s.data_dir / "redis", port=s.redis_port)
            redis_url = self.redis.start()
        self.config = s.runtime(redis_url, load_master_key(s))
        if not ray.is_initialized():
            if s.ray_address:
                ray.init(address=s.ray_address, namespace=NAMESPACE)
            else:
                # Worker logs stay in Ray's log files (/tmp/ray/session_latest/logs), not on the console.
                # address="local": never attach to whatever cluster /tmp/ray/ray_current_cluster names
                ray.init(address="local", namespace=NAMESPACE, resources={SLOT: s.sessions_per_node},
                         include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        # The control plane prefers the node that starts the service (the head): losing a session
        # node then never takes the supervisor or the outboxes with it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        supervisor = SessionSupervisor.options(
            name=SUPERVISOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            scheduling_strategy=here,
        ).remote(self.config)
        dispatcher = WebhookDispatcher.options(
            name=DISPATCHER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            scheduling_strategy=here,
        ).remote(self.config)
        cloud_sender = CloudSender.options(
            name=CLOUD_SENDER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            scheduling_strategy=here,
        ).remote(self.config)
        ray.get([supervisor.warm.remote(), dispatcher.start.remote(), cloud_sender.ping.remote()])
        self.handles = {"supervisor": supervisor, "dispatcher": dispatcher, "cloud_sender": cloud_sender}
        serve.start(http_options={"host": s.http_host, "port": s.http_port}, detached=False)
        from serve_app.app import (
            Ingress,  # imported late: it pulls in FastAPI only where needed
        )
        from serve_app.provider_selector import SELECTOR_APP, ProviderSelector

        # its own Serve app, deployed before the ingress that asks it (through a cached handle)
        serve.run(ProviderSelector.bind(self.config), name=SELECTOR_APP, route_prefix=None, blocking=False)

        serve.run(Ingress.bind(self.config), name="wa-ray", route_prefix="/", blocking=False)
        ray.get(supervisor.wait_restored.remote())
        if s.api_key_id and s.api_key_secret:
            ray.get(bootstrap_admin_key.remote(self.config, s.api_key_id, s.api_key_secret))
        return self

    def stop(self) -> None:
        if ray.is_initialized():
            try:
                ray.get(ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE).stop_watching.remote(), timeout=15)
            except Exception:
                log.debug("supervisor stop_watching", exc_info=True)
            try:
                serve.shutdown()
            except Exception:
                log.debug("serve shutdown", exc_info=True)
            for name in [n for n in _named_actors() if n.startswith("browser-host:")]:
                try:
                    ray.get(ray.get_actor(name, namespace=NAMESPACE).shutdown.remote(), timeout=15)
                except Exception:
                    log.debug("browser host shutdown", exc_info=True)
            ray.shutdown()
        if self.redis:
            self.redis.stop()


def _named_actors() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


@ray.remote(num_cpus=0)
def bootstrap_admin_key(config: RuntimeConfig, key_id: str, secret: str) -> None:
    import asyncio

    from storage.apikeys import ApiKeyStore
    from storage.redis_client import connect

    async def create() -> None:
        redis = connect(config.redis_url)
        await ApiKeyStore(redis, MasterKey.from_b64(config.master_key_b64)).create("admin", None, key_id, secret)
        await redis.aclose()

    asyncio.run(create())

