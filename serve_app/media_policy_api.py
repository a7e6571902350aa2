"""A workspace's inbound media policy: `GET/PUT /v1/workspaces/{ws}/media-policy`.

PUT replaces the policy (an omitted field takes its default); it needs a key that may write to the
workspace (a read-only key is 403, another workspace's id 404 like every workspace route). `max_bytes` is
bounded by the media store's upload cap; anything else is 422 without echoing the value. The policy is
applied by the inbound side (actors/media_intake.py) within a few seconds of the PUT (storage/media_policy.py).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, workspace, writable_workspace
from wa_ray.serve_app.message_models import STRICT_INPUT
from wa_ray.serve_app.openapi import errors
from wa_ray.storage.media_policy import DEFAULT_MAX_BYTES, MAX_MAX_BYTES, MIN_MAX_BYTES, MediaPolicy, MediaPolicyStore

router = APIRouter(tags=["media"])

_DOWNLOAD = ("`eager`: a received message's media is downloaded into the media store before "
             "`message.received` is published (its `media.media_id` is set); `lazy`: nothing is downloaded at "
             "receipt, the event carries a `media_id` with `media.status` `pending` and the first "
             "`GET .../media/{media_id}` downloads it; `off`: nothing is downloaded "
             "(`media.status` is `off`, `media_id` null)")
_MAX_BYTES = ("media larger than this is not downloaded (`media.status` `too_large`); "
              f"{MIN_MAX_BYTES}..{MAX_MAX_BYTES} bytes")


class MediaPolicyIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [{"download": "eager", "max_bytes": 16777216},
                                                                              {"download": "lazy"},
                                                                              {"download": "off"}]})
    download: Literal["eager", "lazy", "off"] = Field(default="eager", description=_DOWNLOAD)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=MIN_MAX_BYTES, le=MAX_MAX_BYTES, description=_MAX_BYTES)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        # a JSON integer, or a number with an integral value (JSON Schema's `integer` allows 16.0); never a
        # string or a boolean, which lax int parsing would take
        if isinstance(value, str | bool):
            raise PydanticCustomError("int_type", "max_bytes must be an integer")
        return value


class MediaPolicyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"download": "eager", "max_bytes": DEFAULT_MAX_BYTES},
                                                              {"download": "lazy", "max_bytes": 5242880}]})
    download: Literal["eager", "lazy", "off"] = Field(description=_DOWNLOAD)
    max_bytes: int = Field(description=_MAX_BYTES)

    @classmethod
    def of(cls, policy: MediaPolicy) -> MediaPolicyOut:
        return cls(download=policy.download, max_bytes=policy.max_bytes)


def _store(c: AppContext) -> MediaPolicyStore:
    return MediaPolicyStore(c.redis, cache_ttl_s=0)  # the API reads what is stored, never a cached copy


@router.get("/v1/workspaces/{ws}/media-policy", response_model=MediaPolicyOut, responses=errors(),
            summary="This workspace's inbound media policy (download eager/lazy/off, size cap)")
async def get_media_policy(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> MediaPolicyOut:
    return MediaPolicyOut.of(await _store(c).get(ws))


@router.put("/v1/workspaces/{ws}/media-policy", response_model=MediaPolicyOut, responses=errors(400, 413, 422),
            summary="Replace this workspace's inbound media policy")
async def put_media_policy(body: MediaPolicyIn, ws: str = Depends(writable_workspace),
                           c: AppContext = Depends(ctx)) -> MediaPolicyOut:
    return MediaPolicyOut.of(await _store(c).set(ws, MediaPolicy(body.download, body.max_bytes)))
