"""The payloads of the session and provider events (SSE `data:` and webhook bodies), as schemas.

A WhatsApp Web session's lifecycle (actors/session_lifecycle.py) publishes `session.status` on every
state change, `session.qr` for each code to scan, `session.ready` once linked and synced, and
`session.disconnected` when a connected session goes down. Its sender (actors/outbound.py) publishes
`session.paused` / `session.resumed` around its holds (hourly cap, daily new-contacts cap, ban risk). The provider selector
(serve_app/provider_selector.py) publishes `provider.changed` when the workspace's sending provider flips.

These models document what those publishers send; they are not on the publishing path. Output models:
a field the service adds later is new information, so they allow extra fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.event_models import _OUT, Provider, _Envelope, _event_examples, _examples
from wa_ray.serve_app.models import SessionStateName

ProviderChoice = Literal["webjs", "meta", "none"]  # "none": no provider can send


class SessionStatusData(BaseModel):
    model_config = _examples(
        {"state": "qr_required", "previous": "initializing", "reason": "link this device by scanning the QR"},
        {"state": "connected", "previous": "authenticating", "reason": "page synced"},
        {"state": "reconnecting", "previous": "connected", "reason": "page closed"},
        {"state": "failed", "previous": "qr_required", "reason": "qr_timeout: no scan before the codes ran out"},
        {"state": "failed", "previous": "disconnected",
         "reason": "conflict: another WhatsApp Web took over and takeover did not succeed within 120 s"})
    state: SessionStateName = Field(description="the state the session is in now")
    previous: SessionStateName = Field(description="the state it left; never equal to `state`")
    reason: str = Field(description="why, for people (e.g. `socket CONFLICT`, `logout requested`); do not parse")


class SessionQrData(BaseModel):
    """A code to scan with the phone (WhatsApp > Linked devices > Link a device). A new one follows each
    `expires_in` seconds while the device is not linked; after the last one the session fails
    (`session.status` `failed`, reason `qr_timeout`)."""

    model_config = _examples({"qr": "2@Xk3v9LQm8b0a4ZsR1wYtUe6h,Qm9tZXB1YmxpY2tleQ==,Y2xpZW50a2V5,c2VjcmV0Lw==",
                              "seq": 1, "expires_in": 60})
    qr: str = Field(description="the string to render as a QR code")
    seq: int = Field(ge=1, description="1 for the first code of a login, counting up with each renewal")
    expires_in: int = Field(ge=0, description="seconds the code stays valid")


class SessionMe(BaseModel):
    model_config = ConfigDict(**_OUT)
    id: str = Field(description="the linked account's WhatsApp id, `<number>@c.us`")
    number: str = Field(description="its phone number, digits only")


class SessionReadyData(BaseModel):
    model_config = _examples({"me": {"id": "15559870000@c.us", "number": "15559870000"}, "pushname": "Acme Support"})
    me: SessionMe | None = Field(description="the linked account; null when the page did not name it")
    pushname: str | None = Field(description="the account's profile name, when it has one")


class SessionDisconnectedData(BaseModel):
    """A connected session went down; `session.status` carries the same transition with `previous`.

    A WhatsApp-side disconnect (`disconnected` after CONFLICT or UNLAUNCHED, `reconnecting` after a lost
    socket) is retried by the gateway for up to WA_DISCONNECT_RETRY_S: it ends in `session.status`
    `connected`, or `failed` with a reason naming the cause (`conflict: ...`, `unlaunched: ...`, `timeout: ...`)."""

    model_config = _examples({"state": "reconnecting", "reason": "page closed"},
                             {"state": "logged_out", "reason": "unlinked from the phone"})
    state: SessionStateName = Field(description="`reconnecting`, `disconnected`, `logged_out`, `blocked` or `failed`")
    reason: str = Field(description="why, for people; do not parse")


PauseReason = Literal["hourly_cap", "daily_contacts_cap", "ban_risk"]


class SessionPausedData(BaseModel):
    """The session's sender holds its sends: queued messages wait, none is lost. `hourly_cap`: the pacing
    policy's per_hour; `daily_contacts_cap`: a message to a new contact while the number's first contacts
    of the rolling 24 h reached the ban-risk policy's `daily_new_contacts` (messages behind it wait too);
    `ban_risk`: the number's ban-risk score reached `pause_at`, until POST .../sessions/{sid}/resume."""

    model_config = _examples({"reason": "hourly_cap", "resume_at": 1765003600.0},
                             {"reason": "daily_contacts_cap", "resume_at": 1765086400.0},
                             {"reason": "ban_risk", "resume_at": None})
    reason: PauseReason
    resume_at: float | None = Field(description="unix seconds when sending resumes, if nothing changes; "
                                                 "null for `ban_risk` (an operator resumes it)")


