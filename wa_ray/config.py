"""Service configuration from the environment (pydantic-settings).

`Settings` is read once at the edge (CLI, test fixtures); the parts inside
receive a plain `RuntimeConfig` (wa_ray/runtime.py) so Ray actors never depend on the environment
of whichever process happened to start them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wa_ray.egress import split_allow
from wa_ray.runtime import CHROMIUM_FLAGS, RuntimeConfig, default_chromium

__all__ = ["CHROMIUM_FLAGS", "RuntimeConfig", "Settings", "default_chromium"]

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WA_", extra="ignore")

    data_dir: Path = Path(".wa-ray")
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "WA_REDIS_URL"))
    redis_port: int = 0  # embedded server; 0 picks a free port
    redis_password: str | None = None  # embedded server's password; default generated into data_dir/redis/password
    web_url: str = "https://web.whatsapp.com"
    chromium: str | None = Field(default_factory=default_chromium)
    master_key: str | None = None  # WA_MASTER_KEY: base64 of 32 bytes, read by each process from its own env
    # WA_MASTER_KEY_FILE: the key file every process reads (default data_dir/master.key, generated 0600)
    master_key_file: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # WA_TLS_CERT / WA_TLS_KEY (PEM paths, both or neither): the Serve proxy itself speaks HTTPS only
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # WA_INGRESS: what listens on WA_HTTP_PORT. `serve`: Serve's Python proxy (a Ray actor relaying each request
    # to the Ingress replica). `haproxy`: Ray 2.60's HAProxy direct ingress, Debian's haproxy in front of a
    # replica that serves HTTP itself (wa_ray/entry/haproxy_ingress.py; README, "Ingress")
    ingress: Literal["serve", "haproxy"] = "serve"
    haproxy_binary: str = "haproxy"  # WA_HAPROXY_BINARY: looked up on PATH unless a path
    haproxy_threads: int = Field(default=1, ge=1, le=64)  # HAProxy's nbthread (Ray's default is 4)
    ray_address: str | None = Field(default=None, validation_alias=AliasChoices("RAY_ADDRESS", "WA_RAY_ADDRESS"))
    sessions_per_node: int = 50
    # Where a session's lifecycle runs: in a SessionActor process of its own, as the design card draws it
    # (the default), or as a grain in its node's BrowserHost (`host`: the density option, no Ray worker
    # per session). README, "Session hosting".
    session_hosting: Literal["actor", "host"] = "actor"
    # The Ray dashboard of a cluster the service starts itself (operators see actor health there), bound
    # to 127.0.0.1. WA_DASHBOARD=0 turns it off. At the default port Ray moves on to the next free one when
    # 8265 is taken (Service.dashboard_url says where it is); any other port is taken as given.
    dashboard: bool = True
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    # blank pages (context + bridge + renderer) each BrowserHost keeps ready for new sessions: takes
    # ~0.4 s off create -> QR for ~25-35 MB each per node
    spare_pages: int = 2
    sessions_per_workspace: int = 100
    auth_store: Literal["file", "redis"] = "file"
    master_key_previous: str | None = None  # with WA_MASTER_KEY: still accepted for decryption while rotating
    qr_max_refs: int = 6
    # login "code" sessions: a new pairing code this often while unlinked (WhatsApp's codes live 3 minutes),
    # and how many codes before the session fails as a QR timeout does
    pairing_code_interval_s: float = Field(default=180.0, gt=0)
    pairing_code_max: int = Field(default=5, ge=1)
    # WA_LOG_LEVEL: the level of every process's logs, which are JSON lines (Ray's structured logging; README,
    # "Logs")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # WhatsApp-side disconnects (CONFLICT, UNLAUNCHED, a TIMEOUT past WA_DISCONNECT_GRACE_S) are retried with
    # backoff for at most WA_DISCONNECT_RETRY_S from the disconnect, then the session is `failed`
    disconnect_retry_s: float = Field(default=120.0, gt=0)
    disconnect_grace_s: float = Field(default=10.0, ge=0)
    webhook_max_attempts: int = 8
    webhook_base_delay_s: float = 1.0
    webhook_max_delay_s: float = 300.0
    webhook_timeout_s: float = 10.0
    # message pipeline: the design's pacing seed rule is on unless WA_PACING=false (load tests);
    # workspaces override it through PUT /v1/workspaces/{ws}/pacing
    pacing: bool = True
    pacing_per_minute: int = 30
    pacing_per_hour: int = 1000
    typing_delay: bool = True
    provider_cache_ttl_s: float = 1.0  # how long an ingress replica reuses a workspace's provider decision
    api_key_id: str | None = None  # bootstrap admin key (created at start when both are set; never over a revoked id)
    api_key_secret: str | None = None
    # WA_METRICS_TOKEN: bearer token Prometheus presents for /metrics and the details of /readyz (admin-signed
    # requests work too); unset: only admin-signed requests. Only its SHA-256 reaches the processes.
    metrics_token: str | None = Field(default=None, min_length=32, max_length=256)
    # WA_METRICS_PER_SESSION: /metrics also reports each session's day counts, connection and ban risk
    # (wa_session_* series), for at most WA_METRICS_SESSION_MAX sessions, so the cardinality stays bounded
    metrics_per_session: bool = False
    metrics_session_max: int = Field(default=500, ge=1, le=100_000)
    # concurrent SSE streams (over them: 429): per token, and per key with its tokens (a key's
    # `max_streams` overrides the latter)
    streams_per_token: int = 5
    streams_per_key: int = 50
    # Egress (wa_ray/egress.py): WA_EGRESS_ALLOW, comma-separated CIDRs and host names that tenants' webhook and
    # Cloud API URLs may reach besides public addresses (a backend on a private network; loopback only by CIDR).
    # WA_EGRESS_DNS=false: tenant-named hosts are never looked up, only IP literals pass (hermetic test rigs).
    egress_allow: str = ""
    egress_dns: bool = True
    # WA_MEDIA_RETENTION_S: how long uploaded and fetched media stays in the encrypted media store
    media_retention_s: int = Field(default=30 * 24 * 3600, ge=60)
    # WA_NUMBER_CHECK_PER_MIN: number checks (GET .../contacts/{number}/exists) per session and minute, bursts
    # of as many; bulk checks are a ban signal
    number_check_per_min: int = Field(default=20, ge=1, le=600)
    # Data retention bounds per kind (storage/retention.py): a workspace may keep each for at most this many
    # days, and keeps it that long without a policy of its own; the sweep runs every WA_RETENTION_SWEEP_S
    retention_max_events_days: int = Field(default=30, ge=1, le=3650)
    retention_max_messages_days: int = Field(default=90, ge=1, le=3650)
    retention_max_audit_days: int = Field(default=365, ge=1, le=3650)
    retention_max_media_days: int = Field(default=30, ge=1, le=3650)
    retention_sweep_s: float = Field(default=3600.0, ge=10)
    ray_task_events: bool = False  # WA_RAY_TASK_EVENTS=1: our actors' calls in Ray's task view (RuntimeConfig)
    # Scheduled backups by `wa-ray up` (wa_ray/entry/backup.py): every WA_BACKUP_INTERVAL_S (0 = off) an
    # encrypted archive into WA_BACKUP_DIR (default data_dir/backups), the newest WA_BACKUP_KEEP kept. The
    # passphrase comes from WA_BACKUP_PASSPHRASE or the file WA_BACKUP_PASSPHRASE_FILE, read by that module.
    backup_dir: Path | None = None
    backup_interval_s: float = Field(default=0.0, ge=0)
    backup_keep: int = Field(default=7, ge=1)
    backup_passphrase_file: Path | None = None

    def key_file(self) -> Path | None:
        """The key file processes read, or None when WA_MASTER_KEY (each process's environment) wins."""
        if self.master_key:
            return None
        return (self.master_key_file or self.data_dir / "master.key").resolve()

    def runtime(self, redis_url: str, master_key_id: str) -> RuntimeConfig:
        """The one place Settings become what actors get, for `Service` and the Serve config builders."""
        return RuntimeConfig(
            redis_url=redis_url, web_url=self.web_url, data_dir=str(self.data_dir.resolve()),
            master_key_file=str(self.key_file()) if self.key_file() else None, master_key_id=master_key_id,
            chromium=self.chromium, sessions_per_node=self.sessions_per_node,
            session_hosting=self.session_hosting, spare_pages=self.spare_pages,
            sessions_per_workspace=self.sessions_per_workspace, auth_store=self.auth_store,
            qr_max_refs=self.qr_max_refs, webhook_max_attempts=self.webhook_max_attempts,
            pairing_code_interval_s=self.pairing_code_interval_s, pairing_code_max=self.pairing_code_max,
            disconnect_retry_s=self.disconnect_retry_s, disconnect_grace_s=self.disconnect_grace_s,
            webhook_base_delay_s=self.webhook_base_delay_s, webhook_max_delay_s=self.webhook_max_delay_s,
            webhook_timeout_s=self.webhook_timeout_s, pacing=self.pacing, pacing_per_minute=self.pacing_per_minute,
            pacing_per_hour=self.pacing_per_hour, typing_delay=self.typing_delay,
            provider_cache_ttl_s=self.provider_cache_ttl_s,
            metrics_token_sha256=(hashlib.sha256(self.metrics_token.encode()).hexdigest()
                                  if self.metrics_token else None),
            streams_per_token=self.streams_per_token, streams_per_key=self.streams_per_key,
            metrics_per_session=self.metrics_per_session, metrics_session_max=self.metrics_session_max,
            http_port=self.http_port, dashboard_port=self.dashboard_port,
            egress_allow=split_allow(self.egress_allow), egress_dns=self.egress_dns,
            media_retention_s=self.media_retention_s,
            number_check_per_min=self.number_check_per_min, log_level=self.log_level,
            retention_max_days=(self.retention_max_events_days, self.retention_max_messages_days,
                                self.retention_max_audit_days, self.retention_max_media_days),
            retention_sweep_s=self.retention_sweep_s, ray_task_events=self.ray_task_events,
        )
