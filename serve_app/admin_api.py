"""Admin-only routes: the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from wa_ray.serve_app.auth import Principal
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import admin, ctx
from wa_ray.serve_app.models import AuditPage, AuditRecord
from wa_ray.serve_app.openapi import errors
from wa_ray.ids import ID_PATTERN
from wa_ray.storage.events import STREAM_ID_PATTERN

router = APIRouter(tags=["admin"])


@router.get("/v1/audit", response_model=AuditPage, responses=errors(422),
            summary="Audit entries of mutating calls, newest first (admin keys only)")
async def audit(limit: int = Query(100, ge=1, le=500),
                before: str | None = Query(None, pattern=STREAM_ID_PATTERN,
                                           description="stream id: entries older than this"),
                workspace_id: str | None = Query(None, pattern=ID_PATTERN),
                who: str | None = Query(None, max_length=200, description="e.g. key:my-key"),
                anonymous: bool = Query(False, description="the calls refused before authentication instead "
                                                           "(a stream of their own, capped at 10k entries)"),
                _admin: Principal = Depends(admin), c: AppContext = Depends(ctx)) -> AuditPage:
    entries, cursor = await c.audit.page(before=before, limit=limit, workspace_id=workspace_id, who=who,
                                         anonymous=anonymous)
    return AuditPage(entries=[AuditRecord(**e) for e in entries], next_before=cursor)
