"""Helpers for tests that need a live Cloud API simulator.

    with running_cloud_simulator() as sim:
        sim.control.register_phone_number("1001", "token-1")
        httpx.post(sim.graph_url("1001"), headers={"Authorization": "Bearer token-1"}, json=...)
        assert len(sim.control.sent()) == 1

The server runs in a background thread with its own event loop on a free
127.0.0.1 port (the socket is bound before uvicorn starts, so there is no
port race), which keeps it independent of the test's own loop: sync test code
can block on it, and it can call back into receivers the test runs the same way
(`serve_in_thread`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from wa_ray.simulator.cloud_api.config import CloudSimConfig
from wa_ray.simulator.cloud_api.server import create_app
from wa_ray.simulator.cloud_api.state import SimState

DEFAULT_GRAPH_VERSION = "v21.0"


@dataclass
class ServedApp:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", before_stop: Callable[[], None] | None = None
) -> Iterator[ServedApp]:
    """Serve any ASGI app on a free loopback port in a daemon thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield ServedApp(f"http://{host}:{port}", server, thread)
    finally:
        if before_stop is not None:
            before_stop()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class CloudControl:
    """A small sync client for the simulator's `/_control/` API."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self._client = httpx.Client(base_url=base_url.rstrip("/") + "/_control", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self._client.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            raise CloudControlError(response.status_code, response.json())
        return response.json()

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def register_phone_number(
        self,
        phone_number_id: str,
        access_token: str,
        display_phone_number: str = "15550000000",
        waba_id: str = "100000000000000",
    ) -> None:
        self._call("POST", "/phone_numbers", {
            "phone_number_id": phone_number_id,
            "access_token": access_token,
            "display_phone_number": display_phone_number,
            "waba_id": waba_id,
        })

    def revoke_token(self, access_token: str) -> None:
        self._call("POST", "/tokens/revoke", {"access_token": access_token})

    def configure_webhook(self, **fields: Any) -> dict[str, Any]:
        """Fields of `WebhookIn`: callback_url, app_secret, verify_token,
        duplicates, out_of_order, max_attempts, retry_base_delay, ..., verify."""
        return self._call("PUT", "/webhook", fields)

    def set_limits(self, **fields: Any) -> dict[str, Any]:
        return self._call("PUT", "/limits", fields)

    def set_window(self, enforce: bool | None = None, seconds: float | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"enforce": enforce, "seconds": seconds}.items() if v is not None}
        return self._call("PUT", "/window", body)

    def set_outage(self, mode: str, status: int | None = None, hang_seconds: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": mode}
        if status is not None:
            body["status"] = status
        if hang_seconds is not None:
            body["hang_seconds"] = hang_seconds
        return self._call("PUT", "/outage", body)

    def set_undeliverable(self, numbers: list[str]) -> dict[str, Any]:
        return self._call("PUT", "/undeliverable", {"numbers": numbers})

    def set_failure_rate(self, rate: float) -> dict[str, Any]:
        return self._call("PUT", "/failure_rate", {"rate": rate})

    def set_failure_delivery(self, mode: str) -> dict[str, Any]:
        return self._call("PUT", "/failure_delivery", {"mode": mode})

    def set_status_delays(self, **delays: float | None) -> dict[str, Any]:
        return self._call("PUT", "/status_delays", delays)

    def inbound(self, from_: str, phone_number_id: str, body: str, name: str = "Simulated User") -> str:
        result = self._call("POST", "/inbound", {
            "from": from_, "phone_number_id": phone_number_id, "body": body, "name": name,
        })
        return result["id"]

    def inbound_message(self, from_: str, phone_number_id: str, message: dict[str, Any],
                        media: bytes | None = None, mime_type: str = "application/octet-stream",
                        filename: str | None = None, name: str = "Simulated User") -> dict[str, Any]:
        """A user sends any kind; with `media`, the bytes are stored and the message carries their id."""
        import base64

        body: dict[str, Any] = {"from": from_, "phone_number_id": phone_number_id, "name": name, "message": message}
        if media is not None:
            body["media"] = {"data_base64": base64.b64encode(media).decode(), "mime_type": mime_type,
                             "filename": filename}
        return self._call("POST", "/inbound_message", body)

    def register_template(self, phone_number_id: str, name: str, language: str, body_parameters: int = 0) -> None:
        self._call("POST", "/templates", {"phone_number_id": phone_number_id, "name": name, "language": language,
                                          "body_parameters": body_parameters})

    def sent(self, to: str | None = None, phone_number_id: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"to": to, "phone_number_id": phone_number_id}.items() if v is not None}
        return self._call("GET", "/sent", params=params)["messages"]

    def deliveries(self, wamid: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/webhooks", params={"wamid": wamid} if wamid else None)["deliveries"]

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/clock/advance", {"advance_seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "/reset")


class CloudControlError(Exception):
    def __init__(self, status_code: int, body: Any):
        super().__init__(f"control API answered {status_code}: {body}")
        self.status_code = status_code
        self.body = body


@dataclass
class RunningCloudSimulator:
    url: str
    app: Starlette
    control: CloudControl

    @property
    def state(self) -> SimState:
        """Live simulator state (read it; change things through `control`)."""
        return self.app.state.sim

    def graph_url(self, phone_number_id: str, version: str = DEFAULT_GRAPH_VERSION) -> str:
        return f"{self.url}/{version}/{phone_number_id}/messages"


@contextmanager
def running_cloud_simulator(config: CloudSimConfig | None = None) -> Iterator[RunningCloudSimulator]:
    app = create_app(config)
    state: SimState = app.state.sim
    # Requests held by an outage "hang" would delay shutdown: wake them first.
    with serve_in_thread(app, before_stop=state.release_hangs_threadsafe) as served:
        control = CloudControl(served.url)
        try:
            yield RunningCloudSimulator(served.url, app, control)
        finally:
            control.close()
