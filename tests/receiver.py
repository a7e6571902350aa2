"""A webhook receiver on loopback that keeps the raw bytes and headers of every delivery."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wa_ray.storage.embedded import free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    peer: str = ""  # the sender's host:port, one per connection it used


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    status: int = 200  # what the receiver answers; tests flip it to force retries

    async def wait_for(self, predicate, timeout: float = 20.0) -> Delivery:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in list(self.deliveries):
                if predicate(d):
                    return d
            await asyncio.sleep(0.05)
        raise TimeoutError("no matching webhook delivery")


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hook")

    async def hook(request: Request) -> Response:
        peer = f"{request.client.host}:{request.client.port}" if request.client else ""
        receiver.deliveries.append(Delivery(dict(request.headers), await request.body(), time.time(), peer))
        return Response(status_code=receiver.status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=5)
