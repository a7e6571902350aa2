"""Campaign routes: create, recipients (CSV), start/pause/resume/cancel, list, get, delete.

The routes write the campaign and its status; the runner (actors/campaign_runner.py) does the sending.
Every route is scoped to the caller's workspace: another workspace's campaign id is 404 like an unknown
one. Numbers named in `numbers` must be sessions of this workspace (422 `number_not_found` with the index).
A CSV's bad rows are reported by row and column number and a code, never by value.
"""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from wa_ray.ids import PHONE_PATTERN, new_id
from wa_ray.message_kinds import TEXT_MAX, Kind, provider_sends
from wa_ray.serve_app.campaign_models import (
    NOT_IN_MESSAGE, VAR_MAX, VAR_PATTERN, CampaignCreate, CampaignList, CampaignOut, RecipientsAdded, message_body)
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError, validation_error
from wa_ray.serve_app.messages_api import _checked_content
from wa_ray.serve_app.models import ErrorBody
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.send_models import SendMessage
from wa_ray.storage import tallies
from wa_ray.storage.campaign_view import publish_progress, schedule_of, view
from wa_ray.storage.campaigns import (
    ACTIVE, CANCELLED, COMPLETED, DRAFT, MAX_RECIPIENTS, PAUSED, RUNNING, SCHEDULED, Campaign, CampaignStore,
    Recipient)
from wa_ray.storage.messages import META, WEBJS
from wa_ray.storage.pacing import PacingPolicy, PacingStore

router = APIRouter()
BASE = "/v1/workspaces/{ws}/campaigns"
_SEND = TypeAdapter(SendMessage)
_PLACEHOLDER_TO = "10000000"
_PHONE = re.compile(PHONE_PATTERN)
_VAR = re.compile(VAR_PATTERN)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VAR_USE = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,32})\s*\}\}")
ROW_ERRORS_SHOWN = 50


def _store(c: AppContext) -> CampaignStore:
    return CampaignStore(c.redis)


def _policy_store(c: AppContext) -> PacingStore:
    return PacingStore(c.redis, PacingPolicy.from_config(c.config), cache_ttl_s=0)


async def _out(c: AppContext, camp: Campaign) -> CampaignOut:
    policy = await _policy_store(c).policy(camp.workspace_id)
    return CampaignOut.model_validate(await view(c.redis, c.registry, camp, policy))


async def _campaign(c: AppContext, ws: str, cid: str) -> Campaign:
    camp = await _store(c).get(ws, check_id(cid, "campaign"))
    if camp is None:
        raise ApiError(404, "not_found", "campaign not found")
    return camp


def _state_error(status: str, action: str) -> ApiError:
    return ApiError(409, "campaign_state", f"a {status or 'missing'} campaign cannot {action}", {"status": status})


# ---------------------------------------------------------------------------------------------- create
@router.post(BASE, status_code=201, response_model=CampaignOut, tags=["campaigns"], responses=errors(400, 413, 422, notes={
    422: "Not valid: the message or fallback_template (`validation_error`, `kind_not_supported` (a template, or "
         "a fallback_template, without the Cloud API), `template_required`, media checks), "
         "`number_not_found` (details: field, index), `duplicate_recipient`, `too_long`, `no_recipients`"}))
async def create_campaign(body: CampaignCreate, ws: str = Depends(writable_workspace),
                          c: AppContext = Depends(ctx)) -> CampaignOut:
    kind, content = await _message(c, ws, message_body(body.message))
    fallback = await _fallback(c, ws, body) if body.fallback_template is not None and kind != "template" else None
    if body.numbers != "all":
        for i, sid in enumerate(body.numbers):
            if await c.registry.get(ws, sid) is None:
                raise ApiError(422, "number_not_found", "numbers: no such session in this workspace",
                               {"field": "numbers", "index": i})
    if len({r.to for r in body.recipients}) != len(body.recipients):
        raise ApiError(422, "duplicate_recipient", "recipients: a phone appears twice", {"field": "recipients"})
    for i, r in enumerate(body.recipients):
        if _too_long(kind, content, r.variables):
            raise ApiError(422, "too_long", "recipients: the message with these variables is too long",
                           {"field": "recipients", "index": i})
    camp = Campaign(new_id("cmp"), ws, body.name, DRAFT, time.time(), kind, content,
                    None if body.numbers == "all" else list(dict.fromkeys(body.numbers)),
                    body.schedule.stored() if body.schedule else None, body.priority, fallback=fallback)
    store = _store(c)
    await store.create(camp)
    if body.recipients:
        await store.add_recipients(ws, camp.campaign_id, [Recipient(r.to, r.variables) for r in body.recipients])
    if not body.draft:
        await _start(c, ws, camp.campaign_id)
    return await _out(c, await _campaign(c, ws, camp.campaign_id))


