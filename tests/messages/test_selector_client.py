"""The ingress side of the provider choice (SelectorClient) with the handle Serve injects into the Ingress:
it answers from the selector deployment when it can, and from the same Redis state when the selector is down
or was never deployed, so a send never fails for want of a selector."""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
from typing import Any

from wa_ray.serve_app.provider_selector import SelectorClient, snapshot
from wa_ray.crypto import MasterKey
from wa_ray.storage.providers import CloudCredentials, ProviderConfig, ProviderStore


class _Method:
    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, 0

    async def remote(self, ws: str) -> dict[str, Any]:  # what awaiting a DeploymentResponse yields
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class _Handle:
    """The shape of the ProviderSelector's DeploymentHandle as the Ingress uses it: `decide.remote(ws)`."""

    def __init__(self, answer: Any) -> None:
        self.decide = _Method(answer)


async def _store(redis) -> tuple[ProviderStore, str]:
    ws = f"sel-{uuid.uuid4().hex[:8]}"
    store = ProviderStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    await store.set(ws, ProviderConfig(cloud=CloudCredentials("9002", "token", "secret")), None)
    return store, ws


async def test_the_injected_selector_answers_when_it_is_up(redis) -> None:
    store, ws = await _store(redis)
    local, _, _ = await snapshot(store, ws)
    remote = replace(local, override="meta")  # distinguishable from what Redis alone says
    handle = _Handle(asdict(remote))
    client = SelectorClient(store, ttl_s=60, handle=handle)
    assert await client.snapshot(ws) == remote
    assert await client.snapshot(ws) == remote and handle.decide.calls == 1, "cached for the ttl"


async def test_a_selector_that_is_down_means_deciding_locally_and_trying_it_again_later(redis) -> None:
    store, ws = await _store(redis)
    handle = _Handle(RuntimeError("no replica"))
    client = SelectorClient(store, ttl_s=0, handle=handle)
    local = await client.snapshot(ws)
    assert (local.ws, local.meta_configured, local.override) == (ws, True, None), "decided from Redis"
    handle.decide.answer = asdict(replace(local, override="webjs"))  # the selector is back
    assert (await client.snapshot(ws)).override == "webjs", "the injected handle is kept and used again"
    assert handle.decide.calls == 2


async def test_no_selector_deployed_decides_locally(redis) -> None:
    store, ws = await _store(redis)
    snap = await SelectorClient(store, ttl_s=0).snapshot(ws)
    assert snap.ws == ws and snap.meta_configured
