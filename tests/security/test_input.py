"""Input a tenant controls: every number finite and bounded, every pattern ASCII, and a 422 that never
echoes what it rejects.

Numbers: NaN, +-Infinity, 1e309 (Python's JSON reads it as infinity), 2^80 and out-of-range values are 422
in every numeric field of every mutating route (enumerated from /openapi.json), and nothing is stored:
the GETs still answer 200 afterwards. A stored bad pacing value (written before this rule, or by hand) is
ignored on read. Stream ids (`after=`, Last-Event-ID) are ASCII digits only.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
from typing import Any

import httpx
import orjson
import pytest

from wa_ray.storage import keys
from wa_ray.storage.events import EventLog
from wa_ray.events import Event

pytestmark = pytest.mark.asyncio

BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e309", "-1e309", str(2**80), str(-(2**80)), "1e300"]


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


@pytest.fixture
async def tenant(make_key, client_for, unique_ws) -> httpx.AsyncClient:
    return client_for(await make_key("workspace", unique_ws, rate_per_s=0))  # unlimited: the sweep is long


async def _send(client: httpx.AsyncClient, method: str, path: str, body: bytes) -> httpx.Response:
    return await client.request(method, path, content=body, headers={"content-type": "application/json"})


async def test_pacing_refuses_non_finite_and_huge_numbers(tenant, unique_ws) -> None:
    path = f"/v1/workspaces/{unique_ws}/pacing"
    before = await tenant.get(path)
    assert before.status_code == 200
    bodies = [f'{{"above_s": {v}}}' for v in BAD_NUMBERS] + [
        f'{{"per_minute": {v}}}' for v in BAD_NUMBERS] + [
        f'{{"steps": [[{v}, 1]]}}' for v in BAD_NUMBERS] + [
        f'{{"steps": [[5, {v}]]}}' for v in BAD_NUMBERS] + [
        '{"per_hour": -1}', '{"above_s": -0.5}', '{"typing_jitter": 1.5}', '{"steps": [[-5, 1]]}',
        '{"steps": [[5]]}', '{"steps": [[5, 1, 2]]}', '{"steps": ' + json.dumps([[1, 1]] * 21) + "}",
        '{"per_minute": "\u0661\u0662"}', '{"per_minute": "\uff11\uff12"}', '{"per_minute": "1e3"}']
    for body in bodies:
        r = await _send(tenant, "PUT", path, body.encode())
        assert _error(r) == (422, "validation_error"), (body[:60], r.text[:300])
    after = await tenant.get(path)
    assert after.status_code == 200 and after.json() == before.json()
    # the control: the same fields with sane values are taken
    ok = await _send(tenant, "PUT", path, b'{"above_s": 4.5, "per_minute": 20, "steps": [[5, 0.5], [10, 1.0]]}')
    assert ok.status_code == 200 and ok.json()["steps"] == [[5, 0.5], [10, 1.0]], ok.text


async def test_a_stored_bad_pacing_value_is_ignored_on_read(tenant, unique_ws, live_redis) -> None:
    path = f"/v1/workspaces/{unique_ws}/pacing"
    defaults = (await tenant.get(path)).json()
    stored = [b'{"per_minute": 1208925819614629174706176, "above_s": -5, "steps": "x", "typing_jitter": 0.5}',
              b'{"steps": [[5, null], [1e400, 2]], "per_hour": 0, "typing_max_s": 1e999, "enabled": "no"}',
              b'{"typing_jitter": 0.5, "per_minute": NaN}', b"not json", b"[1, 2]", b'"x"']
    for raw in stored:
        await live_redis.set(keys.pacing(unique_ws), raw)
        r = await tenant.get(path)
        assert r.status_code == 200, (raw, r.text)
        body = r.json()
        for name in ("per_minute", "per_hour", "above_s", "steps", "typing_max_s", "enabled"):
            assert body[name] == defaults[name], (raw, name, body[name])
    await live_redis.set(keys.pacing(unique_ws), b'{"typing_jitter": 0.5, "per_minute": -3}')
    assert (await tenant.get(path)).json()["typing_jitter"] == 0.5  # the valid field of a mixed record stays


async def test_stream_ids_are_ascii_digits_only(tenant, unique_ws, live_redis) -> None:
    path = f"/v1/workspaces/{unique_ws}/events"
    for after in ["\u0661\u0662\u0663-\u0660", "\uff11\uff12\uff13-\uff10", "\u0661", "1" * 21 + "-0", "0-" + "1" * 21,
                  "1-2-3", "-1", "1.5", " 1-0", "18446744073709551615-0", "0x10-0", "1_000-0", "latest"]:
        r = await tenant.get(path, params={"after": after})
        assert r.status_code == 422, (after, r.status_code, r.text[:200])
        assert after.strip() not in r.text
    for header in ("\u0661\u0662-\u0660".encode(), "\uff11-\uff10".encode(), b"\xe9-1", b"1" * 30):
        r = await tenant.get(path, headers={"Last-Event-ID": header})  # type: ignore[dict-item]
        assert r.status_code == 422, (header, r.status_code)

    marker = "resume-" + secrets.token_hex(4)
    first = await EventLog(live_redis).publish(Event("session.status", unique_ws, "s1", {"state": marker}))
    # the stream works after all that, and resumes from a full id or a bare millisecond one
    for after, expected in (("0", True), ("0-0", True), (first, False)):
        assert await _first_data_line(tenant, path, after, marker, expected) == expected, (after, first)


async def _first_data_line(client: httpx.AsyncClient, path: str, after: str, marker: str, expect: bool) -> bool:
    """True when the replay after `after` carries `marker` (read for at most a second when not expected)."""
    async with client.stream("GET", path, params={"after": after, "heartbeat": 1}) as r:
        assert r.status_code == 200

        async def scan() -> bool:
            async for line in r.aiter_lines():
                if line.startswith("data:") and marker in line:
                    return True
            return False

        try:
            return await asyncio.wait_for(scan(), 10 if expect else 1.5)
        except TimeoutError:
            return False


async def test_422_never_echoes_what_it_rejects(tenant, unique_ws) -> None:
    ws = f"/v1/workspaces/{unique_ws}"

    def mark() -> str:
        return "mk" + secrets.token_hex(5)

    cases: list[tuple[str, str, Any, str]] = []
    m = mark()
    cases.append(("POST", f"{ws}/messages", {"to": "15550001", "text": "x", m: 1}, m))
    m = mark()
    cases.append(("POST", f"{ws}/messages", {"to": "15550001", "text": "x", "\u043a\u043b\u044e\u0447" + m: 1}, m))
    m = mark()
    cases.append(("POST", f"{ws}/messages", {"to": m, "text": "x"}, m))
    m = mark()
    cases.append(("POST", f"{ws}/messages", {"to": "15550001", "text": "x", "priority": m}, m))
    m = mark()
    cases.append(("POST", f"{ws}/messages", {"to": "15550001", "text": "x", "session_id": m.upper()}, m.upper()))
    m = mark()
    cases.append(("PUT", f"{ws}/provider", {"cloud": {"phone_number_id": "1", "access_token": "t", "app_secret": "s",
                                                      m: True}}, m))
    m = mark()
    cases.append(("PUT", f"{ws}/provider", {"cloud": {"phone_number_id": m, "access_token": "t", "app_secret": "s"}},
                  m))
    m = mark()
    cases.append(("PUT", f"{ws}/pacing", {m: True}, m))
    m = mark()
    cases.append(("PUT", f"{ws}/pacing", {"per_minute": m}, m))
    m = mark()
    cases.append(("PUT", f"{ws}/webhook", {"url": "http://127.0.0.1:9/h", "secret": m}, m))
    m = mark()
    cases.append(("PUT", f"{ws}/webhook/policy", {m: 1}, m))
    m = mark()
    cases.append(("POST", f"{ws}/stream-tokens", {"ttl_s": 60, m: 1}, m))
    m = mark()
    cases.append(("POST", "/v1/console-tokens", {"workspace_id": m.upper()}, m.upper()))
    m = mark()
    cases.append(("POST", f"{ws}/sessions", {"session_id": "ok", m: 1}, m))
    for method, path, body, marker in cases:
        r = await _send(tenant, method, path, orjson.dumps(body))
        assert r.status_code == 422, (method, path, r.status_code, r.text[:200])
        assert marker not in r.text and marker.lower() not in r.text.lower(), (method, path, r.text)
    m = mark()
    r = await tenant.get(f"{ws}/events", params={"types": f"session.qr,{m}"})
    assert _error(r) == (422, "validation_error") and m not in r.text
    m = mark()
    r = await tenant.get(f"{ws}/events", params={"after": m})
    assert r.status_code == 422 and m not in r.text


# ------------------------------------------------------------------------- the sweep over /openapi.json


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _object(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema of a body, optional (`X | None`) or not."""
    schema = _resolve(spec, schema)
    for alternative in schema.get("anyOf", []):
        if _resolve(spec, alternative).get("type") == "object":
            return _resolve(spec, alternative)
    return schema