async def _message(c: AppContext, ws: str, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, content) of a campaign's message, checked as POST /messages checks it, plus the provider
    rule: where only the Cloud API sends (pinned, or Meta-only) it must be a template."""
    present = [k for k in NOT_IN_MESSAGE if k in raw]
    if present:
        raise ApiError(422, "validation_error", "message: to, session_id, strict and reply_to are the campaign's",
                       {"errors": [{"loc": ["body", "message", k], "type": "not_allowed"} for k in present]})
    try:
        body = _SEND.validate_python({**raw, "to": _PLACEHOLDER_TO})
    except ValidationError as exc:
        errors = [validation_error({**e, "loc": ("body", "message", *e["loc"])}) for e in exc.errors()]
        raise ApiError(422, "validation_error", "message is not valid", {"errors": errors}) from None
    kind = body.kind
    if kind == Kind.REACTION:
        raise ApiError(422, "kind_not_supported", "a campaign cannot send a reaction", {"type": kind.value})
    snap = await c.selector.snapshot(ws)
    meta_only = snap.override == META or (snap.meta_configured and not snap.sessions and snap.override != WEBJS)
    if kind == Kind.TEMPLATE:
        if not snap.meta_configured:
            raise ApiError(422, "kind_not_supported", "templates are sent by the Cloud API, which this workspace "
                           "has not configured", {"type": kind.value, "provider": META})
    elif meta_only:
        raise ApiError(422, "template_required", "this workspace sends by the Cloud API only: a campaign's "
                       "message must be a template", {"provider": META})
    elif not provider_sends(WEBJS, kind):
        raise ApiError(422, "kind_not_supported", f"WhatsApp Web cannot send a {kind.value}", {"type": kind.value})
    return kind.value, await _checked_content(c, ws, body)


async def _fallback(c: AppContext, ws: str, body: CampaignCreate) -> dict[str, Any]:
    """The fallback template's content, checked as POST /messages checks a template; the Cloud API sends it,
    so a workspace without one configured is 422 `kind_not_supported` (as a template message would be)."""
    raw = message_body(body.fallback_template)  # type: ignore[arg-type]
    try:
        template = _SEND.validate_python({**raw, "to": _PLACEHOLDER_TO})
    except ValidationError as exc:
        errors = [validation_error({**e, "loc": ("body", "fallback_template", *e["loc"])}) for e in exc.errors()]
        raise ApiError(422, "validation_error", "fallback_template is not valid", {"errors": errors}) from None
    if not (await c.selector.snapshot(ws)).meta_configured:
        raise ApiError(422, "kind_not_supported", "fallback_template is sent by the Cloud API, which this workspace "
                       "has not configured", {"type": Kind.TEMPLATE.value, "provider": META, "field": "fallback_template"})
    return await _checked_content(c, ws, template)


def _too_long(kind: str, content: dict[str, Any], variables: dict[str, str]) -> bool:
    field, limit = ("text", TEXT_MAX) if kind == "text" else ("caption", 1024)
    text = content.get(field)
    if not text or not variables:
        return False
    return len(_VAR_USE.sub(lambda m: variables.get(m.group(1), ""), text)) > limit


# ------------------------------------------------------------------------------------------ recipients
@router.post(BASE + "/{cid}/recipients", response_model=RecipientsAdded, tags=["campaigns"], responses={**errors(
    413, notes={409: "`campaign_state`: only a draft takes recipients",
                422: "`csv_invalid` (details.errors: [{row, column, code}], error_count) or `too_many_recipients`"}),
    415: {"model": ErrorBody, "description": "`unsupported_media_type`: not text/csv"}},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
        "type": "string", "description": "header `phone,<var>,...`; one recipient per row"}}}}})
async def add_recipients(cid: str, request: Request, ws: str = Depends(writable_workspace),
                         c: AppContext = Depends(ctx)) -> RecipientsAdded:
    camp = await _campaign(c, ws, cid)
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "text/csv":
        raise ApiError(415, "unsupported_media_type", "recipients are uploaded as text/csv")
    if camp.status != DRAFT:
        raise _state_error(camp.status, "take recipients (only a draft can)")
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "csv_invalid", "the CSV is not UTF-8", {"errors": [], "error_count": 1}) from None
    batch, rows = _parse_csv(text, camp)
    if camp.total + len(batch) > MAX_RECIPIENTS:
        raise ApiError(422, "too_many_recipients", f"a campaign has at most {MAX_RECIPIENTS} recipients",
                       {"max": MAX_RECIPIENTS, "current": camp.total, "uploaded": len(batch)})
    if not batch:
        raise ApiError(422, "csv_invalid", "the CSV has no recipient rows", {"errors": [], "error_count": 0})
    code, n = await _store(c).add_recipients(ws, camp.campaign_id, batch)
    if code == -1:
        raise _state_error((await _campaign(c, ws, cid)).status, "take recipients (only a draft can)")
    if code == -2:
        raise ApiError(422, "too_many_recipients", f"a campaign has at most {MAX_RECIPIENTS} recipients",
                       {"max": MAX_RECIPIENTS, "current": n, "uploaded": len(batch)})
    if code == -3:
        raise _csv_error([{"row": rows[n - 1], "column": 1, "code": "duplicate"}])
    return RecipientsAdded(added=len(batch), recipients=n)


def _csv_error(errors: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, "csv_invalid", "the CSV has rows that cannot be used: see details.errors (row and "
                    "column numbers count from 1, the header is row 1)",
                    {"errors": errors[:ROW_ERRORS_SHOWN], "error_count": len(errors)})


def _parse_csv(text: str, camp: Campaign) -> tuple[list[Recipient], list[int]]:
    """(recipients, the CSV row of each); 422 listing every bad row by number and code, never by value."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: list[dict[str, Any]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise _csv_error([{"row": 1, "column": 1, "code": "header"}])
        names = [h.strip() for h in header]
        if not names or names[0].lower() != "phone":
            raise _csv_error([{"row": 1, "column": 1, "code": "header"}])
        for i, name in enumerate(names[1:], start=2):
            if not _VAR.fullmatch(name) or names.index(name) != i - 1:
                errors.append({"row": 1, "column": i, "code": "header"})
        if len(names) > 21:
            errors.append({"row": 1, "column": 22, "code": "too_many_columns"})
        if errors:
            raise _csv_error(errors)
        out: list[Recipient] = []
        rows: list[int] = []
        seen: set[str] = set()
        for cells in reader:
            row = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(out) + len(errors) >= MAX_RECIPIENTS + 1:
                raise ApiError(422, "too_many_recipients", f"a campaign has at most {MAX_RECIPIENTS} recipients",
                               {"max": MAX_RECIPIENTS, "current": camp.total})
            bad = _row_errors(cells, names, camp, seen)
            if bad:
                errors.extend({"row": row, "column": col or None, "code": code} for col, code in bad)
                continue
            phone = cells[0].strip().removeprefix("+")
            seen.add(phone)
            out.append(Recipient(phone, {n: cells[i] for i, n in enumerate(names) if i}))
            rows.append(row)
    except csv.Error:
        errors.append({"row": reader.line_num, "column": None, "code": "malformed"})
    if errors:
        raise _csv_error(errors)
    return out, rows


