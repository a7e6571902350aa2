"""Data protection routes: erase one person's data from a workspace (storage/subject_erasure.py), delete a
whole workspace (storage/workspace_purge.py), a workspace's retention per data kind (storage/retention.py).

`DELETE /v1/workspaces/{ws}/contacts/{number}/data` needs a key that may write to the workspace (a
read-only key is 403, another workspace's id 404 like every workspace route); the number is in the API's
phone format (wa_ray/ids.py PHONE_PATTERN, digits without '+'), anything else 422 without echo. The
answer counts what was erased per kind; a repeat answers zeros. The audit entry (serve_app/middleware.py)
keeps the number redacted to its last two digits (storage/audit.py REDACTED_PARAMS).

`DELETE /v1/workspaces/{ws}` is for admin keys only (a workspace key, even the workspace's own, is 403: a
tenant cannot remove the record of its tenancy). Its sessions are deleted first through the supervisor
(the path `DELETE .../sessions/{sid}` takes, so pages close and auth states are purged), then every key,
message, API key, media file and global membership of the workspace. 200 with the counts; a repeat
answers zeros. A session the supervisor cannot reach makes it 503 before anything is removed.

`GET|PUT /v1/workspaces/{ws}/retention`: days per kind, each 1..the operator's bound (WA_RETENTION_MAX_*);
PUT replaces the policy (an omitted kind is kept for its bound), a value over its bound is 422
`retention_over_bound` (the bound in `details`, the value never echoed). Workspace scoping as above.
"""

from __future__ import annotations

import re

from dataclasses import asdict

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from wa_ray.ids import PHONE_PATTERN
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import admin, check_id, ctx, supervisor_call, workspace, writable_workspace
from wa_ray.serve_app.message_models import STRICT_INPUT
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.openapi import errors
from wa_ray.storage import keys
from wa_ray.storage.retention import KINDS, RetentionBounds, RetentionPolicy, RetentionStore
from wa_ray.storage.subject_erasure import SubjectEraser
from wa_ray.storage.workspace_purge import PurgeCounts, WorkspacePurge

router = APIRouter(tags=["data protection"])

_PHONE = re.compile(PHONE_PATTERN)


class ErasureOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"messages": 3, "media": 1, "events": 9, "contacts": 2, "campaign_recipients": 1, "dead_letters": 0,
         "markers": 4}]})
    messages: int = Field(description="outbound message records to the number (with their history)")
    media: int = Field(description="stored media named by those messages or by erased events")
    events: int = Field(description="entries of the workspace event stream naming the number or its messages")
    contacts: int = Field(description="entries in the workspace's numbers' contact logs and daily reply sets")
    campaign_recipients: int = Field(description="campaign recipient entries (left as empty tombstones)")
    dead_letters: int = Field(description="webhook dead letters about the number")
    markers: int = Field(description="dedupe marks, WhatsApp-id mappings, Idempotency-Keys, reply stamps")


@router.delete("/v1/workspaces/{ws}/contacts/{number}/data", response_model=ErasureOut, responses=errors(422),
               summary="Erase one person's data (by phone number) from this workspace")
async def erase_subject(number: str = PathParam(pattern=PHONE_PATTERN, description="international, digits only, without +"),
                        ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> ErasureOut:
    if not _PHONE.fullmatch(number):
        raise ApiError(422, "invalid_number", "number must be 7 to 15 digits, international, without +")
    counts = await SubjectEraser(c.redis, c.media.delete).erase(ws, number)
    return ErasureOut(**counts.as_dict())


class PurgeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"sessions": 2, "keys": 41, "messages": 120, "api_keys": 1, "media": 7, "memberships": 6}]})
    sessions: int = Field(description="sessions stopped and deleted (auth state included)")
    keys: int = Field(description="Redis keys of the workspace deleted")
    messages: int = Field(description="message records of the workspace deleted")
    api_keys: int = Field(description="API keys of the workspace revoked and deleted")
    media: int = Field(description="media files deleted from this node's media store")
    memberships: int = Field(description="entries naming the workspace removed from global sets and hashes")


