"""All mutable simulator state, owned by the server's event loop.

Handlers and the control API run on that loop, so plain attribute access is
safe there; the few structures tests read from other threads (the sent log,
the delivery history) carry their own locks.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from typing import Any

import httpx

from wa_ray.simulator.cloud_api.billing import Biller
from wa_ray.simulator.cloud_api.config import CloudSimConfig, PhoneNumber
from wa_ray.simulator.cloud_api.dispatcher import WebhookDispatcher
from wa_ray.simulator.cloud_api.ids import new_wamid
from wa_ray.simulator.cloud_api.lifecycle import StatusLifecycle
from wa_ray.simulator.cloud_api.limits import PairRateLimiter, ThroughputLimiter
from wa_ray.simulator.cloud_api.media import MediaStore
from wa_ray.simulator.cloud_api.payloads import inbound_message_payload
from wa_ray.simulator.cloud_api.registry import Registry
from wa_ray.simulator.cloud_api.sent_log import SentLog
from wa_ray.simulator.cloud_api.templates import Templates
from wa_ray.simulator.cloud_api.window import Clock, ServiceWindows


def normalize_number(raw: str) -> str:
    """Meta's wa_id: the digits of the number, without `+`, spaces or dashes."""
    return re.sub(r"\D", "", raw)


class SimState:
    def __init__(self, config: CloudSimConfig | None = None):
        self._initial = copy.deepcopy(config or CloudSimConfig())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dispatcher = WebhookDispatcher(lambda: self.config.webhook)
        self._fetcher: httpx.AsyncClient | None = None
        self._hang_release = asyncio.Event()
        self._build()

    def _build(self) -> None:
        self.config: CloudSimConfig = copy.deepcopy(self._initial)
        self.config.undeliverable = {normalize_number(n) for n in self.config.undeliverable}
        self.clock = Clock()
        self.registry = Registry()
        for phone in self.config.phone_numbers:
            self.registry.register(phone)
        self.throughput = ThroughputLimiter(lambda: self.config.throughput_per_second)
        self.pairs = PairRateLimiter(lambda: self.config.pair_burst, lambda: self.config.pair_refill_seconds)
        self.windows = ServiceWindows(self.clock)
        self.biller = Biller(self.clock, self.windows)
        self.log = SentLog()
        self.inbound_ids: set[str] = set()
        self.media = MediaStore()
        self.templates = Templates()
        self.rng = random.Random(self.config.seed)
        self.lifecycle = StatusLifecycle(lambda: self.config, self.clock, self.log, self.dispatcher)

    def reset(self) -> None:
        """Back to the config the app was created with; pending webhooks are dropped."""
        self.lifecycle.cancel_all()
        self.dispatcher.cancel_all()
        self.release_hangs()
        self._build()

    @property
    def fetcher(self) -> httpx.AsyncClient:
        """The client that fetches `link` media (loopback only, kinds.py); made inside the server's loop."""
        if self._fetcher is None:
            self._fetcher = httpx.AsyncClient(headers={"User-Agent": "facebookexternalua"}, follow_redirects=False)
        return self._fetcher

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None

    # ---- outage "hang" ------------------------------------------------------

    async def hang(self, seconds: float) -> None:
        """Hold a request until the outage ends or `seconds` pass."""
        release = self._hang_release
        try:
            await asyncio.wait_for(release.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def release_hangs(self) -> None:
        # Wake everything hanging now; later hangs wait on a fresh event.
        self._hang_release.set()
        self._hang_release = asyncio.Event()

    def release_hangs_threadsafe(self) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.release_hangs)

    # ---- inbound (user -> business) ----------------------------------------

    def receive_inbound(self, phone: PhoneNumber, from_number: str, body: str, name: str) -> str:
        """A user writes a text to the business: the text case of `receive_inbound_message`."""
        return self.receive_inbound_message(phone, from_number, name, {"text": {"body": body}, "type": "text"})

    def receive_inbound_message(self, phone: PhoneNumber, from_number: str, name: str,
                                message: dict[str, Any]) -> str:
        """A user sends any kind (`message` is Meta's message object without from/id/timestamp): open the
        window, send the webhook."""
        wa_id = normalize_number(from_number)
        self.windows.open(phone.phone_number_id, wa_id)
        wamid = new_wamid(wa_id)
        self.inbound_ids.add(wamid)
        payload = inbound_message_payload(
            phone, wamid=wamid, from_wa_id=wa_id, profile_name=name, message=message, timestamp=self.clock.now()
        )
        self.dispatcher.submit(payload, kind="message", wamid=wamid, status=None)
        return wamid

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "phone_numbers": [
                {**phone.__dict__, "access_token": phone.access_token[:4] + "..."}
                for phone in self.registry.phones.values()
            ],
            "throughput_per_second": cfg.throughput_per_second,
            "pair_burst": cfg.pair_burst,
            "pair_refill_seconds": cfg.pair_refill_seconds,
            "enforce_service_window": cfg.enforce_service_window,
            "service_window_seconds": cfg.service_window_seconds,
            "failure_delivery": cfg.failure_delivery,
            "undeliverable": sorted(cfg.undeliverable),
            "transient_failure_rate": cfg.transient_failure_rate,
            "outage": cfg.outage.__dict__,
            "status_delays": cfg.status_delays.__dict__,
            "webhook": {
                **{k: v for k, v in cfg.webhook.__dict__.items() if k != "app_secret"},
                "app_secret_set": bool(cfg.webhook.app_secret),
            },
            "template_category": cfg.template_category,
            "clock_offset_seconds": self.clock.offset,
            "now": self.clock.now(),
            "wall_time": time.time(),
        }
