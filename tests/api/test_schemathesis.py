"""Schemathesis over the live service's OpenAPI spec: positive and negative cases for every operation, signed.

Every operation is fuzzed with data that fits the schema and data that does not, half of the
cases inside the key's own workspace (so the happy paths run) and half with generated path
parameters. The assertion that matters: zero 5xx. Schemathesis's default response checks
(status codes, content types, response schemas, negative data rejected, ...) run too.

Safety: operations that configure where the service sends things (webhook URL, Cloud API
credentials, webhook policy and replays) run with a key bound to a workspace that never has a
session or a message, so no fuzzed URL is ever contacted. Session creation is capped (each one
opens a real Chromium context) and everything created is deleted afterwards. The SSE stream is
not fuzzed here (it never ends; tests/api/test_sse.py covers it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter, defaultdict

import pytest

from wa_ray.master_keys import load_master_keys
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.redis_client import connect
from wa_ray.signing import signed_headers

schemathesis = pytest.importorskip("schemathesis")  # in the test extras; skipped, not broken, without it

import requests  # schemathesis brings it
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

WS, ISOLATED = "fuzz", "fuzz-iso"
EXAMPLES = 8  # per operation, positive and negative: 30 took 60 s, 20 took 45 s, 12 (with 90 operations) 45 s
SESSION_EXAMPLES = 5
# They set outbound targets: run in a workspace where nothing is ever sent.
OUTBOUND_CONFIG = ("/webhook", "/provider", "/webhook/policy", "/dead-letters")


class SignedAuth(requests.auth.AuthBase):
    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        body = body.encode() if isinstance(body, str) else body
        r.headers.update(signed_headers(self.key_id, self.secret, r.method or "GET", r.path_url, body))
        return r


def _in_thread(coro):  # the session's event loop belongs to pytest-asyncio; this test is synchronous
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def fuzz_keys(service) -> dict[str, SignedAuth]:
    async def make() -> dict[str, SignedAuth]:
        redis = connect(service.config.redis_url)
        store = ApiKeyStore(redis, load_master_keys(service.config)[0])
        made = {}
        for name, role, ws in (("admin", "admin", None), ("ws", "workspace", WS), ("iso", "workspace", ISOLATED)):
            key = await store.create(role, ws, f"fuzz-{name}", rate_per_s=0)
            made[name] = SignedAuth(key.key_id, key.secret)
        await redis.aclose()
        return made

    return _in_thread(make())


def _key_for(path: str) -> tuple[str, str | None]:
    if "{ws}" not in path:
        return "admin", None
    if any(path.endswith(suffix) or f"{suffix}/" in path for suffix in OUTBOUND_CONFIG):
        return "iso", ISOLATED
    return "ws", WS


def test_schemathesis_finds_no_server_errors(service, fuzz_keys) -> None:
    schema = schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")
    session = requests.Session()
    counts: Counter[str] = Counter()
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    failures: dict[str, set[str]] = defaultdict(set)
    server_errors: list[str] = []

    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.endswith("/events"):
            continue
        label = f"{op.method.upper()} {op.path}"
        who, ws = _key_for(op.path)
        auth = fuzz_keys[who]
        fixed = {"ws": ws} if ws else None
        strategy = st.one_of(*[op.as_strategy(mode, path_parameters=params)
                               for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                               for params in ([fixed, None] if fixed else [None])])
        creates_sessions = op.method.upper() == "POST" and op.path.endswith("/sessions")

        @settings(max_examples=SESSION_EXAMPLES if creates_sessions else EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=strategy)
        def run(case) -> None:  # called right below, while label and auth are still this operation's
            try:
                response = case.call(session=session, auth=auth, timeout=60)
            except requests.RequestException as exc:
                server_errors.append(f"{label}: {type(exc).__name__}")
                return
            counts[label] += 1
            statuses[label][response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{label} -> {response.status_code}: {response.text[:200]}")
            try:
                case.validate_response(response, transport_kwargs={"session": session, "auth": auth, "timeout": 60})
            except FailureGroup as group:
                for failure in group.exceptions:
                    if _denied_destination(failure, response):
                        continue
                    failures[label].add(f"{type(failure).__name__}: {failure.title} ({response.status_code}"
                                        f"{_code_of(response)})")

        run()

    _cleanup(service)
    total = sum(counts.values())
    print(f"\nschemathesis: {total} cases over {len(counts)} operations")
    for label in sorted(counts):
        print(f"  {counts[label]:4d}  {label:60s} {dict(sorted(statuses[label].items()))}")
    for label, found in sorted(failures.items()):
        print(f"  check failures on {label}: {sorted(found)}")
    assert total >= len(counts) * 5
    assert not server_errors, server_errors
    assert not failures, dict(failures)


# 422s about facts, not shapes: a destination the egress guard refuses (loopback, a private range, a name
# this test service does not resolve), a media id or quoted message the workspace does not have, a stored
# file that does not fit the kind, a kind the workspace's provider cannot send (a template with no Cloud API).
# A campaign's: a number that is not a session of the workspace, a phone twice among the recipients (JSON
# Schema's uniqueItems compares whole items, the variables differ), a text too long once a recipient's
# variables fill it, and no recipients without `draft` (a rule across two fields). A retention's days over the
# operator's bound (WA_RETENTION_MAX_*_DAYS: set at run time, so the schema says only the absolute cap).
RUNTIME_REFUSALS = frozenset({"egress_denied", "media_not_found", "target_not_found", "media_type_not_allowed",
                              "media_too_large", "kind_not_supported", "number_not_found", "duplicate_recipient",
                              "too_long", "no_recipients", "retention_over_bound"})
# A message's rule across two fields, refused as a validation error with its own type: `strict` needs
# `session_id` (a JSON Schema of each field cannot say it).
CROSS_FIELD_RULES = frozenset({"strict_needs_session"})


def _code_of(response: requests.Response) -> str:
    """` <error code>` of an error answer, with the first field error's place and type for a validation_error
    (what to look at in a failure; an answer never quotes the value it refuses); "" when it has none."""
    try:
        error = response.json()["error"]
        first = (error.get("details") or {}).get("errors") or [{}]
        where = ".".join(str(p) for p in first[0].get("loc", [])) if error["code"] == "validation_error" else ""
        return f" {error['code']}" + (f" {where}:{first[0].get('type')}" if where else "")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return ""


def _denied_destination(failure: Exception, response: requests.Response) -> bool:
    """A schema-valid request may still be refused for what it names (RUNTIME_REFUSALS): 422 with that code
    is then the right answer, not a rejection of valid data. Decided at runtime, so no schema can say it."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 422:
        return False
    try:
        error = response.json()["error"]
        if error["code"] == "validation_error":
            first = ((error.get("details") or {}).get("errors") or [{}])[0]
            return first.get("type") in CROSS_FIELD_RULES
        return error["code"] in RUNTIME_REFUSALS
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return False


def _cleanup(service) -> None:
    """Delete what the fuzz created; check nothing configured an outbound target outside the isolated workspace."""

    async def go() -> None:
        import httpx

        from wa_ray.signing import HmacAuth

        redis = connect(service.config.redis_url)
        admin = await ApiKeyStore(redis, load_master_keys(service.config)[0]).get("fuzz-admin")
        async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(admin.key_id, admin.secret),
                                     timeout=60) as api:
            for ws in (WS, ISOLATED):
                for s in (await api.get(f"/v1/workspaces/{ws}/sessions")).json():
                    await api.delete(f"/v1/workspaces/{ws}/sessions/{s['session_id']}")
        assert WS not in await redis.smembers(keys.webhook_workspaces())
        assert WS not in await redis.smembers(keys.cloud_workspaces())
        await redis.aclose()

    _in_thread(go())

