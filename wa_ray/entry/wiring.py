"""The one place wa-ray is wired together: Redis, the master key, the control plane, the admin key, Serve.

Two entry points start wa-ray and both go through here, so they cannot drift apart:

* `Service` (wa_ray/entry/service.py): one driver process (`wa-ray up`, the demo, tests, benches) that
  also starts Ray and, without REDIS_URL, an embedded Redis;
* the Serve config builder (wa_ray/entry/deploy_entry.py) that Ray Serve imports on a cluster
  (`serve deploy deploy/serve.yaml`, KubeRay's RayService), where there is no such driver.

Why the roof: wiring starts actors (actors/, supervisors/) and composes Serve deployments (serve_app/), so it
sits above all of them, next to the entry points; nothing below imports it (the Serve builder used to live
in serve_app/ and reach up into the entry points for the admin key).

The order is the invariant "up means usable": the control plane (supervisor, webhook dispatcher, cloud
sender), then the bootstrap admin key in Redis, and only then the Serve application. Until the app is
deployed nothing answers on its route, so the first 200 from /healthz or /readyz comes after the key exists
and a call signed with it the same instant is verified (tests/integration/test_ready_means_usable.py).

Serve composition is Serve's own: one application, `Ingress.bind(config, ProviderSelector.bind(config))`.
Each ingress replica receives the selector's deployment handle as a constructor argument (no lookup by name,
no module-global cache) and still decides the provider locally from Redis when the selector is down.

The master key is never wired as a value: `runtime_config` puts only its file (or "this process's
WA_MASTER_KEY") and its public id into the RuntimeConfig; each process loads it with
`wa_ray.master_keys.load_master_keys`, the one loader.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from ray.serve import Application
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from wa_ray import DISPATCHER_NAME, NAMESPACE, SUPERVISOR_NAME
from wa_ray.actors.campaign_runner import CAMPAIGN_RUNNER_NAME, CampaignRunner
from wa_ray.actors.cloud_sender import CLOUD_SENDER_NAME, CloudSender
from wa_ray.actors.webhook_dispatcher import WebhookDispatcher
from wa_ray.config import RuntimeConfig, Settings
from wa_ray.master_keys import current_key_id, load_master_keys
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.storage.layout_migration import prepare as prepare_layout
from wa_ray.supervisors.session_supervisor import SessionSupervisor

log = logging.getLogger(__name__)

APP_NAME = "wa-ray"  # the one Serve application (route /): the Ingress with the ProviderSelector bound into it


def resolve_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL when set; otherwise an embedded Redis in the data dir, started here (the caller stops it)."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir / "redis", port=settings.redis_port, password=settings.redis_password)
    return embedded.start(), embedded


def runtime_config(settings: Settings, redis_url: str, *, create_key: bool) -> RuntimeConfig:
    """What every actor and replica is given. It names the master key (its file, or WA_MASTER_KEY of each
    process's environment) and its id, never the key: the config is an actor argument. `create_key`: generate
    the key file (0600) when absent, for a single-node start; a cluster refuses to invent one."""
    return settings.runtime(redis_url, current_key_id(settings.key_file(), create=create_key))


def start_control_plane(config: RuntimeConfig, near: str | None) -> dict[str, Any]:
    """The detached supervisor, webhook dispatcher, cloud sender and campaign runner (get_if_exists: a restart of
    the driver or a re-applied Serve config keeps those already running), warmed up before this returns.

    `near`: the node they prefer (the one that starts the service, or the head): losing a session node then
    never takes the supervisor or the outboxes with it. Soft, so a node that is gone is no obstacle."""
    where = {"scheduling_strategy": NodeAffinitySchedulingStrategy(near, soft=True)} if near else {}
    common = {"namespace": NAMESPACE, "lifetime": "detached", "get_if_exists": True, **where,
              **config.actor_options()}
    supervisor = SessionSupervisor.options(name=SUPERVISOR_NAME, **common).remote(config)
    dispatcher = WebhookDispatcher.options(name=DISPATCHER_NAME, **common).remote(config)
    cloud_sender = CloudSender.options(name=CLOUD_SENDER_NAME, **common).remote(config)
    campaigns = CampaignRunner.options(name=CAMPAIGN_RUNNER_NAME, **common).remote(config)
    ray.get([supervisor.warm.remote(), dispatcher.start.remote(), cloud_sender.ping.remote(),
             campaigns.ping.remote()])
    return {"supervisor": supervisor, "dispatcher": dispatcher, "cloud_sender": cloud_sender,
            "campaign_runner": campaigns}


@ray.remote(num_cpus=0)
def bootstrap_admin_key(config: RuntimeConfig, key_id: str, secret: str) -> str:
    """WA_API_KEY_ID/SECRET at each start (storage.apikeys.ensure_bootstrap): kept as is when unchanged,
    written when absent or rotated, and never re-created over a revocation (`wa-ray keys reinstate`).

    A Ray task, so the key is loaded where the actors load it (a node's key file or environment)."""
    from wa_ray.storage.apikeys import ApiKeyStore, ensure_bootstrap
    from wa_ray.storage.redis_client import connect

    async def create() -> str:
        redis = connect(config.redis_url)
        try:
            master, *previous = load_master_keys(config)
            return await ensure_bootstrap(ApiKeyStore(redis, master, previous), key_id, secret)
        finally:
            await redis.aclose()

    return asyncio.run(create())


def ensure_admin_key(config: RuntimeConfig, settings: Settings) -> str | None:
    """The bootstrap admin key in Redis (when WA_API_KEY_ID and WA_API_KEY_SECRET are set), before it returns."""
    if not (settings.api_key_id and settings.api_key_secret):
        return None
    outcome: str = ray.get(bootstrap_admin_key.remote(config, settings.api_key_id, settings.api_key_secret))
    if outcome == "revoked":
        log.warning("WA_API_KEY_ID %s was revoked: not re-created at this start (`wa-ray keys reinstate %s` "
                    "allows it)", settings.api_key_id, settings.api_key_id)
    return outcome


def ensure_key_layout(config: RuntimeConfig) -> None:
    """Redis in the key layout this version reads, migrated if it holds the old one (storage/layout_migration.py),
    before any actor opens it. The service's named actors still running (detached ones outlive a driver) would
    write old names meanwhile: a migration refuses while there are any."""
    running = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    # on a thread of its own: a caller may be inside an event loop already (the bench's recovery restarts the
    # service from one), where asyncio.run refuses to start
    with ThreadPoolExecutor(1, thread_name_prefix="key-layout") as pool:
        pool.submit(asyncio.run, prepare_layout(config.redis_url, running=running)).result()


def bring_up(config: RuntimeConfig, settings: Settings, near: str | None) -> dict[str, Any]:
    """Everything the HTTP application needs before it may answer: Redis in this version's key layout, the control
    plane, then the admin key."""
    ensure_key_layout(config)
    handles = start_control_plane(config, near)
    ensure_admin_key(config, settings)
    return handles


def json_logs(level: str) -> ray.LoggingConfig:
    """Every process of the job logs JSON lines at WA_LOG_LEVEL (Ray's structured logging: each line carries
    the worker, actor and task ids, and whatever a call passes as `extra`, e.g. an event id)."""
    return ray.LoggingConfig(encoding="JSON", log_level=level)


def serve_logs(config: RuntimeConfig) -> dict[str, Any]:
    """The replicas' logs: JSON lines that carry the request id. No access log: mutating calls are in the audit
    stream, and a line per request would be most of the log at the rates the service is built for."""
    return {"encoding": "JSON", "log_level": config.log_level, "enable_access_log": False}


def application(config: RuntimeConfig) -> Application:
    """The Serve application: the Ingress with the ProviderSelector's handle bound into it."""
    from wa_ray.serve_app.app import Ingress  # late: FastAPI and the routers only where the app is built
    from wa_ray.serve_app.provider_selector import ProviderSelector

    logs = serve_logs(config)
    selector = ProviderSelector.options(logging_config=logs).bind(config)
    return Ingress.options(logging_config=logs).bind(config, selector)