def _row_errors(cells: list[str], names: list[str], camp: Campaign, seen: set[str]) -> list[tuple[int, str]]:
    if len(cells) != len(names):
        return [(len(cells), "columns")]
    bad: list[tuple[int, str]] = []
    phone = cells[0].strip().removeprefix("+")
    if not _PHONE.fullmatch(phone):
        bad.append((1, "phone"))
    elif phone in seen:
        bad.append((1, "duplicate"))
    for i, cell in enumerate(cells[1:], start=2):
        if len(cell) > VAR_MAX:
            bad.append((i, "too_long"))
        elif cell.startswith(_FORMULA):
            bad.append((i, "formula"))  # a cell a spreadsheet would run as a formula
        elif _CONTROL.search(cell):
            bad.append((i, "control_character"))
    if not bad and _too_long(camp.kind, camp.content, {n: cells[i] for i, n in enumerate(names) if i}):
        bad.append((0, "too_long"))
    return bad


# ------------------------------------------------------------------------------------------- lifecycle
async def _start(c: AppContext, ws: str, cid: str) -> Campaign:
    camp = await _campaign(c, ws, cid)
    if camp.status != DRAFT:
        raise _state_error(camp.status, "start")
    if camp.total == 0:
        raise ApiError(422, "no_recipients", "the campaign has no recipients yet")
    schedule = schedule_of(camp)
    target = RUNNING if schedule is None or schedule.is_open(time.time()) else SCHEDULED
    return await _move(c, ws, cid, (DRAFT,), target, "start")


