"""Every event type has a documented envelope (serve_app/all_event_models.py), and what the real
publishers send fits it.

DESIGN.md (Events): every event type's `data` has a schema and an example in the OpenAPI document. The
catalogue is held to wa_ray.events.EVENT_TYPES, each envelope's examples validate against their own
model, and the payloads the session lifecycle (a recording port, no Ray, no page), the message store and
the inbound recorder (both on an embedded Redis) publish validate against the models of their types."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from tests.addressing.test_pairing_lifecycle import RecordingPort, config, wait_until
from wa_ray.actors.inbound import InboundRecorder
from wa_ray.actors.session_lifecycle import SessionLifecycle
from wa_ray.events import EVENT_TYPES
from wa_ray.master_keys import MasterKey, write_key_file
from wa_ray.runtime import RuntimeConfig
from wa_ray.serve_app.all_event_models import ALL_EVENT_MODELS
from wa_ray.serve_app.models import SessionStateName
from wa_ray.sessions.state import PageSignal, SessionState
from wa_ray.storage.events import EventLog
from wa_ray.storage.messages import MessageStore, OutboundMessage

WAMID = "wamid.HBgLMTU1NTEyMzAwMDEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA=="


def _validate(event_type: str, data: dict[str, Any], session_id: str | None = "s") -> None:
    ALL_EVENT_MODELS[event_type].model_validate({"id": "1-0", "type": event_type, "workspace_id": "ws",
                                                 "session_id": session_id, "ts": 1.0, "data": data})


def test_every_event_type_has_a_model_and_no_model_lacks_a_type() -> None:
    assert set(ALL_EVENT_MODELS) == EVENT_TYPES, sorted(set(ALL_EVENT_MODELS) ^ EVENT_TYPES)
    assert set(get_args(SessionStateName)) == {s.value for s in SessionState}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_envelope_has_examples_that_fit_it_and_its_data_model(event_type: str) -> None:
    model = ALL_EVENT_MODELS[event_type]
    examples = model.model_config["json_schema_extra"]["examples"]  # type: ignore[index]
    assert examples, event_type
    for example in examples:
        assert example["type"] == event_type
        model.model_validate(example)
    data_model = model.model_fields["data"].annotation
    if isinstance(data_model, type) and issubclass(data_model, BaseModel):  # message.received is a union
        for example in data_model.model_config["json_schema_extra"]["examples"]:  # type: ignore[index]
            data_model.model_validate(example)
    with pytest.raises(ValidationError):  # the envelope is not vacuous: its type is pinned
        model.model_validate({**examples[0], "type": "not.a.type"})


class CountingPort(RecordingPort):
    """Counts page opens: the reconnect after a crash is over once it opened the page again."""

    def __init__(self) -> None:
        super().__init__({"login": "qr", "phone": None})
        self.opens = 0

    async def open(self, restore: bool) -> None:
        self.opens += 1


async def test_what_the_session_lifecycle_publishes_fits_the_models() -> None:
    port = CountingPort()
    life = SessionLifecycle(config(), "ws", "s", port)
    await life.start()
    await life.on_page_signal(PageSignal.QR, {"qr": "2@ref,a,b,c"})
    await life.on_page_signal(PageSignal.QR, {"qr": "2@ref2,a,b,c"})
    await life.on_page_signal(PageSignal.READY, {"me": {"id": "15559870000@c.us", "number": "15559870000"},
                                                 "pushname": "Acme"})
    await life.on_page_signal(PageSignal.LOGOUT, {})
    await life.on_page_signal(PageSignal.READY, {"me": None, "pushname": None})  # the page could not name us
    opens = port.opens
    await life.on_page_signal(PageSignal.CRASH, {"reason": "page closed"})
    await wait_until(lambda: port.opens > opens)  # the reconnect ran and ended
    await life.stop(purge=False)
    types = [t for t, _ in port.events]
    assert {"session.status", "session.qr", "session.ready", "session.disconnected"} <= set(types), types
    for event_type, data in port.events:
        _validate(event_type, data)
    # a published payload that lost a field would not pass: the test can fail
    status = port.of("session.status")[0]
    with pytest.raises(ValidationError):
        _validate("session.status", {k: v for k, v in status.items() if k != "state"})


async def test_what_the_message_store_and_inbound_recorder_publish_fits_the_models(
        redis, bare_redis_url: str, tmp_path: Path) -> None:
    store = MessageStore(redis)
    write_key_file(tmp_path / "master.key", [MasterKey(os.urandom(32))])
    recorder = InboundRecorder(redis, RuntimeConfig(redis_url=bare_redis_url, web_url="http://127.0.0.1:1/",
                                                    data_dir=str(tmp_path),
                                                    master_key_file=str(tmp_path / "master.key")))
    web = OutboundMessage("msg_web00000000000000000001", "ws", "s", "15551230001", "hi", "normal")
    cloud = OutboundMessage("msg_cloud0000000000000000001", "ws", "", "15551230002", "", "high",
                            provider="meta", kind="template", content={"name": "order_shipped"})
    for msg in (web, cloud):
        assert (await store.accept(msg, None)).created
    await store.bind_wa_id("ws", web.message_id, "true_15551230001@c.us_3EB0AA")
    await store.transition(web.message_id, "ws", "sent")
    await recorder.ack("ws", "s", "true_15551230001@c.us_3EB0AA", 2)  # delivered
    await recorder.ack("ws", "s", "true_15551230001@c.us_3EB0AA", 3)  # read
    await store.bind_wa_id("ws", cloud.message_id, WAMID)
    for status in ("sent", "read"):  # a status webhook that got there before the send's own answer
        await recorder.cloud_payload("ws", {"entry": [{"changes": [{"value": {"statuses": [
            {"id": WAMID, "status": status, "recipient_id": "15551230002"}]}}]}]})
    events = await EventLog(redis).read_after("ws", "0", 0)
    assert [e["type"] for e in events] == ["message.queued", "message.queued", "message.ack", "message.ack",
                                           "message.sent", "message.ack"], [e["type"] for e in events]
    for event in events:
        ALL_EVENT_MODELS[event["type"]].model_validate(event)
    assert events[4]["data"]["via"] == "status_webhook" and events[5]["data"]["status"] == "read"
