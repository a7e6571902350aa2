"""Bring the whole service up and down from one driver: Redis, Ray, the control plane, the admin key, Serve.

The wiring itself (what starts, with what, in which order) is wa_ray/entry/wiring.py, shared with the Serve
config builder; this module adds what only a driver does: the data dir's hold, Ray, Serve's HTTP proxy, and
the stop. `start()` returns (and `wa-ray up` says it is up) only once the API is usable: the admin key is in
Redis before the Serve app is deployed, so nothing answers HTTP before a signed call can be verified."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import IO, Any

import ray
from ray import serve

from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.supervisors.placement import SLOT
from wa_ray import NAMESPACE, SUPERVISOR_NAME
from wa_ray.config import RuntimeConfig, Settings
from wa_ray.datadir_lock import hold_shared
from wa_ray.entry.haproxy_ingress import HAProxyIngress, IngressUnavailable, serve_http_options
from wa_ray.entry.wiring import APP_NAME, application, bring_up, json_logs, resolve_redis, runtime_config

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


DEFAULT_DASHBOARD_PORT = 8265


def dashboard_options(settings: Settings) -> dict[str, Any]:
    """ray.init's dashboard arguments: on (WA_DASHBOARD) and on loopback only, since it can stop and kill
    actors (Ray's token auth, where on, asks for its token too). At Ray's default port Ray moves on to the
    next free one when it is taken (another cluster on this machine); a port chosen on purpose is taken as
    given or refused."""
    if not settings.dashboard:
        return {"include_dashboard": False}
    port = None if settings.dashboard_port == DEFAULT_DASHBOARD_PORT else settings.dashboard_port
    return {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port}


@dataclass
class Service:
    settings: Settings
    config: RuntimeConfig | None = None
    redis: EmbeddedRedis | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    _lock: IO[bytes] | None = field(default=None, repr=False)  # the data dir's shared hold (wa_ray/datadir_lock.py)
    dashboard_url: str | None = None  # the Ray dashboard of the cluster this service started, on 127.0.0.1
    haproxy: HAProxyIngress | None = None  # WA_INGRESS=haproxy: its files and Ray's switches, undone at stop

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
        if s.ingress == "haproxy":
            if ray.is_initialized():  # its processes have read their environment already
                raise IngressUnavailable("WA_INGRESS=haproxy: Ray is already running in this process")
            self.haproxy = HAProxyIngress.prepare(s)
            self.haproxy.apply()
        redis_url, self.redis = resolve_redis(s)
        # the key stays in its file (generated 0600 on first start) or in each process's WA_MASTER_KEY
        self.config = runtime_config(s, redis_url, create_key=True)
        if not ray.is_initialized():
            if s.ray_address:
                ray.init(address=s.ray_address, namespace=NAMESPACE, logging_config=json_logs(s.log_level))
            else:
                # Worker logs stay in Ray's log files (/tmp/ray/session_latest/logs), not on the console.
                # address="local": never attach to whatever cluster /tmp/ray/ray_current_cluster names
                context = ray.init(address="local", namespace=NAMESPACE, resources={SLOT: s.sessions_per_node},
                                   **dashboard_options(s), logging_level=logging.WARNING, log_to_driver=False,
                                   logging_config=json_logs(s.log_level))
                self.dashboard_url = f"http://{context.dashboard_url}" if context.dashboard_url else None
                if self.dashboard_url:  # the port it got: the egress guard refuses it as one of our own
                    self.config = replace(self.config, dashboard_port=int(self.dashboard_url.rpartition(":")[2]))
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        # the driver's own HTTP calls (the demo, the CLI) log each request at INFO with its URL, query and all
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        # control plane near this node (the head), then the admin key: both before anything answers HTTP
        self.handles = bring_up(self.config, s, near=ray.get_runtime_context().get_node_id())
        http_options = serve_http_options(s) if self.haproxy else {"host": s.http_host, "port": s.http_port, **tls}
        serve.start(http_options=http_options, detached=False)
        serve.run(application(self.config), name=APP_NAME, route_prefix="/", blocking=False)
        if self.haproxy:
            self.haproxy.wait_until_routing()
        ray.get(self.handles["supervisor"].wait_restored.remote())
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
        if self.haproxy:
            self.haproxy.close()
            self.haproxy = None
        if self.redis:
            self.redis.stop()
        if self._lock:
            self._lock.close()
            self._lock = None


def _named_actors() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]

