"""How a workspace's messages go out: provider choice and Cloud API credentials, and pacing.

`PUT /v1/workspaces/{ws}/provider` replaces the workspace's provider config
(the access token and app secret are stored encrypted, the verify token as a
digest); `GET` shows it without secrets, with what new messages take now.
`cloud.graph_base_url` is Meta's unless an admin key names another (403 for
other keys), and then it passes the egress guard (422 `egress_denied`).
A Cloud API number belongs to one workspace: claiming one another workspace
configured is 409 `number_taken` and changes nothing. `cloud.fallback_template` ({name, language,
body_parameter}) names the template a text refused for the 24-hour window (131047) is re-sent as, once.
`PUT /v1/workspaces/{ws}/pacing` overrides the pacing policy field by field
(`{"enabled": false}` for load tests); `GET` shows the policy in force.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.auth import Principal
from wa_ray.serve_app.deps import caller, ctx, workspace, writable_workspace
from wa_ray.serve_app.egress_check import allowed_url
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.message_models import PacingIn, ProviderIn, ProviderOut
from wa_ray.serve_app.provider_selector import choose, record_first_choice, snapshot
from wa_ray.storage.pacing import PacingPolicy, PacingStore
from wa_ray.storage.providers import GRAPH_BASE_URL, CloudCredentials, CloudOptions, NumberTaken, ProviderConfig

router = APIRouter()


def _pacing(c: AppContext) -> PacingStore:
    return PacingStore(c.redis, PacingPolicy.from_config(c.config), cache_ttl_s=0)


@router.put("/v1/workspaces/{ws}/provider", response_model=ProviderOut)
async def put_provider(body: ProviderIn, ws: str = Depends(writable_workspace),
                       c: AppContext = Depends(ctx), who: Principal = Depends(caller)) -> ProviderOut:
    cloud = None
    if body.cloud is not None:
        b = body.cloud
        graph_base_url = await _graph_base_url(c, who, b.graph_base_url)
        options = CloudOptions(throughput_per_second=b.throughput_per_second, pair_burst=b.pair_burst,
                               pair_refill_s=b.pair_refill_s, max_throttle_retries=b.max_throttle_retries,
                               breaker_failures=b.breaker_failures, breaker_cooldown_s=b.breaker_cooldown_s,
                               confirm_s=b.confirm_s, timeout_s=b.timeout_s,
                               fallback_template=b.fallback_template.model_dump() if b.fallback_template else None)
        cloud = CloudCredentials(b.phone_number_id, b.access_token, b.app_secret, graph_base_url,
                                 b.graph_version, options)
    config = ProviderConfig(body.priority, body.override, body.failover_grace_s, cloud)
    try:
        await c.selector.store.set(ws, config, body.cloud.verify_token if body.cloud else None)
    except NumberTaken:
        raise ApiError(409, "number_taken", "this phone_number_id is configured by another workspace") from None
    c.selector.invalidate(ws)
    described = await _describe(c, ws)
    await record_first_choice(c.redis, ws, described.current)
    return described


async def _graph_base_url(c: AppContext, who: Principal, asked: str | None) -> str:
    """Meta's Graph API unless an admin key names another base URL (the simulator, an operator's proxy): a
    workspace key may not aim the access token and message traffic at an address of its choice."""
    if asked is None or asked.rstrip("/") == GRAPH_BASE_URL:
        return GRAPH_BASE_URL
    if not who.is_admin:
        raise ApiError(403, "forbidden", "only an admin key may set cloud.graph_base_url")
    return await allowed_url(c, asked, "cloud.graph_base_url")


@router.get("/v1/workspaces/{ws}/provider", response_model=ProviderOut)
async def get_provider(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> ProviderOut:
    return await _describe(c, ws)


async def _describe(c: AppContext, ws: str) -> ProviderOut:
    store = c.selector.store
    snap, _, _ = await snapshot(store, ws)
    return ProviderOut(**await store.describe(ws), current=choose(snap.priority, snap.override, snap.webjs(), snap.meta),
                       sessions=snap.sessions, cloud_api_healthy=snap.meta, breaker=await store.breaker(ws))


# The pacing routes answer the policy in force as a plain object; the example is the built-in default policy.
_PACING_ANSWER = {200: {"content": {"application/json": {"example": PacingPolicy().to_dict()}}}}


@router.put("/v1/workspaces/{ws}/pacing", responses=_PACING_ANSWER)
async def put_pacing(body: PacingIn, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> dict:
    policy = await _pacing(c).set_overrides(ws, body.model_dump(exclude_none=True))
    return policy.to_dict()


@router.get("/v1/workspaces/{ws}/pacing", responses=_PACING_ANSWER)
async def get_pacing(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> dict:
    return (await _pacing(c).policy(ws)).to_dict()
