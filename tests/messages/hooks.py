"""A webhook receiver whose answers a test scripts per event id, keeping every delivery's raw bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wa_ray.simulator.cloud_api.testing import serve_in_thread


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class ScriptedReceiver:
    url: str = ""
    script: dict[str, list[int]] = field(default_factory=dict)  # event id -> statuses to answer, in turn
    hits: list[Hit] = field(default_factory=list)

    def of(self, event_id: str) -> list[Hit]:
        return [h for h in self.hits if h.headers.get("x-event-id") == event_id]

    async def wait(self, event_id: str, count: int, timeout: float = 20.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while len(self.of(event_id)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{event_id}: {len(self.of(event_id))} of {count} deliveries")
            await asyncio.sleep(0.05)
        return self.of(event_id)


@contextmanager
def scripted_receiver() -> Iterator[ScriptedReceiver]:
    receiver = ScriptedReceiver()

    async def hook(request: Request) -> Response:
        event_id = request.headers.get("x-event-id", "")
        answers = receiver.script.get(event_id) or []
        status = answers.pop(0) if answers else 200
        receiver.hits.append(Hit(dict(request.headers), await request.body(), time.time(), status))
        return Response(status_code=status)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as served:
        receiver.url = served.url + "/hook"
        yield receiver
