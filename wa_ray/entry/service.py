"""Bring the whole service up and down: Redis, Ray, the supervisor, the dispatcher, Serve."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import IO, Any

import ray
from ray import serve
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from wa_ray.actors.cloud_sender import CLOUD_SENDER_NAME, CloudSender
from wa_ray.actors.webhook_dispatcher import WebhookDispatcher
from wa_ray.sessions.master_keys import current_key_id, load_master_keys
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.supervisors.session_supervisor import SLOT, SessionSupervisor
from wa_ray import DISPATCHER_NAME, NAMESPACE, SUPERVISOR_NAME
from wa_ray.config import RuntimeConfig, Settings
from wa_ray.datadir_lock import hold_shared

log = logging.getLogger(__name__)


def tls_options(settings: Settings) -> dict[str, str]:
    """Serve's proxy terminates TLS itself when WA_TLS_CERT and WA_TLS_KEY are set: then it serves HTTPS
    only (no plain-HTTP listener). Checked here, before Ray starts, so a typo is one clear error."""
    cert, key = settings.tls_cert, settings.tls_key
    if not cert and not key:
        return {}
    if not (cert and key):
        raise ValueError("WA_TLS_CERT and WA_TLS_KEY go together: set both, or neither")
    for what, path in (("WA_TLS_CERT", cert), ("WA_TLS_KEY", key)):
        if not path.is_file():
            raise ValueError(f"{what}: no file at {path}")
    return {"ssl_certfile": str(cert.resolve()), "ssl_keyfile": str(key.resolve())}


@dataclass
class Service:
    settings: Settings
    config: RuntimeConfig | None = None
    redis: EmbeddedRedis | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    _lock: IO[bytes] | None = field(default=None, repr=False)  # the data dir's shared hold (wa_ray/datadir_lock.py)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://{self.settings.http_host}:{self.settings.http_port}"

    def start(self) -> Service:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a half-started service must not leave Redis, Ray or Chromium behind
            raise

    def _start(self) -> Service:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = hold_shared(s.data_dir)  # `wa-ray rotate-key` refuses while this is held
        tls = tls_options(s)  # before anything starts
        redis_url = s.redis_url
        if not redis_url:
            self.redis = EmbeddedRedis(s.data_dir / "redis", port=s.redis_port, password=s.redis_password)
            redis_url = self.redis.start()
        # the key stays in its file (generated 0600 on first start) or in each process's WA_MASTER_KEY
        self.config = s.runtime(redis_url, current_key_id(s.key_file(), create=True))
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
        serve.start(http_options={"host": s.http_host, "port": s.http_port, **tls}, detached=False)
        from wa_ray.serve_app.app import (
            Ingress,  # imported late: it pulls in FastAPI only where needed
        )
        from wa_ray.serve_app.provider_selector import SELECTOR_APP, ProviderSelector

        # its own Serve app, deployed before the ingress that asks it (through a cached handle)
        serve.run(ProviderSelector.bind(self.config), name=SELECTOR_APP, route_prefix=None, blocking=False)

        serve.run(Ingress.bind(self.config), name="wa-ray", route_prefix="/", blocking=False)
        ray.get(supervisor.wait_restored.remote())
        if s.api_key_id and s.api_key_secret:
            if ray.get(bootstrap_admin_key.remote(self.config, s.api_key_id, s.api_key_secret)) == "revoked":
                log.warning("WA_API_KEY_ID %s was revoked: not re-created at this start", s.api_key_id)
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
        if self._lock:
            self._lock.close()
            self._lock = None


def _named_actors() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


@ray.remote(num_cpus=0)
def bootstrap_admin_key(config: RuntimeConfig, key_id: str, secret: str) -> str:
    """WA_API_KEY_ID/SECRET at each start (storage.apikeys.ensure_bootstrap): kept as is when unchanged,
    written when absent or rotated, and never re-created over a revocation (`wa-ray keys reinstate`)."""
    import asyncio

    from wa_ray.storage.apikeys import ApiKeyStore, ensure_bootstrap
    from wa_ray.storage.redis_client import connect

    async def create() -> str:
        redis = connect(config.redis_url)
        try:
            master, *previous = load_master_keys(config)
            outcome = await ensure_bootstrap(ApiKeyStore(redis, master, previous), key_id, secret)
        finally:
            await redis.aclose()
        if outcome == "revoked":
            log.warning("bootstrap key %s was revoked; not re-created (`wa-ray keys reinstate %s` allows it)",
                        key_id, key_id)
        return outcome

    return asyncio.run(create())

