"""The Serve application builder for a config-file deployment (`serve deploy deploy/serve.yaml`, KubeRay).

An entry point, like `wa-ray up`: `wa_ray.entry.service.Service.start()` brings everything up from one
driver process. On a cluster that Ray Serve manages from a config file (the Ray cluster launcher,
KubeRay's RayService) there is no such driver: Serve imports the application's `import_path`
(`wa_ray.entry.deploy_entry:app`) and calls it with the config's `args`. Both go through
wa_ray/entry/wiring.py, the one place that wires the service; `app(args)`:

* waits until a node advertises `wa_session_slot` (so sessions and browsers never land on a head that
  has no slots just because the workers have not joined yet),
* brings up the detached control plane (get_if_exists, pinned softly to the head) and the bootstrap
  admin API key when WA_API_KEY_ID/WA_API_KEY_SECRET are set, before the app exists (so nothing answers
  HTTP before a call signed with that key can be verified),
* returns the one `wa-ray` application: the Ingress with the ProviderSelector bound into it.

Settings come from the environment of the Ray node (the same WA_* variables as `wa-ray up`);
`args` may override the non-secret ones (e.g. `web_url`). Secrets (REDIS_URL, WA_MASTER_KEY, ...)
are refused in `args`: a Serve config is shown by `serve status` and the dashboard. A cluster needs
a shared Redis (REDIS_URL), one master key on every node (WA_MASTER_KEY in each node's environment, or
WA_MASTER_KEY_FILE present at that path on every node) and auth state in Redis
(WA_AUTH_STORE=redis) so any node can restore any session; the builder refuses to start otherwise.

Unlike `Service.start`, the builder does not wait for restore-at-boot to finish: the API
comes up while the supervisor brings back connected sessions a few at a time (`/readyz` shows how
many are placed). Re-applying the config re-runs the builder; the detached actors already running
are kept as they are (they hold the RuntimeConfig they were started with).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.serve import Application

from wa_ray.config import RuntimeConfig, Settings
from wa_ray.entry.wiring import application, bring_up
from wa_ray.entry.wiring import runtime_config as wire_runtime_config
from wa_ray.supervisors.placement import SLOT

log = logging.getLogger(__name__)

SECRET_SETTINGS = frozenset({"redis_url", "master_key", "master_key_previous", "api_key_secret", "redis_password"})
# meaningless here: Serve's http_options own host/port, the builder runs inside the cluster, no embedded Redis
NOT_FOR_CONFIG = frozenset({"ray_address", "redis_port", "http_host", "http_port"})
DEPLOY_ARGS: dict[str, float] = {"wait_for_slot_nodes_s": 120.0}  # builder-only args and their defaults
HEAD_RESOURCE = "node:__internal_head__"


class DeployConfigError(ValueError):
    """The environment or the Serve config args cannot make a cluster deployment."""


def settings_from(args: dict[str, Any] | None) -> tuple[Settings, dict[str, float]]:
    """Settings from the node's environment, overridden by the non-secret `args`; plus the builder args."""
    args = dict(args or {})
    deploy = {name: float(args.pop(name, default)) for name, default in DEPLOY_ARGS.items()}
    secret = sorted(SECRET_SETTINGS & args.keys())
    if secret:
        raise DeployConfigError(f"secrets do not belong in the Serve config args: {secret}; set them in the "
                                "environment of the Ray nodes (from a Kubernetes Secret or the node's env file)")
    allowed = Settings.model_fields.keys() - SECRET_SETTINGS - NOT_FOR_CONFIG
    unknown = sorted(args.keys() - allowed)
    if unknown:
        raise DeployConfigError(f"unknown args {unknown}; expected one of {sorted(allowed | DEPLOY_ARGS.keys())}")
    settings = Settings(**args)
    problems = []
    if not settings.redis_url:
        problems.append("REDIS_URL is not set (the embedded Redis listens on 127.0.0.1 of one node only)")
    if not settings.master_key and not settings.master_key_file:
        problems.append("neither WA_MASTER_KEY nor WA_MASTER_KEY_FILE is set (every node must decrypt the same "
                        "auth state and secrets)")
    if settings.auth_store != "redis":
        problems.append("WA_AUTH_STORE is not 'redis' (a session moved to another node would need a new QR)")
    if problems:
        raise DeployConfigError("cluster deployment: " + "; ".join(problems))
    return settings, deploy


def runtime_config(settings: Settings) -> RuntimeConfig:
    """The RuntimeConfig `Service._start` builds (wiring.runtime_config), for a cluster (REDIS_URL and a
    master key are set; the key is never generated here). A missing or malformed key fails here, not in
    every actor."""
    assert settings.redis_url and (settings.master_key or settings.master_key_file)
    return wire_runtime_config(settings, settings.redis_url, create_key=False)


def slot_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    """Alive nodes that advertise session slots."""
    return [n["NodeID"] for n in nodes if n.get("Alive") and n.get("Resources", {}).get(SLOT)]


def head_node(nodes: list[dict[str, Any]]) -> str | None:
    return next((n["NodeID"] for n in nodes if n.get("Alive") and HEAD_RESOURCE in n.get("Resources", {})), None)


def wait_for_slot_nodes(timeout_s: float, poll_s: float = 1.0) -> list[str]:
    """Block until some node advertises `wa_session_slot`; timeout 0 does not wait (single node, no slots)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        found = slot_nodes(ray.nodes())
        if found or timeout_s <= 0:
            return found
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no node advertises {SLOT} after {timeout_s:.0f} s; start the workers with "
                               f"--resources='{{\"{SLOT}\": 50}}' (or set wait_for_slot_nodes_s: 0 in the "
                               "Serve config args to let sessions run on any node)")
        time.sleep(poll_s)


def start_control_plane(config: RuntimeConfig, settings: Settings) -> dict[str, Any]:
    """wiring.bring_up near the head: the control plane, then the admin key."""
    import ray

    return bring_up(config, settings, near=head_node(ray.nodes()))


def app(args: dict[str, Any]) -> Application:
    """Serve builder for the `wa-ray` application (route_prefix: /): slot nodes, control plane and admin key
    first, then the Ingress with the ProviderSelector bound into it."""
    settings, deploy = settings_from(args)
    config = runtime_config(settings)
    nodes = wait_for_slot_nodes(deploy["wait_for_slot_nodes_s"])
    log.info("wa-ray: %d node(s) advertise %s; starting the control plane", len(nodes), SLOT)
    start_control_plane(config, settings)
    return application(config)
