"""What actors and deployments are given: a plain dataclass, no pydantic.

Kept apart from `wa_ray.config` so a SessionActor process (one per session) does not pay for
importing pydantic: measured ~9 MB RSS per process, 450 MB at 50 sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# The design's launch flags: also what the benches give the peers (a browser per session, whatsapp-web.js).
CHROMIUM_BASE_FLAGS: tuple[str, ...] = (
    "--no-sandbox",
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
# Off, a linked context measured 32 MB PSS instead of 67-71 (20 contexts on the simulator).
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
    master_key_b64: str
    chromium: str | None = None
    sessions_per_node: int = 50
    spare_pages: int = 2  # blank pages each BrowserHost keeps prepared, so a new session only navigates
    session_hosting: str = "host"  # "host": grains in the node's BrowserHost; "actor": a SessionActor each
    sessions_per_workspace: int = 100
    auth_store: str = "file"
    previous_keys_b64: tuple[str, ...] = ()
    qr_max_refs: int = 6
    webhook_max_attempts: int = 8
    webhook_base_delay_s: float = 1.0
    webhook_max_delay_s: float = 300.0
    webhook_timeout_s: float = 10.0
    pacing: bool = True
    pacing_per_minute: int = 30
    pacing_per_hour: int = 1000
    typing_delay: bool = True
    provider_cache_ttl_s: float = 1.0
    chromium_flags: tuple[str, ...] = field(default=CHROMIUM_FLAGS)
