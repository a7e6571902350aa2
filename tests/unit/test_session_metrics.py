"""The opt-in per-session Prometheus series: read from a real Redis, rendered by prometheus-client, bounded."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from wa_ray.serve_app.prometheus import render
from wa_ray.storage import tallies
from wa_ray.storage.metrics import MetricsStore
from wa_ray.storage.registry import SessionRegistry
from wa_ray.storage.session_metrics import per_session


def _samples(text: bytes) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def _numbers(redis: aioredis.Redis, n: int) -> None:
    registry = SessionRegistry(redis)
    for i in range(n):
        await registry.register("ws-a" if i % 2 else "ws-b", f"s{i:02d}", "node")
        await registry.set_state("ws-a" if i % 2 else "ws-b", f"s{i:02d}", "connected" if i < 3 else "qr_required")


async def test_off_no_series_per_session(redis: aioredis.Redis) -> None:
    await _numbers(redis, 3)
    text = render(await MetricsStore(redis).snapshot(), {}, "r1")
    assert b"wa_session_" not in text
    assert b"wa_sessions{" in text  # the aggregate by state is still there


async def test_on_series_per_session_with_todays_counts(redis: aioredis.Redis) -> None:
    await _numbers(redis, 4)
    await tallies.bump(redis, "ws-b", "s00", "sent", 3)
    await tallies.bump(redis, "ws-b", "s00", "read", 1)
    await tallies.bump(redis, "ws-a", "s01", "received", 2)
    await tallies.bump(redis, "ws-b", "s00", "uptime_s", 12.5)  # not a message count: not in the series

    async def risk(_r: aioredis.Redis, ws: str, sid: str) -> dict[str, Any] | None:
        return {"score": 72, "level": "warning"} if (ws, sid) == ("ws-b", "s00") else None

    samples = _samples(render(await MetricsStore(redis).snapshot(), {}, "r1", await per_session(redis, 500, risk)))
    today = {(s.labels["workspace"], s.labels["session"], s.labels["metric"]): s.value
             for s in samples["wa_session_messages_today"]}
    assert today[("ws-b", "s00", "sent")] == 3 and today[("ws-b", "s00", "read")] == 1
    assert today[("ws-a", "s01", "received")] == 2 and today[("ws-a", "s03", "failed")] == 0
    assert {m for _, _, m in today} == {"sent", "delivered", "read", "failed", "received", "replies"}
    assert len(today) == 4 * 6
    connected = {s.labels["session"]: s.value for s in samples["wa_session_connected"]}
    assert connected == {"s00": 1, "s01": 1, "s02": 1, "s03": 0}
    assert [(s.labels["session"], s.value) for s in samples["wa_session_ban_risk"]] == [("s00", 72.0)]
    assert samples["wa_session_series_omitted"][0].value == 0


async def test_on_bounded_by_the_max_with_a_stable_set(redis: aioredis.Redis) -> None:
    await _numbers(redis, 7)
    first = await per_session(redis, 3)
    assert [(s.workspace, s.session) for s in first.series] == [("ws-a", "s01"), ("ws-a", "s03"), ("ws-a", "s05")]
    assert first.omitted == 4
    assert (await per_session(redis, 3)).series == first.series  # the same sessions scrape after scrape
    samples = _samples(render(await MetricsStore(redis).snapshot(), {}, "r1", first))
    assert len({s.labels["session"] for s in samples["wa_session_connected"]}) == 3
    assert len(samples["wa_session_messages_today"]) == 3 * 6
    assert samples["wa_session_series_omitted"][0].value == 4


async def test_on_with_no_sessions_is_empty_not_an_error(redis: aioredis.Redis) -> None:
    empty = await per_session(redis, 500)
    assert empty.series == [] and empty.omitted == 0
    samples = _samples(render(await MetricsStore(redis).snapshot(), {}, "r1", empty))
    assert "wa_session_connected" not in samples and samples["wa_session_series_omitted"][0].value == 0
