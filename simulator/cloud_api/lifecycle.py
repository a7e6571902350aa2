"""What happens to an accepted message after the 200: its status webhooks.

For each accepted message the simulator emits `sent`, `delivered` and `read`
at the configured delays (a `None` delay skips that status), or a single
`failed` for messages accepted and then failed asynchronously.

With `out_of_order` on, the statuses of a message are emitted in reverse
(`read` first, `sent` last, at least 50 ms apart so the reversal survives
network jitter), while each `timestamp` field still tells the true order - the
situation a receiver must handle when Meta's deliveries overtake each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wa_ray.simulator.cloud_api.config import CloudSimConfig, PhoneNumber
from wa_ray.simulator.cloud_api.dispatcher import WebhookDispatcher
from wa_ray.simulator.cloud_api.errors import ErrorSpec, webhook_error
from wa_ray.simulator.cloud_api.payloads import Billing, status_payload
from wa_ray.simulator.cloud_api.sent_log import SentLog, SentMessage
from wa_ray.simulator.cloud_api.window import Clock

OUT_OF_ORDER_GAP = 0.05


class StatusLifecycle:
    def __init__(
        self,
        config: Callable[[], CloudSimConfig],
        clock: Clock,
        log: SentLog,
        dispatcher: WebhookDispatcher,
    ):
        self._config = config
        self._clock = clock
        self._log = log
        self._dispatcher = dispatcher
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, message: SentMessage, phone: PhoneNumber, billing: Billing) -> None:
        cfg = self._config()
        delays = cfg.status_delays
        steps = (("sent", delays.sent), ("delivered", delays.delivered), ("read", delays.read))
        plan = [(status, delay) for status, delay in steps if delay is not None]
        if not plan:
            return
        emit_at = [d for _, d in plan]
        if cfg.webhook.out_of_order and len(plan) > 1:
            emit_at = []
            for _, d in plan:  # ascending offsets, then handed out in reverse
                emit_at.append(max(d, emit_at[-1] + OUT_OF_ORDER_GAP) if emit_at else d)
            emit_at.reverse()
        for (status, logical_delay), delay in zip(plan, emit_at, strict=True):
            payload_args = {
                "wamid": message.id,
                "status": status,
                "timestamp": message.accepted_at + logical_delay,
                "recipient_id": message.wa_id,
                "billing": billing,
                "biz_opaque_callback_data": message.biz_opaque_callback_data,
            }
            self._schedule(delay, phone, message.id, status, payload_args)

    def fail(self, message: SentMessage, phone: PhoneNumber, spec: ErrorSpec) -> None:
        delay = self._config().status_delays.sent or 0.0
        payload_args = {
            "wamid": message.id,
            "status": "failed",
            "timestamp": message.accepted_at + delay,
            "recipient_id": message.wa_id,
            "errors": [webhook_error(spec)],
            "biz_opaque_callback_data": message.biz_opaque_callback_data,
        }
        self._schedule(delay, phone, message.id, "failed", payload_args)

    def _schedule(self, delay: float, phone: PhoneNumber, wamid: str, status: str, payload_args: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._emit(delay, phone, wamid, status, payload_args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, delay: float, phone: PhoneNumber, wamid: str, status: str, payload_args: dict[str, Any]) -> None:
        await asyncio.sleep(delay)
        self._log.record_status(wamid, status)
        self._dispatcher.submit(status_payload(phone, **payload_args), kind="status", wamid=wamid, status=status)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