@router.delete("/v1/workspaces/{ws}", response_model=PurgeOut, responses=errors(503),
               dependencies=[Depends(admin)],
               summary="Delete a workspace and everything it owned (admin keys only)")
async def delete_workspace(ws: str, c: AppContext = Depends(ctx)) -> PurgeOut:
    check_id(ws, "workspace")
    sids = sorted(await c.redis.smembers(keys.session_index(ws)))
    sids += sorted({m.partition("/")[2] for m in await c.redis.smembers(keys.all_sessions())
                    if m.partition("/")[0] == ws} - set(sids))
    for sid in sids:
        await supervisor_call(c, "delete_session", ws, sid)
    counts = await WorkspacePurge(c.redis, c.media.delete_workspace).purge(ws, PurgeCounts(sessions=len(sids)))
    return PurgeOut(**counts.as_dict())


_DAYS = "days to keep it, 1..the operator's bound (`max`)"


class RetentionIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"events_days": 7, "messages_days": 30, "audit_days": 90, "media_days": 7}, {"media_days": 1}]})
    events_days: int | None = Field(default=None, ge=1, le=3650, description="the event stream; " + _DAYS)
    messages_days: int | None = Field(default=None, ge=1, le=3650, description="message records; " + _DAYS)
    audit_days: int | None = Field(default=None, ge=1, le=3650, description="audit entries; " + _DAYS)
    media_days: int | None = Field(default=None, ge=1, le=3650, description="stored media; " + _DAYS)

    @field_validator("events_days", "messages_days", "audit_days", "media_days", mode="before")
    @classmethod
    def _a_json_integer(cls, value: object) -> object:
        if isinstance(value, str | bool):
            raise PydanticCustomError("int_type", "days must be an integer")
        return value


class RetentionDays(BaseModel):
    events_days: int
    messages_days: int
    audit_days: int
    media_days: int


class RetentionOut(RetentionDays):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"events_days": 7, "messages_days": 30, "audit_days": 365, "media_days": 7,
         "max": {"events_days": 30, "messages_days": 90, "audit_days": 365, "media_days": 30}}]})
    max: RetentionDays = Field(description="the operator's bounds (WA_RETENTION_MAX_*_DAYS)")

    @classmethod
    def of(cls, policy: RetentionPolicy, bounds: RetentionBounds) -> RetentionOut:
        return cls(**asdict(policy), max=RetentionDays(**asdict(bounds)))


def _retention(c: AppContext) -> RetentionStore:
    return RetentionStore(c.redis, RetentionBounds.of(c.config))


@router.get("/v1/workspaces/{ws}/retention", response_model=RetentionOut, responses=errors(),
            summary="How long this workspace keeps each kind of data, and the operator's bounds")
async def get_retention(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> RetentionOut:
    store = _retention(c)
    return RetentionOut.of(await store.get(ws), store.bounds)


@router.put("/v1/workspaces/{ws}/retention", response_model=RetentionOut, responses=errors(400, 413, 422),
            summary="Replace this workspace's retention (days per kind, within the operator's bounds)")
async def put_retention(body: RetentionIn, ws: str = Depends(writable_workspace),
                        c: AppContext = Depends(ctx)) -> RetentionOut:
    store = _retention(c)
    days = {}
    for kind in KINDS:
        bound = getattr(store.bounds, f"{kind}_days")
        value = getattr(body, f"{kind}_days")
        if value is not None and value > bound:
            raise ApiError(422, "retention_over_bound", f"{kind}_days is over the operator's bound",
                           {"field": f"{kind}_days", "max": bound})
        days[f"{kind}_days"] = bound if value is None else value
    return RetentionOut.of(await store.set(ws, RetentionPolicy(**days)), store.bounds)
