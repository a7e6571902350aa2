"""Attacks on /v1/workspaces/{ws}/campaigns over real HTTP: another workspace's campaign is 404 on every route,
a workspace's key cannot name another workspace's numbers, bad CSVs and bodies are 4xx that never echo what
they refuse."""

from __future__ import annotations

import pytest

SECRETS = ('=HYPERLINK("http://evil")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "555bad", "\x00nul",
           "s3cr3t-value-xyz")


async def _draft(client, ws: str, **extra) -> str:
    r = await client.post(f"/v1/workspaces/{ws}/campaigns", json={
        "name": "d", "message": {"text": "Hi {{name}}"}, "draft": True, **extra})
    assert r.status_code == 201, r.text
    return r.json()["campaign_id"]


def _no_echo(text: str) -> None:
    for value in SECRETS:
        assert value not in text
    assert "HYPERLINK" not in text and "calc" not in text and "evil" not in text


async def test_another_workspaces_campaign_is_404_on_every_route(make_key, client_for, unique_ws) -> None:
    other = f"{unique_ws}-b"
    owner = client_for(await make_key("workspace", unique_ws))
    intruder = client_for(await make_key("workspace", other))
    cid = await _draft(owner, unique_ws, recipients=[{"to": "15554100001"}])
    base = f"/v1/workspaces/{other}/campaigns/{cid}"
    routes = [("GET", base), ("POST", base + "/start"), ("POST", base + "/pause"), ("POST", base + "/resume"),
              ("POST", base + "/cancel"), ("DELETE", base)]
    for method, path in routes:
        r = await intruder.request(method, path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path, r.text)
    r = await intruder.post(base + "/recipients", content=b"phone\n15554100002\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 404
    listed = (await intruder.get(f"/v1/workspaces/{other}/campaigns")).json()["campaigns"]
    assert listed == []
    # and the owner's workspace path is closed to the intruder's key altogether
    for method, path in [("GET", f"/v1/workspaces/{unique_ws}/campaigns"),
                         ("GET", f"/v1/workspaces/{unique_ws}/campaigns/{cid}"),
                         ("POST", f"/v1/workspaces/{unique_ws}/campaigns/{cid}/start")]:
        assert (await intruder.request(method, path)).status_code == 404
    # a malformed id is the same 404, never used as a key
    assert (await owner.get(f"/v1/workspaces/{unique_ws}/campaigns/..%2F..%2Fx")).status_code == 404
    assert (await owner.get(f"/v1/workspaces/{unique_ws}/campaigns/{cid}")).json()["status"] == "draft"


async def test_numbers_of_another_workspace_are_refused(api, make_key, client_for, unique_ws) -> None:
    other = f"{unique_ws}-n"
    made = await api.post(f"/v1/workspaces/{other}/sessions", json={"session_id": "theirs"})
    assert made.status_code == 201, made.text
    try:
        mine = client_for(await make_key("workspace", unique_ws))
        r = await mine.post(f"/v1/workspaces/{unique_ws}/campaigns", json={
            "name": "x", "message": {"text": "hi"}, "numbers": ["theirs"], "recipients": [{"to": "15554200001"}]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "number_not_found"
        assert r.json()["error"]["details"] == {"field": "numbers", "index": 0}
        assert "theirs" not in r.text
    finally:
        await api.delete(f"/v1/workspaces/{other}/sessions/theirs")


async def test_csv_bad_rows_are_422_by_row_and_column_without_values(make_key, client_for, unique_ws) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    cid = await _draft(client, unique_ws)
    url = f"/v1/workspaces/{unique_ws}/campaigns/{cid}/recipients"
    csv_body = ("phone,name,code\n"
                "15554300001,Ana,A1\n"                         # row 2 fine
                f"555bad,Bo,B2\n"                                # row 3 bad phone
                '15554300003,"=HYPERLINK(""http://evil"")",C3\n'  # row 4 formula (quoted as CSV quotes)
                f"15554300004,Di,{SECRETS[1]}\n"                 # row 5 formula
                f"15554300005,{SECRETS[2]},E5\n"                 # row 6 formula
                "15554300006,Fe\n"                               # row 7 missing column
                "15554300001,Ana again,A1\n"                     # row 8 duplicate phone
                f"15554300008,{SECRETS[6]}\x01,H8\n")            # row 9 control character
    r = await client.post(url, content=csv_body.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "csv_invalid"
    assert {(e["row"], e["code"]) for e in err["details"]["errors"]} == {
        (3, "phone"), (4, "formula"), (5, "formula"), (6, "formula"), (7, "columns"), (8, "duplicate"),
        (9, "control_character")}
    _no_echo(r.text)
    # nothing of a refused upload was kept
    assert (await client.get(f"/v1/workspaces/{unique_ws}/campaigns/{cid}")).json()["totals"]["recipients"] == 0

    cases = [
        (b"name,phone\n1,15554300001\n", "text/csv", 422, "csv_invalid"),     # header must start with phone
        (b"phone,na-me!\n15554300001,x\n", "text/csv", 422, "csv_invalid"),   # variable names by pattern
        (b"phone\n\xff\xfe15554300001\n", "text/csv", 422, "csv_invalid"),    # not UTF-8
        (b"phone\n", "text/csv", 422, "csv_invalid"),                          # no rows
        (b'phone,name\n15554300001,"a"b"\n', "text/csv", 422, "csv_invalid"),  # malformed quoting
        (b"phone\n15554300001\n", "application/json", 415, "unsupported_media_type"),
    ]
    for body, ctype, status, code in cases:
        r = await client.post(url, content=body, headers={"Content-Type": ctype})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        assert "15554300001" not in r.text

    big = b"phone,name\n" + b"".join(b"1555%07d,%s\n" % (i, b"x" * 200) for i in range(80_000))
    r = await client.post(url, content=big, headers={"Content-Type": "text/csv"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    ok = await client.post(url, content=b"phone,name\n15554300001,Ana\n", headers={"Content-Type": "text/csv"})
    assert ok.status_code == 200 and ok.json() == {"added": 1, "recipients": 1}
    again = await client.post(url, content=b"phone,name\n15554300001,Ana\n", headers={"Content-Type": "text/csv"})
    assert again.status_code == 422 and again.json()["error"]["details"]["errors"] == [
        {"row": 2, "column": 1, "code": "duplicate"}]


@pytest.mark.parametrize("body", [
    {"name": "x", "message": {"text": "hi", "to": "15554400001"}},                      # `to` is the campaign's
    {"name": "x", "message": {"text": "hi", "session_id": "s1"}},
    {"name": "x", "message": {"type": "reaction", "message_id": "msg_1", "emoji": "x"}},
    {"name": "x", "message": {"type": "template", "name": "t1", "language": "en_US"}},  # no Cloud API here
    {"name": "x", "message": {"text": "s3cr3t-value-xyz" * 500}},                      # over the text limit
    {"name": "x", "message": {"text": "hi"}, "recipients": [{"to": "s3cr3t-value-xyz"}]},
    {"name": "x", "message": {"text": "hi"}, "recipients": [{"to": "15554400001"}, {"to": "15554400001"}]},
    {"name": "x", "message": {"text": "hi"}, "schedule": {"time_zone": "s3cr3t-value-xyz/Nowhere"}},
    {"name": "x", "message": {"text": "hi"}, "schedule": {"daily_hours": {"from": "25:00", "to": "18:00"}}},
    {"name": "x", "message": {"text": "hi"}, "numbers": "some"},
    {"name": "x", "message": {"text": "hi"}, "recipients": [{"to": "15554400001", "variables": {"b@d": "v"}}]},
    {"name": "x", "message": {"text": "hi"}, "unknown": 1},
    {"name": "x", "message": {"text": "hi"}, "fallback_template": {"text": "s3cr3t-value-xyz"}},  # not a template
    {"name": "x", "message": {"text": "hi"}, "fallback_template": {
        "type": "template", "name": "s3cr3t-value-xyz", "language": "en_US"}},                # a name by pattern
    {"name": "x", "message": {"text": "hi"}, "fallback_template": {
        "type": "template", "name": "t1", "language": "en_US", "to": "15554400001"}},           # the campaign's
    {"name": "x", "message": {"text": "hi"}, "fallback_template": {
        "type": "template", "name": "t1", "language": "en_US"}},                               # no Cloud API here
    {"name": "x", "message": {"text": "hi"}, "fallback_template": {
        "type": "template", "name": "t1", "language": "en_US",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "s3cr3t-value-xyz" * 100}]}]}},
])
async def test_bad_bodies_are_422_without_echo(body, make_key, client_for, unique_ws) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    r = await client.post(f"/v1/workspaces/{unique_ws}/campaigns", json=body)
    assert r.status_code == 422, r.text
    assert "s3cr3t-value-xyz" not in r.text
    assert (await client.get(f"/v1/workspaces/{unique_ws}/campaigns")).json()["campaigns"] == []


async def test_read_only_key_cannot_create_or_control(make_key, client_for, unique_ws) -> None:
    writer = client_for(await make_key("workspace", unique_ws))
    cid = await _draft(writer, unique_ws, recipients=[{"to": "15554500001"}])
    reader = client_for(await make_key("read", unique_ws))
    assert (await reader.get(f"/v1/workspaces/{unique_ws}/campaigns/{cid}")).status_code == 200
    for path in ("", f"/{cid}/start", f"/{cid}/cancel"):
        r = await reader.post(f"/v1/workspaces/{unique_ws}/campaigns{path}", json={"name": "x", "message": {"text": "y"}})
        assert r.status_code == 403, (path, r.text)
    assert (await reader.delete(f"/v1/workspaces/{unique_ws}/campaigns/{cid}")).status_code == 403
