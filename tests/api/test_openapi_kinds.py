"""The OpenAPI document of the running service tells every message kind apart: an example request per kind
for POST /messages (each one accepted by the real request model and by the published schema), and every
event type's payload under components/schemas and `webhooks`, each kind of `message.received` with a
schema of its own (selected by `data.kind`) and an example that fits it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from referencing import Registry, Resource

from wa_ray.events import EVENT_TYPES
from wa_ray.message_kinds import MEDIA_KINDS, FailureCode, Kind
from wa_ray.serve_app.all_event_models import ALL_EVENT_MODELS as EVENT_MODELS  # every event type
from wa_ray.serve_app.send_models import SendMessage

pytestmark = pytest.mark.asyncio

INBOUND_KINDS = {Kind.TEXT.value, *(k.value for k in MEDIA_KINDS), Kind.LOCATION.value, Kind.CONTACTS.value,
                 Kind.POLL.value, "unknown"}


@pytest.fixture
async def spec(raw: httpx.AsyncClient) -> dict[str, Any]:
    r = await raw.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    registry = Registry().with_resource("urn:spec", Resource.from_contents({**spec, "$schema":
                                        "https://json-schema.org/draft/2020-12/schema"}))
    rebased = _rebase(schema)
    return Draft202012Validator(rebased, registry=registry)


def _rebase(node: Any) -> Any:
    """`#/components/...` refs point into the spec document, registered as urn:spec."""
    if isinstance(node, dict):
        return {k: ("urn:spec" + v if k == "$ref" and isinstance(v, str) and v.startswith("#/") else _rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _errors(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    return [e.message[:200] for e in _validator(spec, schema).iter_errors(value)]


async def test_every_kind_has_a_send_example_the_service_accepts(spec) -> None:
    content = spec["paths"]["/v1/workspaces/{ws}/messages"]["post"]["requestBody"]["content"]["application/json"]
    examples = content["examples"]
    by_kind = {ex["value"].get("type", "text"): ex["value"] for ex in examples.values()}
    assert set(by_kind) == {k.value for k in Kind}, set(by_kind) ^ {k.value for k in Kind}
    model = TypeAdapter(SendMessage)
    for kind, value in by_kind.items():
        assert type(model.validate_python(value)).__name__.lower().startswith(kind), kind
        assert _errors(spec, content["schema"], value) == [], kind
    assert all(ex.get("summary") for ex in examples.values())


async def test_every_event_has_a_schema_a_webhook_and_examples_that_fit(spec) -> None:
    schemas = spec["components"]["schemas"]
    assert set(spec["webhooks"]) >= EVENT_TYPES, sorted(EVENT_TYPES - set(spec["webhooks"]))  # DESIGN.md Events
    for event_type, model in EVENT_MODELS.items():
        name = model.__name__
        assert name in schemas, name
        schema = schemas[name]
        assert schema["properties"]["type"].get("const") == event_type, schema["properties"]["type"]
        assert schema.get("examples"), name
        for example in schema["examples"]:
            assert example["type"] == event_type
            assert _errors(spec, {"$ref": f"#/components/schemas/{name}"}, example) == [], (name, example)
        hook = spec["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]
        assert hook["schema"] == {"$ref": f"#/components/schemas/{name}"} and hook["examples"]
    # a wrong payload does not fit: the schemas are not vacuous
    bad = {**schemas["MessageFailedEvent"]["examples"][0]}
    bad["data"] = {**bad["data"], "error": "not_a_code"}
    assert _errors(spec, {"$ref": "#/components/schemas/MessageFailedEvent"}, bad)


async def test_message_received_has_a_schema_and_an_example_per_kind(spec) -> None:
    schemas = spec["components"]["schemas"]
    data = schemas["MessageReceivedEvent"]["properties"]["data"]
    mapping = data["discriminator"]["mapping"]
    assert data["discriminator"]["propertyName"] == "kind"
    assert set(mapping) == INBOUND_KINDS, set(mapping) ^ INBOUND_KINDS
    examples_of: dict[str, list[dict[str, Any]]] = {}
    for kind, ref in mapping.items():
        name = ref.rsplit("/", 1)[1]
        kinds = schemas[name]["properties"]["kind"]
        assert kind in (kinds.get("enum") or [kinds.get("const")]), (kind, name)
        for example in schemas[name].get("examples", []):
            examples_of.setdefault(example["kind"], []).append(example)
            assert _errors(spec, {"$ref": ref}, example) == [], (name, example)
    assert set(examples_of) == INBOUND_KINDS, INBOUND_KINDS - set(examples_of)
    # the event's examples show the kinds too, and a payload of one kind does not pass as another
    assert {e["data"]["kind"] for e in schemas["MessageReceivedEvent"]["examples"]} >= {"text", "image", "location",
                                                                                       "contacts"}
    text = examples_of["text"][0]
    assert _errors(spec, data, {**text, "kind": "image"})  # an image needs `media`
    assert _errors(spec, data, {**text, "kind": "sticker-ish"})
    statuses = schemas["InboundMedia"]["properties"]["status"]["enum"]
    assert set(statuses) == {"stored", "pending", "off", "too_large", "failed"}


async def test_failure_codes_are_published(spec) -> None:
    assert set(spec["components"]["schemas"]["FailureCode"]["enum"]) == {c.value for c in FailureCode}
