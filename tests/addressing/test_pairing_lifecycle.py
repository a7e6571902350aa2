"""The lifecycle's pairing-code login on its own (a recording HostPort, no Ray, no page): a `code` session
publishes session.pairing_code instead of session.qr, renews it on its interval while unlinked, fails as a
QR timeout does once its codes run out, and stops asking the moment the page is linked."""

from __future__ import annotations

import asyncio
from typing import Any

from wa_ray.actors.session_lifecycle import SessionLifecycle
from wa_ray.runtime import RuntimeConfig
from wa_ray.sessions.state import PageSignal, SessionState


class RecordingPort:
    def __init__(self, login: dict[str, Any]) -> None:
        self.login_mode = login
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.registry: dict[str, Any] = {}
        self.asked: list[str] = []
        self.closed = 0

    async def attach(self) -> dict[str, Any] | None:
        return None

    async def open(self, restore: bool) -> None:
        return None

    async def close(self, unlinked: bool = False) -> None:
        self.closed += 1

    async def save_auth(self) -> None:
        return None

    async def delete_auth(self) -> None:
        return None

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append((type_, data))

    async def set_state(self, state: str, reason: str, fields: dict[str, Any]) -> None:
        self.registry.update(state=state, reason=reason, **fields)

    async def update(self, fields: dict[str, Any]) -> None:
        self.registry.update(fields)

    async def sync(self, reason: str) -> str | None:
        return None

    async def login(self) -> dict[str, Any]:
        return self.login_mode

    async def pairing_code(self, phone: str) -> str:
        self.asked.append(phone)
        return f"CODE{len(self.asked):04d}"

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type_]


def config(**kw: Any) -> RuntimeConfig:
    return RuntimeConfig(redis_url="redis://unused", web_url="http://127.0.0.1:1/", data_dir="/tmp", **kw)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition never held")


async def test_codes_renew_then_fail_like_a_qr_timeout() -> None:
    port = RecordingPort({"login": "code", "phone": "15553430"})
    life = SessionLifecycle(config(pairing_code_interval_s=0.05, pairing_code_max=3), "ws", "s", port)
    await life.start()
    await life.on_page_signal(PageSignal.QR, {"qr": "ref,a,b,c,d"})
    await life.on_page_signal(PageSignal.QR, {"qr": "ref2,a,b,c,d"})  # a rotation: no second asker
    await wait_until(lambda: life.state is SessionState.FAILED)
    codes = port.of("session.pairing_code")
    assert [c["seq"] for c in codes] == [1, 2, 3]
    assert all(c["expires_in"] == 180 and c["code"].startswith("CODE") for c in codes)
    assert port.asked == ["15553430"] * 3
    assert port.of("session.qr") == [] and "qr" not in port.registry
    assert port.registry["reason"].startswith("pairing_timeout") and port.closed == 1
    assert not any(c["code"] in str(port.registry) for c in codes)  # the code is in its event only


async def test_linking_stops_the_renewal() -> None:
    port = RecordingPort({"login": "code", "phone": "15553430"})
    life = SessionLifecycle(config(pairing_code_interval_s=0.05, pairing_code_max=50), "ws", "s", port)
    await life.start()
    await life.on_page_signal(PageSignal.QR, {"qr": "ref,a,b,c,d"})
    await wait_until(lambda: len(port.of("session.pairing_code")) >= 2)
    await life.on_page_signal(PageSignal.READY, {"me": {"id": "15553430@c.us", "number": "15553430"}})
    asked = len(port.asked)
    await asyncio.sleep(0.2)
    assert life.state is SessionState.CONNECTED and len(port.asked) == asked


async def test_qr_login_is_unchanged() -> None:
    port = RecordingPort({"login": "qr", "phone": None})
    life = SessionLifecycle(config(pairing_code_interval_s=0.05), "ws", "s", port)
    await life.start()
    await life.on_page_signal(PageSignal.QR, {"qr": "ref,a,b,c,d"})
    await asyncio.sleep(0.1)
    assert [e["seq"] for e in port.of("session.qr")] == [1] and port.asked == []
    assert port.registry["qr"] == "ref,a,b,c,d"
