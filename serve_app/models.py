"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from wa_ray.ids import ID_PATTERN, PHONE_PATTERN

Priority = Literal["urgent", "high", "normal", "bulk"]


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = Field(default=None, pattern=ID_PATTERN)


class SessionOut(BaseModel):
    workspace_id: str
    session_id: str
    state: str
    node_id: str | None = None
    since: float | None = None
    reason: str | None = None
    me: str | None = None
    restarts: int = 0

    @classmethod
    def from_record(cls, record: dict[str, str]) -> SessionOut:
        return cls(
            workspace_id=record["workspace_id"], session_id=record["session_id"],
            state=record.get("state") or "initializing", node_id=record.get("node_id") or None,
            since=float(record["since"]) if record.get("since") else None,
            reason=record.get("reason") or None, me=record.get("me") or None,
            restarts=int(record.get("restarts") or 0),
        )


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=PHONE_PATTERN, description="recipient, E.164 digits without '+'")
    text: str = Field(min_length=1, max_length=4096)
    session_id: str | None = Field(default=None, pattern=ID_PATTERN)
    priority: Priority = "normal"


class MessageAccepted(BaseModel):
    message_id: str
    status: str


class MessageOut(BaseModel):
    message_id: str
    workspace_id: str
    session_id: str
    to: str
    status: str
    provider: str
    priority: str
    created_at: float
    wa_message_id: str | None = None
    history: list[dict[str, Any]]


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    secret: str = Field(min_length=16, max_length=256)


class StreamToken(BaseModel):
    token: str
    expires_at: int
