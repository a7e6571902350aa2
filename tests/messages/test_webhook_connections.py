"""The webhook dispatcher keeps its connections to an endpoint (actors/webhook_dispatcher.py `_drain`), and an
endpoint cannot use that to hold it or to make it download: an answer too long or too slow is cut off,
and the delivery still counts by its status."""

from __future__ import annotations

import asyncio
import time

from tests.messages.helpers import publish_events
from tests.receiver import running_receiver

SECRET = "whsec-connections-0123456789"


async def test_deliveries_reuse_their_connections(api, service) -> None:
    ws = "hooks-keepalive"
    with running_receiver() as hook:
        assert (await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": hook.url, "secret": SECRET})
                ).status_code == 204
        ids: list[str] = []
        for _ in range(4):  # a few at a time, as a message's events come
            ids += await publish_events(service, ws, 5)
            deadline = time.monotonic() + 20
            while {d.headers.get("x-event-id") for d in hook.deliveries} < set(ids):
                assert time.monotonic() < deadline, "deliveries missing"
                await asyncio.sleep(0.05)
        peers = {d.peer for d in hook.deliveries if d.headers.get("x-event-id") in ids}
        # one connection per delivery when each answer was closed unread; a handful when they are reused
        assert len(peers) <= 6, f"{len(ids)} deliveries over {len(peers)} connections"


class EndlessAnswer:
    """An endpoint on loopback that answers 200 with a body that never ends, a chunk every 10 ms."""

    def __init__(self) -> None:
        self.requests: list[str] = []  # X-Event-Id of each request
        self.closed_after: list[float] = []  # seconds from the answer's start to the client closing
        self.sent_bytes = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> EndlessAnswer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            await reader.readexactly(int(fields.get("content-length", "0")))
            self.requests.append(fields.get("x-event-id", ""))
            started = time.monotonic()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n")
            try:
                while True:
                    writer.write(b"x" * 4096)
                    self.sent_bytes += 4096
                    await writer.drain()
                    await asyncio.sleep(0.01)
            except (ConnectionError, OSError):
                self.closed_after.append(time.monotonic() - started)
        finally:
            writer.close()


async def test_an_endless_answer_is_cut_off_and_the_delivery_counts(api, service) -> None:
    ws = "hooks-endless"
    async with EndlessAnswer() as endpoint:
        assert (await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": endpoint.url, "secret": SECRET})
                ).status_code == 204
        ids = await publish_events(service, ws, 3)
        deadline = time.monotonic() + 20
        while len(endpoint.closed_after) < len(ids):
            assert time.monotonic() < deadline, f"cut off {len(endpoint.closed_after)} of {len(ids)} answers"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # a retry would come now
        assert sorted(endpoint.requests) == sorted(ids), "each event delivered once: the status decides, not the body"
        assert max(endpoint.closed_after) < 5, endpoint.closed_after
        assert endpoint.sent_bytes < 8 * 1024 * 1024, "the dispatcher kept reading"
        letters = (await api.get(f"/v1/workspaces/{ws}/webhook/dead-letters")).json()
        assert letters["total"] == 0
