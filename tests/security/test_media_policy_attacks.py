"""Attacks on `GET/PUT /v1/workspaces/{ws}/media-policy` over real HTTP: another workspace's policy is
invisible (404, the same as a workspace that does not exist), a read-only key cannot change it (403), bad
values are 422 in the error shape without echoing what was sent, and nothing bad is ever stored."""

from __future__ import annotations

import secrets

import httpx
import pytest

from wa_ray.message_kinds import UPLOAD_MAX_BYTES
from wa_ray.storage import keys

pytestmark = pytest.mark.asyncio

DEFAULT = {"download": "eager", "max_bytes": 16 * 1024 * 1024}


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _path(ws: str) -> str:
    return f"/v1/workspaces/{ws}/media-policy"


async def test_owner_reads_default_then_replaces_it(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    r = await owner.get(_path(unique_ws))
    assert r.status_code == 200 and r.json() == DEFAULT, r.text
    r = await owner.put(_path(unique_ws), json={"download": "off", "max_bytes": 1024})
    assert r.status_code == 200 and r.json() == {"download": "off", "max_bytes": 1024}, r.text
    assert (await owner.get(_path(unique_ws))).json() == {"download": "off", "max_bytes": 1024}
    # PUT replaces: an omitted field is the default again
    r = await owner.put(_path(unique_ws), json={"download": "off"})
    assert r.json() == {"download": "off", "max_bytes": DEFAULT["max_bytes"]}
    r = await owner.put(_path(unique_ws), json={"max_bytes": UPLOAD_MAX_BYTES})
    assert r.json() == {"download": "eager", "max_bytes": UPLOAD_MAX_BYTES}


async def test_another_workspace_is_404_for_read_and_write(make_key, client_for, unique_ws) -> None:
    victim_ws = unique_ws
    victim = client_for(await make_key("workspace", victim_ws))
    assert (await victim.put(_path(victim_ws), json={"download": "off", "max_bytes": 2048})).status_code == 200
    attacker = client_for(await make_key("workspace", f"ws-{secrets.token_hex(4)}"))
    reader_elsewhere = client_for(await make_key("read", f"ws-{secrets.token_hex(4)}"))
    nowhere = f"ws-{secrets.token_hex(4)}"
    for client in (attacker, reader_elsewhere):
        assert _error(await client.get(_path(victim_ws))) == (404, "not_found")
        assert _error(await client.put(_path(victim_ws), json={"download": "eager"})) == (404, "not_found")
        # the same answer as a workspace that has no policy and never existed: nothing tells them apart
        assert _error(await client.get(_path(nowhere))) == (404, "not_found")
    assert (await victim.get(_path(victim_ws))).json() == {"download": "off", "max_bytes": 2048}
    # malformed workspace ids are 404 too, never echoed
    for bad in ("..", "ws%20x", "a" * 200):
        r = await attacker.get(_path(bad))
        assert r.status_code == 404 and bad not in r.text, (bad, r.status_code)


async def test_read_only_key_cannot_put(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    reader = client_for(await make_key("read", unique_ws))
    assert (await reader.get(_path(unique_ws))).json() == DEFAULT  # it may read its own workspace
    assert _error(await reader.put(_path(unique_ws), json={"download": "off"})) == (403, "forbidden")
    assert (await owner.get(_path(unique_ws))).json() == DEFAULT  # unchanged


async def test_unsigned_and_forged_callers_are_refused(raw, unique_ws) -> None:
    r = await raw.put(_path(unique_ws), json={"download": "off"})
    assert r.status_code == 401, r.text
    r = await raw.put(_path(unique_ws), json={"download": "off"},
                      headers={"X-Key-Id": "forged", "X-Timestamp": "1", "X-Nonce": "n", "X-Signature": "0" * 64})
    assert r.status_code in (401, 403), r.text


async def test_bad_values_are_422_not_echoed_and_not_stored(make_key, client_for, unique_ws, live_redis) -> None:
    owner = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    assert (await owner.put(_path(unique_ws), json={"download": "off", "max_bytes": 4096})).status_code == 200
    stored = await live_redis.get(keys.media_policy(unique_ws))
    marker = "zq" + secrets.token_hex(6)
    bodies = [
        f'{{"download": "{marker}"}}', '{"download": "EAGER"}', '{"download": "LAZY"}', '{"download": null}',
        '{"download": 1}', '{"download": ["eager"]}',
        '{"max_bytes": 0}', '{"max_bytes": -1}', f'{{"max_bytes": {UPLOAD_MAX_BYTES + 1}}}',
        '{"max_bytes": NaN}', '{"max_bytes": Infinity}', '{"max_bytes": 1e309}', f'{{"max_bytes": {2**80}}}',
        '{"max_bytes": 1.5}', '{"max_bytes": "1024"}', '{"max_bytes": true}', '{"max_bytes": "\u0661\u0662"}',
        f'{{"max_bytes": 1024, "{marker}": 1}}', f'{{"download": "off", "extra": "{marker}"}}',
        '[1, 2]', '"off"', "null",
    ]
    for body in bodies:
        r = await owner.put(_path(unique_ws), content=body.encode(), headers={"content-type": "application/json"})
        assert _error(r) == (422, "validation_error"), (body[:60], r.status_code, r.text[:300])
        assert marker not in r.text and "LAZY" not in r.text and "EAGER" not in r.text, r.text
    for body in (b"{not json", b"\xff\xfe"):
        r = await owner.put(_path(unique_ws), content=body, headers={"content-type": "application/json"})
        assert _error(r) == (400, "malformed_json"), (body, r.text[:200])
    assert await live_redis.get(keys.media_policy(unique_ws)) == stored
    assert (await owner.get(_path(unique_ws))).json() == {"download": "off", "max_bytes": 4096}


async def test_a_stored_bad_policy_reads_as_the_default(make_key, client_for, unique_ws, live_redis) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    for raw_value in (b'{"download": "later", "max_bytes": 1e400}', b'{"max_bytes": 1208925819614629174706176}',
                      b'{"download": ["off"], "max_bytes": -5}', b'{"max_bytes": true}', b"not json", b"[1]", b'"x"'):
        await live_redis.set(keys.media_policy(unique_ws), raw_value)
        r = await owner.get(_path(unique_ws))
        assert r.status_code == 200 and r.json() == DEFAULT, (raw_value, r.text)
    await live_redis.set(keys.media_policy(unique_ws), b'{"download": "off", "max_bytes": -3}')
    assert (await owner.get(_path(unique_ws))).json() == {"download": "off", "max_bytes": DEFAULT["max_bytes"]}