def _numeric_leaves(spec: dict[str, Any], schema: dict[str, Any], path: list[Any],
                    out: list[tuple[list[Any], dict[str, Any]]]) -> None:
    schema = _resolve(spec, schema)
    for alternative in schema.get("anyOf", []):
        _numeric_leaves(spec, alternative, path, out)
    kind = schema.get("type")
    if kind in ("number", "integer"):
        out.append((path, schema))
    elif kind == "object":
        for name, sub in schema.get("properties", {}).items():
            _numeric_leaves(spec, sub, [*path, name], out)
    elif kind == "array":
        if "prefixItems" in schema:
            for i, sub in enumerate(schema["prefixItems"]):
                _numeric_leaves(spec, sub, [*path, i], out)
        elif "items" in schema:
            _numeric_leaves(spec, schema["items"], [*path, 0], out)


def _sample(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A valid instance of a numeric or array schema (objects come from the base bodies)."""
    schema = _resolve(spec, schema)
    alternatives = [a for a in schema.get("anyOf", []) if _resolve(spec, a).get("type") != "null"]
    if alternatives:
        return _sample(spec, alternatives[0])
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return [_sample(spec, s) for s in schema["prefixItems"]]
        return [_sample(spec, schema["items"])]
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    return int(low) if kind == "integer" else float(low)


def _set(body: Any, path: list[Any], value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


SENTINEL = "__number_under_test__"


def _bases(unique_ws: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body per mutating route with numeric fields; a new such route must be added here."""
    return {
        # pinned to WhatsApp Web: a workspace with the Cloud API and no session would take only templates
        ("put", "/v1/workspaces/{ws}/provider"): {
            "override": "webjs",
            "cloud": {"phone_number_id": str(secrets.randbelow(10**12)), "access_token": "t", "app_secret": "s"}},
        ("put", "/v1/workspaces/{ws}/pacing"): {},
        ("put", "/v1/workspaces/{ws}/media-policy"): {},
        ("put", "/v1/workspaces/{ws}/retention"): {},
        ("put", "/v1/workspaces/{ws}/sync-policy"): {},
        ("put", "/v1/workspaces/{ws}/ban-risk"): {},
        ("put", "/v1/workspaces/{ws}/webhook/policy"): {},
        ("post", "/v1/workspaces/{ws}/webhooks"): {"url": "http://127.0.0.1:9/in",
                                                   "batch": {"max_events": 2, "max_wait_ms": 10}},
        # {eid}: an endpoint made before the sweep
        ("patch", "/v1/workspaces/{ws}/webhooks/{eid}"): {"batch": {"max_events": 2, "max_wait_ms": 10}},
        ("post", "/v1/workspaces/{ws}/stream-tokens"): {},
        ("post", "/v1/console-tokens"): {"workspace_id": unique_ws},
        # a draft (nothing sends); its fallback template needs the workspace's Cloud API, set up first
        ("post", "/v1/workspaces/{ws}/campaigns"): {
            "name": "sweep", "message": {"text": "hi"}, "draft": True, "schedule": {},
            "fallback_template": {"type": "template", "name": "hello_world", "language": "en_US",
                                  "components": [{"type": "button", "sub_type": "quick_reply", "index": 0}]}},
        # an operator's route: swept with the admin key (ADMIN_ONLY)
        ("put", "/v1/workspaces/{ws}/limits"): {"max_numbers": None, "messages_per_day": None},
    }


ADMIN_ONLY = {("put", "/v1/workspaces/{ws}/limits")}


async def test_every_numeric_field_of_every_mutating_route_is_finite_and_bounded(raw, tenant, api, unique_ws) -> None:
    spec = (await raw.get("/openapi.json")).json()
    bases = _bases(unique_ws)
    cloud = await _send(tenant, "PUT", f"/v1/workspaces/{unique_ws}/provider",
                        orjson.dumps(bases[("put", "/v1/workspaces/{ws}/provider")]))
    assert cloud.status_code == 200, cloud.text[:300]
    endpoint = await _send(tenant, "POST", f"/v1/workspaces/{unique_ws}/webhooks",
                           orjson.dumps(bases[("post", "/v1/workspaces/{ws}/webhooks")]))
    assert endpoint.status_code == 201, endpoint.text[:300]
    swept: dict[tuple[str, str], int] = {}
    for template, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            leaves: list[tuple[list[Any], dict[str, Any]]] = []
            if schema:
                _numeric_leaves(spec, schema, [], leaves)
            if not leaves:
                continue
            assert (method, template) in bases, f"no valid base body for {method} {template}: add one"
            path = template.replace("{ws}", unique_ws).replace("{eid}", endpoint.json()["id"])
            client = api if (method, template) in ADMIN_ONLY else tenant
            top = _object(spec, schema)["properties"]
            for leaf, leaf_schema in leaves:
                body = copy.deepcopy(bases[(method, template)])
                if leaf[0] not in body or len(leaf) > 1 and isinstance(leaf[1], int):
                    body[leaf[0]] = _sample(spec, top[leaf[0]])
                _set(body, leaf, _sample(spec, leaf_schema))
                ok = await _send(client, method.upper(), path, orjson.dumps(body))
                assert 200 <= ok.status_code < 300, (method, template, leaf, ok.text[:300])  # the control
                out_of_range = []
                if "maximum" in leaf_schema:
                    out_of_range.append(repr(leaf_schema["maximum"] * 2 + 1))
                for bad in BAD_NUMBERS + out_of_range:
                    _set(body, leaf, SENTINEL)
                    text = orjson.dumps(body).decode().replace(f'"{SENTINEL}"', bad)
                    r = await _send(client, method.upper(), path, text.encode())
                    assert _error(r) == (422, "validation_error"), (method, template, leaf, bad, r.text[:300])
                swept[(method, template)] = swept.get((method, template), 0) + 1
    assert set(swept) == set(bases), swept  # every base was used: the sweep found every route it knows
    assert sum(swept.values()) >= 20, swept
    for read in ("provider", "pacing", "webhook/policy"):
        assert (await tenant.get(f"/v1/workspaces/{unique_ws}/{read}")).status_code == 200, read
