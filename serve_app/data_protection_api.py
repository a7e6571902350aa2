"""Data protection routes: erase one person's data from a workspace (storage/subject_erasure.py), delete a
whole workspace (storage/workspace_purge.py).

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
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from wa_ray.ids import PHONE_PATTERN
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import admin, check_id, ctx, supervisor_call, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.openapi import errors
from wa_ray.storage import keys
from wa_ray.storage.subject_erasure import SubjectEraser
from wa_ray.storage.workspace_purge import PurgeCounts, WorkspacePurge

router = APIRouter(tags=["data protection"])

_PHONE = re.compile(PHONE_PATTERN)


class ErasureOut(BaseModel):
    messages: int = Field(description="outbound message records to the number (with their history)")
    media: int = Field(description="stored media named by those messages or by erased events")
    events: int = Field(description="entries of the workspace event stream naming the number or its messages")
    contacts: int = Field(description="entries in the workspace's numbers' contact logs and daily reply sets")
    campaign_recipients: int = Field(description="campaign recipient entries (left as empty tombstones)")
    dead_letters: int = Field(description="webhook dead letters about the number")
    markers: int = Field(description="dedupe marks, WhatsApp-id mappings, Idempotency-Keys, reply stamps")


@router.delete("/v1/workspaces/{ws}/contacts/{number}/data", response_model=ErasureOut, responses=errors(422),
               summary="Erase one person's data (by phone number) from this workspace")
async def erase_subject(number: str = PathParam(description="international, digits only, without +"),
                        ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> ErasureOut:
    if not _PHONE.fullmatch(number):
        raise ApiError(422, "invalid_number", "number must be 7 to 15 digits, international, without +")
    counts = await SubjectEraser(c.redis, c.media.delete).erase(ws, number)
    return ErasureOut(**counts.as_dict())


class PurgeOut(BaseModel):
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