async def _move(c: AppContext, ws: str, cid: str, allowed: tuple[str, ...], to: str, action: str) -> Campaign:
    moved, was = await _store(c).set_status(ws, cid, allowed, to)
    if not moved:
        raise _state_error(was, action)
    camp = await _campaign(c, ws, cid)
    await publish_progress(c.events, c.redis, c.registry, camp, await _policy_store(c).policy(ws))
    return camp


@router.post(BASE + "/{cid}/start", response_model=CampaignOut, tags=["campaigns"], responses=errors(409, 422))
async def start_campaign(cid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> CampaignOut:
    return await _out(c, await _start(c, ws, cid))


@router.post(BASE + "/{cid}/pause", response_model=CampaignOut, tags=["campaigns"], responses=errors(409))
async def pause_campaign(cid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> CampaignOut:
    await _campaign(c, ws, cid)
    return await _out(c, await _move(c, ws, cid, (RUNNING, SCHEDULED), PAUSED, "pause"))


@router.post(BASE + "/{cid}/resume", response_model=CampaignOut, tags=["campaigns"], responses=errors(409))
async def resume_campaign(cid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> CampaignOut:
    await _campaign(c, ws, cid)
    return await _out(c, await _move(c, ws, cid, (PAUSED,), RUNNING, "resume"))


@router.post(BASE + "/{cid}/cancel", response_model=CampaignOut, tags=["campaigns"], responses=errors(409))
async def cancel_campaign(cid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> CampaignOut:
    await _campaign(c, ws, cid)
    return await _out(c, await _move(c, ws, cid, (DRAFT, SCHEDULED, RUNNING, PAUSED), CANCELLED, "cancel"))


@router.get(BASE, response_model=CampaignList, tags=["campaigns"], responses=errors(422))
async def list_campaigns(ws: str = Depends(workspace), c: AppContext = Depends(ctx),
                         limit: int = Query(default=50, ge=1, le=200)) -> CampaignList:
    return CampaignList(campaigns=[await _out(c, camp) for camp in await _store(c).list(ws, limit)])


@router.get(BASE + "/{cid}", response_model=CampaignOut, tags=["campaigns"], responses=errors())
async def get_campaign(cid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> CampaignOut:
    return await _out(c, await _campaign(c, ws, cid))


@router.delete(BASE + "/{cid}", status_code=204, tags=["campaigns"], responses=errors(409))
async def delete_campaign(cid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> Response:
    camp = await _campaign(c, ws, cid)
    # a cancelled campaign stays active until the runner has cancelled its queued messages. A draft has none:
    # its membership can only be a start that wrote the active set (before the status, for a Redis Cluster)
    # and then lost the race or crashed, a hint the runner skips (storage/campaigns.py)
    if camp.status not in (DRAFT, COMPLETED, CANCELLED) or (
            camp.status != DRAFT and await c.redis.sismember(ACTIVE, f"{ws}/{cid}")):
        raise _state_error(camp.status, "be deleted now (cancel it first, then wait for it to stop)")
    await _store(c).delete(ws, camp.campaign_id)
    await tallies.forget_campaign(c.redis, ws, camp.campaign_id)
    return Response(status_code=204)
