"""Every request and answer in the running service's OpenAPI document shows an example, and every example
fits its schema: each operation's JSON request body, each 2xx JSON response, each event (`webhooks`), and
any `examples` a schema in components carries. An example that does not fit is worse than none (clients
and Laravel fixtures get copied from it), so they are checked against the published schema itself
(OpenAPI 3.1 = JSON Schema 2020-12, `$ref`s resolved in the document's components)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

pytestmark = pytest.mark.asyncio

_BASE = "urn:spec"
_JSON = "application/json"


@pytest.fixture
async def spec(raw: httpx.AsyncClient) -> dict[str, Any]:
    r = await raw.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


class Checker:
    """Validates values against schemas of one OpenAPI document; `#/...` refs point into it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        doc = {**spec, "$schema": "https://json-schema.org/draft/2020-12/schema"}
        self._registry = Registry().with_resource(_BASE, Resource.from_contents(doc))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self._spec
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        validator = Draft202012Validator(_rebase(schema), registry=self._registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:160]}"
                for e in validator.iter_errors(value)]


def _rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (_BASE + v if k == "$ref" and isinstance(v, str) and v.startswith("#/") else _rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def media_examples(check: Checker, media: dict[str, Any]) -> list[Any]:
    """What a reader of the document sees as examples of this body: the media type's own (`example`,
    `examples`), else its schema's, else (a body of alternatives) the alternatives'."""
    found: list[Any] = [media["example"]] if "example" in media else []
    found += [ex["value"] for ex in media.get("examples", {}).values() if "value" in ex]
    schema = check.resolve(media.get("schema", {}))
    found += schema.get("examples", [])
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        found += check.resolve(branch).get("examples", [])
    return found


def _json_bodies(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, media object) of every JSON request body and 2xx JSON response, events included."""
    for section in ("paths", "webhooks"):
        for path, item in spec.get(section, {}).items():
            for method, op in item.items():
                where = f"{method.upper()} {path}" if section == "paths" else f"event {path}"
                body = op.get("requestBody", {}).get("content", {}).get(_JSON)
                if body is not None:
                    yield f"{where} request", body
                for status, response in op.get("responses", {}).items():
                    media = response.get("content", {}).get(_JSON)
                    if status.startswith("2") and media is not None:
                        yield f"{where} {status}", media


def _schema_examples(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any], list[Any]]]:
    """Every (sub)schema under components that carries `examples`, at any depth (a Field's examples too)."""
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list):
            yield where, node, node["examples"]
        for key, value in node.items():
            yield from _schema_examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_examples(value, f"{where}/{i}")


def offenders(spec: dict[str, Any]) -> list[str]:
    check = Checker(spec)
    found: list[str] = []
    for where, media in _json_bodies(spec):
        examples = media_examples(check, media)
        if not examples:
            found.append(f"{where}: no example")
        for i, example in enumerate(examples):
            found += [f"{where} example {i}: {e}" for e in check.errors(media.get("schema", {}), example)]
    for where, schema, examples in _schema_examples(spec.get("components", {}).get("schemas", {}), "#"):
        for i, example in enumerate(examples):
            found += [f"{where} example {i}: {e}" for e in check.errors(schema, example)]
    return found


async def test_every_body_response_and_event_has_an_example_that_fits(spec) -> None:
    bodies = list(_json_bodies(spec))
    assert len(bodies) > 50 and any(w.startswith("event ") for w, _ in bodies)  # the walk sees the document
    problems = offenders(spec)
    assert not problems, f"{len(problems)} examples missing or not fitting their schema:\n" + "\n".join(problems)


async def test_the_check_tells_a_wrong_example_and_a_missing_one(spec) -> None:
    """The check is not vacuous: a send example with a wrong type and a response stripped of its examples
    are both reported."""
    op = spec["paths"]["/v1/workspaces/{ws}/messages"]["post"]
    media = op["requestBody"]["content"][_JSON]
    first = next(iter(media["examples"]))
    media["examples"][first]["value"] = {**media["examples"][first]["value"], "to": 15551230001}
    health = spec["components"]["schemas"]["Health"]
    health.pop("examples", None)
    spec["paths"]["/healthz"]["get"]["responses"]["200"]["content"][_JSON].pop("example", None)
    problems = offenders(spec)
    assert any(p.startswith("POST /v1/workspaces/{ws}/messages request example") for p in problems), problems
    assert "GET /healthz 200: no example" in problems, problems
