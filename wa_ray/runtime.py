"""What actors and deployments are given: a plain dataclass, no pydantic.

Kept apart from `wa_ray.config` so a SessionActor process (one per session) does not pay for
importing pydantic: ~9 MB RSS per process, 450 MB at 50 sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Where the kernel would refuse Chromium's sandbox (Chromium then refuses to start unless told
# --no-sandbox), as a file and the value that means "refused".
_USERNS_OFF: tuple[tuple[str, str], ...] = (
    ("/proc/sys/kernel/unprivileged_userns_clone", "0"),  # Debian's switch
    ("/proc/sys/user/max_user_namespaces", "0"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),  # Ubuntu 24.04+
)


def chromium_sandbox_available(euid: int | None = None, proc: str = "") -> bool:
    """Can Chromium sandbox its renderers here? Not as root (Chromium refuses to sandbox as root), and
    not where unprivileged user namespaces are switched off. Conservative: in doubt, no sandbox, since a
    browser that does not start is no safer. `proc` prefixes the /proc paths (tests)."""
    if (os.geteuid() if euid is None else euid) == 0:
        return False
    for path, refused in _USERNS_OFF:
        try:
            with open(proc + path) as fh:
                if fh.read().strip() == refused:
                    return False
        except OSError:
            continue  # the switch does not exist on this kernel: not refused by it
    return True


def chromium_launch_flags(flags: tuple[str, ...] | list[str], sandbox: bool | None = None) -> list[str]:
    """`flags` with --no-sandbox exactly when this machine cannot sandbox, decided where Chromium starts
    (a node may differ from the driver that built the config)."""
    rest = [f for f in flags if f != "--no-sandbox"]
    allowed = chromium_sandbox_available() if sandbox is None else sandbox
    return rest if allowed else ["--no-sandbox", *rest]


# The design's launch flags: also what the benches give the peers (a browser per session, whatsapp-web.js).
# --no-sandbox only where the sandbox cannot run (this process's machine; browser hosts decide again).
CHROMIUM_BASE_FLAGS: tuple[str, ...] = (
    *(() if chromium_sandbox_available() else ("--no-sandbox",)),
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)

# Playwright 1.65's own --disable-features list. Chromium keeps only the last --disable-features it is
# given, and ours comes after Playwright's, so ours must repeat it (tests/sessions/test_chromium_flags.py
# checks it against the installed driver).
PLAYWRIGHT_DISABLED_FEATURES: tuple[str, ...] = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect", "TcpPortRandomizationWin",
    "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch",
    "msForceBrowserSignIn", "msEdgeUpdateLaunchServicesPreferredVersion",
)
# Headless Chromium 156 gives every context a hidden window whose address bar preloads its dropdown
# (chrome://omnibox-popup.top-chrome/) in a renderer process of its own: two renderers per session.
# Off, a linked context takes ~32 MB PSS instead of ~67-71.
NO_OMNIBOX_POPUP: tuple[str, ...] = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")

CHROMIUM_FLAGS: tuple[str, ...] = (
    *CHROMIUM_BASE_FLAGS,
    "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, *NO_OMNIBOX_POPUP)),
)


def default_chromium() -> str | None:
    """Debian's wrapper script is fine for Playwright; prefer the binary itself to skip its shell warning."""
    for candidate in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if os.path.exists(candidate):
            return candidate
    return None  # Playwright's own browser, if installed


@dataclass(frozen=True)
class RuntimeConfig:
    """What every actor and deployment needs to know, passed explicitly."""

    redis_url: str
    web_url: str
    data_dir: str
    # Where each process reads the master key (wa_ray/master_keys.py); None: WA_MASTER_KEY in its own
    # environment. Never the key itself: this config is an actor argument, kept in the GCS.
    master_key_file: str | None = None
    master_key_id: str = ""  # the current key's public id: a process that found another key refuses to run
    chromium: str | None = None
    sessions_per_node: int = 50
    spare_pages: int = 2  # blank pages each BrowserHost keeps prepared, so a new session only navigates
    session_hosting: str = "actor"  # "actor": a SessionActor each; "host": grains in the node's BrowserHost
    sessions_per_workspace: int = 100
    auth_store: str = "file"
    qr_max_refs: int = 6
    pairing_code_interval_s: float = 180.0  # a login "code" session asks for a new code this often while unlinked
    pairing_code_max: int = 5  # codes per login before the session fails (as qr_max_refs for QR)
    disconnect_retry_s: float = 120.0  # WA_DISCONNECT_RETRY_S: retry a WhatsApp-side disconnect this long, then fail
    disconnect_grace_s: float = 10.0  # WA_DISCONNECT_GRACE_S: a TIMEOUT the page may fix itself before a reopen
    webhook_max_attempts: int = 8
    webhook_base_delay_s: float = 1.0
    webhook_max_delay_s: float = 300.0
    webhook_timeout_s: float = 10.0
    pacing: bool = True
    pacing_per_minute: int = 30
    pacing_per_hour: int = 1000
    typing_delay: bool = True
    provider_cache_ttl_s: float = 1.0
    metrics_token_sha256: str | None = None  # of WA_METRICS_TOKEN (serve_app/ops_api.py); never the token
    metrics_per_session: bool = False  # WA_METRICS_PER_SESSION: wa_session_* series on /metrics
    metrics_session_max: int = 500  # WA_METRICS_SESSION_MAX: at most this many sessions in them
    streams_per_token: int = 5  # concurrent SSE streams per token
    streams_per_key: int = 50  # ... per key with all its tokens (ApiKey.max_streams overrides)
    http_port: int = 8000  # the service's own HTTP port: never an egress destination (wa_ray/egress.py)
    dashboard_port: int = 8265  # the Ray dashboard's port (the one it got): never an egress destination either
    egress_allow: tuple[str, ...] = ()  # WA_EGRESS_ALLOW: CIDRs and host names tenants' URLs may reach
    egress_dns: bool = True  # WA_EGRESS_DNS=false: tenant-named hosts are never looked up (IP literals only)
    media_retention_s: int = 30 * 24 * 3600  # WA_MEDIA_RETENTION_S: how long stored media is kept
    # WA_RETENTION_MAX_{EVENTS,MESSAGES,AUDIT,MEDIA}_DAYS: the most days a workspace may keep each kind, and
    # what it keeps without a policy (storage/retention.py); WA_RETENTION_SWEEP_S: how often the sweep runs
    retention_max_days: tuple[int, int, int, int] = (30, 90, 365, 30)
    retention_sweep_s: float = 3600.0
    number_check_per_min: int = 20  # WA_NUMBER_CHECK_PER_MIN: number checks per session and minute
    chromium_flags: tuple[str, ...] = field(default=CHROMIUM_FLAGS)
    log_level: str = "INFO"  # WA_LOG_LEVEL; logs are JSON lines (serve_logging)
    # WA_RAY_TASK_EVENTS: whether our actors report each method call to Ray's GCS (the dashboard's task view,
    # `ray list tasks`). Off by default, as Ray Serve does for its own actors: the GCS keeps up to 100,000
    # tasks at ~3.4 KB each, so at a thousand messages a minute it grew ~8 MB a minute toward ~380 MB
    # (bench/results, the soak).
    ray_task_events: bool = False

    def actor_options(self) -> dict[str, bool]:
        """The `.options(...)` every actor of ours is created with."""
        return {"enable_task_events": self.ray_task_events}