class SessionResumedData(BaseModel):
    model_config = _examples({"reason": "hourly_cap"}, {"reason": "ban_risk", "operator": True})
    reason: PauseReason = Field(description="the pause that ended")
    operator: bool = Field(default=False, description="true when POST .../sessions/{sid}/resume ended it")


class ProviderChangedData(BaseModel):
    """The provider new messages of the workspace go to changed (a failover, a recovery, an override)."""

    model_config = _examples(
        {"from": "webjs", "to": "meta", "reason": "failover: no connected session", "priority": "webjs",
         "override": None, "sessions": {"support-1": False}, "cloud_api": True},
        {"from": "meta", "to": "webjs", "reason": "priority provider is healthy", "priority": "webjs",
         "override": None, "sessions": {"support-1": True}, "cloud_api": True})
    from_: ProviderChoice = Field(alias="from", description="the provider before")
    to: ProviderChoice = Field(description="the provider now; `none` when no provider can send")
    reason: str = Field(description="why, for people (`manual override`, `failover: ...`); do not parse")
    priority: Provider = Field(description="the workspace's preferred provider")
    override: Provider | None = Field(description="the provider pinned by the workspace's config, else null")
    sessions: dict[str, bool] = Field(description="session id -> whether it can send now")
    cloud_api: bool = Field(description="whether the Cloud API can send now (configured, circuit closed)")


class SessionStatusEvent(_Envelope):
    model_config = _event_examples("session.status", SessionStatusData)
    type: Literal["session.status"]
    data: SessionStatusData


class SessionQrEvent(_Envelope):
    model_config = _event_examples("session.qr", SessionQrData)
    type: Literal["session.qr"]
    data: SessionQrData


class SessionReadyEvent(_Envelope):
    model_config = _event_examples("session.ready", SessionReadyData)
    type: Literal["session.ready"]
    data: SessionReadyData


class SessionDisconnectedEvent(_Envelope):
    model_config = _event_examples("session.disconnected", SessionDisconnectedData)
    type: Literal["session.disconnected"]
    data: SessionDisconnectedData


class SessionPausedEvent(_Envelope):
    model_config = _event_examples("session.paused", SessionPausedData)
    type: Literal["session.paused"]
    data: SessionPausedData


class SessionResumedEvent(_Envelope):
    model_config = _event_examples("session.resumed", SessionResumedData)
    type: Literal["session.resumed"]
    data: SessionResumedData


class ProviderChangedEvent(_Envelope):
    model_config = _event_examples("provider.changed", ProviderChangedData, session_id=None)
    type: Literal["provider.changed"]
    data: ProviderChangedData


SESSION_EVENT_MODELS: dict[str, type[_Envelope]] = {
    "session.status": SessionStatusEvent,
    "session.qr": SessionQrEvent,
    "session.ready": SessionReadyEvent,
    "session.disconnected": SessionDisconnectedEvent,
    "session.paused": SessionPausedEvent,
    "session.resumed": SessionResumedEvent,
    "provider.changed": ProviderChangedEvent,
}
