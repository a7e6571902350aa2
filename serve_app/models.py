"""Request and response models of the HTTP API (pydantic at the edge; the OpenAPI spec comes from these).

The message pipeline's models (send, status, provider, pacing) live with it in message_models.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from wa_ray.actors.webhook_signing import STANDARD_PREFIX, is_standard_secret
from wa_ray.ids import ID_PATTERN, PHONE_PATTERN

Role = Literal["admin", "workspace", "read"]
SessionStateName = Literal["initializing", "qr_required", "authenticating", "connected", "reconnecting",
                           "disconnected", "logged_out", "blocked", "failed", "stopped"]


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_found, bad_signature, rate_limited")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- sessions ---------------------------------------------------------------------------------


class _NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(default=None, pattern=ID_PATTERN, description="omit for a generated id")


class QrLogin(_NewSession):
    """Links by QR: the session publishes `session.qr` codes to scan."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"session_id": "support-1", "login": "qr"}, {}]})

    login: Literal["qr"] = Field(default="qr", description="how the device links: by scanning `session.qr` codes")

    @property
    def phone(self) -> None:
        return None


class CodeLogin(_NewSession):
    """Links by pairing code: the session publishes `session.pairing_code` codes to enter on the phone of
    `phone` (renewed every 3 minutes while unlinked)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"session_id": "sales-2", "login": "code", "phone": "15551230001"}]})

    login: Literal["code"] = Field(description="how the device links: by entering `session.pairing_code` codes")
    phone: str = Field(pattern=PHONE_PATTERN, description="the number that links, E.164 digits without '+'")


# Two shapes, so the published schema says what the check says: a phone only with login `code`, and then
# required (a body valid against the schema is never refused).
CreateSession = Annotated[QrLogin | CodeLogin, Field(description="a QR login (the default) or a pairing-code login")]


# A connected session as GET .../sessions/{sid} shows it; the event examples' workspace and session.
SESSION_EXAMPLE: dict[str, Any] = {
    "workspace_id": "acme", "session_id": "support-1", "state": "connected",
    "node_id": "5c1f0a9e3b7d2c4a6e8f1b3d5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b", "since": 1765000000.123, "reason": None,
    "me": "15559870000", "restarts": 0, "login": "qr", "phone": None, "push_name": "Acme Support", "primary": True,
    "created_at": 1764990000.5, "last_connected_at": 1765000000.123}


class SessionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        SESSION_EXAMPLE,
        {**SESSION_EXAMPLE, "session_id": "sales-2", "state": "qr_required", "node_id": None, "me": None,
         "push_name": None, "primary": False, "last_connected_at": None, "login": "code", "phone": "15551230001"}]})
    workspace_id: str
    session_id: str
    state: str = Field(description="one of initializing, qr_required, authenticating, connected, reconnecting, "
                                   "disconnected, logged_out, blocked, failed, stopped")
    node_id: str | None = None
    since: float | None = None
    reason: str | None = None
    me: str | None = Field(default=None, description="the linked phone number once connected")
    restarts: int = 0
    login: Literal["qr", "code"] = Field(default="qr", description="how the device links (see CreateSession)")
    phone: str | None = Field(default=None, description="with login `code`: the number asked to link")
    push_name: str | None = Field(default=None, description="the WhatsApp profile name of the linked number")
    primary: bool = Field(default=False, description="the workspace's primary number: the default sender "
                                                     "while it is connected (PUT .../sessions/{sid})")
    created_at: float | None = Field(default=None, description="when the session was first placed (unix s)")
    last_connected_at: float | None = Field(default=None, description="when it last became connected (unix s)")

    @classmethod
    def from_record(cls, record: dict[str, str], primary: str | None = None) -> SessionOut:
        """`primary`: the workspace's primary session id (storage/numbers.py), if any."""
        return cls(
            workspace_id=record["workspace_id"], session_id=record["session_id"],
            state=record.get("state") or "initializing", node_id=record.get("node_id") or None,
            since=float(record["since"]) if record.get("since") else None,
            reason=record.get("reason") or None, me=record.get("me") or None,
            restarts=int(record.get("restarts") or 0),
            login="code" if record.get("login") == "code" else "qr",
            phone=(record.get("phone") or None) if record.get("login") == "code" else None,
            push_name=record.get("push_name") or None, primary=bool(primary) and primary == record["session_id"],
            created_at=_float_or_none(record.get("created_at")),
            last_connected_at=_float_or_none(record.get("last_connected_at")),
        )


