"""Data protection routes: erase one person's data from a workspace (storage/subject_erasure.py).

`DELETE /v1/workspaces/{ws}/contacts/{number}/data` needs a key that may write to the workspace (a
read-only key is 403, another workspace's id 404 like every workspace route); the number is in the API's
phone format (wa_ray/ids.py PHONE_PATTERN, digits without '+'), anything else 422 without echo. The
answer counts what was erased per kind; a repeat answers zeros. The audit entry (serve_app/middleware.py)
keeps the number redacted to its last two digits (storage/audit.py REDACTED_PARAMS).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from wa_ray.ids import PHONE_PATTERN
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.openapi import errors
from wa_ray.storage.subject_erasure import SubjectEraser

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
