"""History sync: `GET/PUT /v1/workspaces/{ws}/sync-policy` and `POST /v1/workspaces/{ws}/sessions/{sid}/sync`.

A sync reads a linked session's chats, contacts and recent messages from its page and publishes them as
events (`session.sync` progress, `chats.synced`, `contacts.synced`, `messages.synced`; actors/session_sync.py).
POST answers 202 at once with the run's `sync_id`, which every event of the run carries; 409 `sync_running`
while the session already runs one. The policy bounds what a sync reads (storage/sync_policy.py).

Roles as everywhere: GET needs any key of the workspace, PUT and POST one that may write (a read-only key is
403), another workspace's id is 404. A value out of bounds is 422 without echoing it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.message_models import STRICT_INPUT
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.session_pages import call_page
from wa_ray.storage.sync_policy import DAYS, MAX_CHATS, MESSAGES_PER_CHAT, SyncPolicy, SyncPolicyStore

router = APIRouter(tags=["sync"])

_DAYS = f"messages older than this many days are not synced; {DAYS[0]}..{DAYS[1]}"
_MAX_CHATS = f"the newest chats synced; {MAX_CHATS[0]}..{MAX_CHATS[1]}"
_PER_CHAT = (f"the newest messages of each chat synced (within `days`); {MESSAGES_PER_CHAT[0]}.."
             f"{MESSAGES_PER_CHAT[1]}, 0 syncs chats and contacts only")
_ON_LINK = ("sync by itself at the first `connected` of a newly linked number (QR or pairing code); a "
            "restored session never syncs by itself")


class SyncPolicyIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"days": 30, "max_chats": 500, "messages_per_chat": 50, "on_link": True},
        {"days": 7, "max_chats": 100, "messages_per_chat": 0, "on_link": False}]})
    days: int = Field(default=SyncPolicy.days, ge=DAYS[0], le=DAYS[1], description=_DAYS)
    max_chats: int = Field(default=SyncPolicy.max_chats, ge=MAX_CHATS[0], le=MAX_CHATS[1], description=_MAX_CHATS)
    messages_per_chat: int = Field(default=SyncPolicy.messages_per_chat, ge=MESSAGES_PER_CHAT[0],
                                   le=MESSAGES_PER_CHAT[1], description=_PER_CHAT)
    on_link: bool = Field(default=SyncPolicy.on_link, description=_ON_LINK)

    @field_validator("days", "max_chats", "messages_per_chat", mode="before")
    @classmethod
    def _a_json_integer(cls, value: object) -> object:
        # never a string or a boolean, which lax int parsing would take
        if isinstance(value, str | bool):
            raise PydanticCustomError("int_type", "must be an integer")
        return value

    @field_validator("on_link", mode="before")
    @classmethod
    def _a_json_boolean(cls, value: object) -> object:
        if not isinstance(value, bool):
            raise PydanticCustomError("bool_type", "on_link must be true or false")
        return value


class SyncPolicyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SyncPolicy().to_dict()]})
    days: int = Field(description=_DAYS)
    max_chats: int = Field(description=_MAX_CHATS)
    messages_per_chat: int = Field(description=_PER_CHAT)
    on_link: bool = Field(description=_ON_LINK)

    @classmethod
    def of(cls, policy: SyncPolicy) -> SyncPolicyOut:
        return cls(**policy.to_dict())


class SyncStarted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"sync_id": "syn_3f9a0c2b7d1e4a6c", "status": "started"}]})
    sync_id: str = Field(description="carried by every event of this run (`session.sync`, `*.synced`)")
    status: Literal["started"] = "started"


@router.get("/v1/workspaces/{ws}/sync-policy", response_model=SyncPolicyOut, responses=errors(),
            summary="This workspace's history sync limits (days back, chats, messages per chat, sync on link)")
async def get_sync_policy(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> SyncPolicyOut:
    return SyncPolicyOut.of(await SyncPolicyStore(c.redis).get(ws))


@router.put("/v1/workspaces/{ws}/sync-policy", response_model=SyncPolicyOut, responses=errors(400, 413, 422),
            summary="Replace this workspace's history sync policy (an omitted field takes its default)")
async def put_sync_policy(body: SyncPolicyIn, ws: str = Depends(writable_workspace),
                          c: AppContext = Depends(ctx)) -> SyncPolicyOut:
    policy = SyncPolicy(body.days, body.max_chats, body.messages_per_chat, body.on_link)
    return SyncPolicyOut.of(await SyncPolicyStore(c.redis).set(ws, policy))


@router.post("/v1/workspaces/{ws}/sessions/{sid}/sync", status_code=202, response_model=SyncStarted,
             responses=errors(409),
             summary="Sync this session's chats, contacts and recent messages as events, now")
async def start_sync(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> SyncStarted:
    check_id(sid, "session")
    sync_id = await call_page(c, ws, sid, "sync", "api")
    if sync_id is None:
        raise ApiError(409, "sync_running", "this session is already syncing; wait for its session.sync done")
    return SyncStarted(sync_id=sync_id)