class SetSession(BaseModel):
    """PUT .../sessions/{sid}: what may be changed on an existing session."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"primary": True}]})
    primary: StrictBool = Field(description="true: make this the workspace's primary number (one per workspace); "
                                            "false on the primary clears it")


def _float_or_none(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


class QrOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"qr": "2@Zm9yLWRvY3Mtb25seQ==,bm90LWEtcmVhbC1rZXk=,ZXhhbXBsZQ==,ZXhhbXBsZQ==", "since": 1765000000.123}]})
    qr: str = Field(description="the raw string to encode as a QR code")
    since: float


# --- workspace configuration -------------------------------------------------------------------


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://app.example.com/hooks/wa-ray", "secret": "whsec_ZXhhbXBsZS1zZWNyZXQtbm90LWZvci11c2U="}]})
    url: str = Field(min_length=1, max_length=2048,
                     description="http(s) URL that receives signed event POSTs; checked by the egress guard "
                                 "(422 `egress_denied`: loopback, link-local, private unless WA_EGRESS_ALLOW, ...)")
    secret: str = Field(min_length=16, max_length=256,
                        description="the signing secret, stored encrypted: a Standard Webhooks `whsec_<base64 of "
                                    "24-64 random bytes>` (recommended: every Standard Webhooks verifier takes it "
                                    "as is), or any other string of 16-256 characters, which keys the signatures "
                                    "by its UTF-8 bytes (verifiers then take `whsec_` + its base64)")

    @field_validator("secret")
    @classmethod
    def _standard_form(cls, secret: str) -> str:
        if secret.startswith(STANDARD_PREFIX) and not is_standard_secret(secret):
            raise ValueError("a whsec_ secret must be the base64 of 24 to 64 bytes")
        return secret


class WorkspaceList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"workspaces": ["acme", "globex"]}]})
    workspaces: list[str]


# --- browser tokens ---------------------------------------------------------------------------


class StreamTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"ttl_s": 300, "session_id": "support-1"}, {}]})
    ttl_s: int = Field(default=300, ge=30, le=3600, description="lifetime in seconds")
    session_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                   description="pin the stream to one session's events")


# Tokens are `<kind>.<base64url claims>.<hex HMAC>`; the examples' HMAC is all zeros (never a valid token).
_FAKE_MAC = "0" * 64


class StreamToken(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": "stream.eyJraW5kIjoic3RyZWFtIiwid3MiOiJhY21lIiwiZXhhbXBsZSI6dHJ1ZX0." + _FAKE_MAC,
         "expires_at": 1765000300, "workspace_id": "acme", "session_id": "support-1"}]})
    token: str
    expires_at: int
    workspace_id: str
    session_id: str | None = None


class ConsoleTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"workspace_id": "acme", "ttl_s": 900}]})
    workspace_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                     description="bind the console to one workspace; admins may omit it")
    ttl_s: int = Field(default=900, ge=60, le=43_200, description="lifetime in seconds (max 12 h)")


_CONSOLE_TOKEN = "console.eyJraW5kIjoiY29uc29sZSIsIndzIjoiYWNtZSIsImV4YW1wbGUiOnRydWV9." + _FAKE_MAC


class ConsoleToken(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": _CONSOLE_TOKEN, "expires_at": 1765000900, "workspace_id": "acme",
         "url": "https://wa-ray.example.com/console#token=" + _CONSOLE_TOKEN}]})
    token: str
    expires_at: int
    workspace_id: str | None
    url: str = Field(description="open this in a browser; the token travels in the fragment, never to logs")


class ConsoleLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"token": _CONSOLE_TOKEN}]})
    token: str = Field(min_length=10, max_length=2048)


class ConsoleWhoAmI(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"role": "workspace", "workspace_id": "acme", "workspaces": ["acme"], "expires_at": 1765000900},
        {"role": "admin", "workspace_id": None, "workspaces": ["acme", "globex"], "expires_at": None}]})
    role: Role
    workspace_id: str | None
    workspaces: list[str]
    expires_at: int | None = None


# --- audit ------------------------------------------------------------------------------------


class AuditRecord(BaseModel):
    id: str
    ts: float
    who: str
    role: str | None = None
    method: str
    route: str
    path: str
    workspace_id: str | None = None
    status: int
    outcome: Literal["ok", "denied", "rate_limited", "rejected", "error", "shed"]
    request_id: str
    client: str | None = None
    claimed_key: str | None = None
    params: dict[str, str] | None = None


class AuditPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entries": [
        {"id": "1765000000123-0", "ts": 1765000000.123, "who": "key:key_3f9a0c2b7d1e", "role": "workspace",
         "method": "POST", "route": "/v1/workspaces/{ws}/messages", "path": "/v1/workspaces/acme/messages",
         "workspace_id": "acme", "status": 202, "outcome": "ok", "request_id": "5f0c1a2b3c4d5e6f",
         "client": "127.0.0.1", "claimed_key": None, "params": None}], "next_before": "1765000000123-0"}]})
    entries: list[AuditRecord]
    next_before: str | None = Field(description="pass as `before` for the next (older) page")


# --- operations -------------------------------------------------------------------------------


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: Literal["ok"]


class Check(BaseModel):
    ok: bool
    detail: str = ""


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ready": True},
        {"ready": True, "status": "ready", "checks": {"redis": {"ok": True, "detail": ""},
                                                      "ray": {"ok": True, "detail": ""},
                                                      "supervisor": {"ok": True, "detail": "3 sessions placed"},
                                                      "browser_host": {"ok": True, "detail": ""}},
         "reasons": []}]})
    ready: bool
    status: Literal["ready", "not_ready"] | None = Field(default=None, description="operators only")
    checks: dict[str, Check] | None = Field(default=None, description="operators only")
    reasons: list[str] | None = Field(default=None, description="operators only")
