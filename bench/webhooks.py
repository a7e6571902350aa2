"""The bench's webhook receiver, in a process of its own.

At bench rates the service posts several webhooks per message (queued, sent,
delivered, read); serving them in the bench process would put the receiver
under the same GIL as the load generator, the SSE reader and the simulator,
and the measured latencies would partly be ours. The child stamps each
delivery on arrival (wall clock, comparable across processes on one machine),
checks the signature with the product's own verifier, and hands a compact
record to the parent through a queue.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

PATH = "/hook"


@dataclass(frozen=True)
class WebhookHit:
    at: float  # wall clock on arrival, before the body is parsed
    event_id: str
    event_type: str
    workspace_id: str
    message_id: str | None
    status: str | None
    signature_ok: bool


def _serve(port: int, secret: str, out: Any, ready: Any) -> None:  # runs in the child
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from wa_ray.actors.webhook_signing import verify

    async def hook(request: Request) -> Response:
        at = time.time()
        body = await request.body()
        h = request.headers
        ok = verify(secret, h.get("x-timestamp", ""), body, h.get("x-signature", ""))
        message_id = status = None
        try:
            data = orjson.loads(body).get("data") or {}
            message_id, status = data.get("message_id"), data.get("status")
        except (orjson.JSONDecodeError, AttributeError):
            ok = False
        out.put((at, h.get("x-event-id", ""), h.get("x-event-type", ""), h.get("x-workspace-id", ""),
                 message_id, status, ok))
        # A receiver that cannot verify a delivery refuses it; the count of such refusals is a bench result.
        return Response(status_code=200 if ok else 401)

    app = Starlette(routes=[Route(PATH, hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", access_log=False))

    async def main() -> None:
        import asyncio

        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                return
            await asyncio.sleep(0.01)
        ready.set()
        await task

    import asyncio

    asyncio.run(main())


class WebhookReceiver:
    """Start with `start()`, read arrivals with `drain()`, stop with `stop()`."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self._ctx = mp.get_context("spawn")
        self._queue: Any = self._ctx.Queue()
        self._ready = self._ctx.Event()
        self._proc: SpawnProcess | None = None
        self._hits: deque[WebhookHit] = deque()
        self._pump: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 30.0) -> WebhookReceiver:
        self._proc = self._ctx.Process(target=_serve, args=(self.port, self.secret, self._queue, self._ready),
                                       name="bench-webhook-receiver", daemon=True)
        self._proc.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError("webhook receiver did not start")
        self._pump = threading.Thread(target=self._run_pump, name="bench-webhook-pump", daemon=True)
        self._pump.start()
        return self

    def _run_pump(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            self._hits.append(WebhookHit(*item))

    def drain(self) -> list[WebhookHit]:
        out: list[WebhookHit] = []
        while self._hits:
            out.append(self._hits.popleft())
        return out

    def stop(self) -> None:
        self._stopping.set()
        if self._pump is not None:
            self._pump.join(timeout=2)
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._queue.close()
        self._queue.join_thread()
