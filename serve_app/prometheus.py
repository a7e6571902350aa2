"""Render a metrics snapshot in the Prometheus text format (prometheus-client does the encoding)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from wa_ray.storage import keys
from wa_ray.storage.metrics import Snapshot
from wa_ray.storage.session_metrics import PerSession

_HISTOGRAM_DOCS = {
    "qr_generation_seconds": "Session start (session.status initializing) to its first session.qr",
    "send_latency_seconds": "Message accepted (202) to message.sent",
    "page_send_seconds": "Time the page took to send (message.sent send_ms)",
}


class _Snapshot:
    """A one-shot collector: yields the families built from one snapshot."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def families(s: Snapshot, local: dict[str, int], replica: str) -> list[Metric]:
    out: list[Metric] = []
    sessions = GaugeMetricFamily("wa_sessions", "Sessions by state (registry)", labels=["state"])
    for state, n in sorted(s.sessions.items()):
        sessions.add_metric([state], n)
    out.append(sessions)

    messages = CounterMetricFamily("wa_messages", "Messages reaching each status, by provider", labels=["status",
                                                                                                        "provider"])
    for (status, provider), n in sorted(s.messages.items()):
        messages.add_metric([status, provider], n)
    out.append(messages)
    received = CounterMetricFamily("wa_messages_received", "Inbound messages, by provider", labels=["provider"])
    for provider, n in sorted(s.received.items()):
        received.add_metric([provider], n)
    out.append(received)
    events = CounterMetricFamily("wa_events", "Events published, by type", labels=["type"])
    for type_, n in sorted(s.events.items()):
        events.add_metric([type_], n)
    out.append(events)

    for name, hist in s.histograms.items():
        out.append(HistogramMetricFamily(f"wa_{name}", _HISTOGRAM_DOCS[name], buckets=hist.cumulative(),
                                         sum_value=hist.sum))

    depth = GaugeMetricFamily("wa_queue_depth", "Outbound messages not yet sent (unread + in flight), by priority",
                              labels=["priority"])
    pending = GaugeMetricFamily("wa_queue_pending", "Outbound messages read by a sender but not acknowledged",
                                labels=["priority"])
    for priority in keys.PRIORITIES:
        depth.add_metric([priority], s.queue_waiting.get(priority, 0) + s.queue_pending.get(priority, 0))
        pending.add_metric([priority], s.queue_pending.get(priority, 0))
    out += [depth, pending]

    deliveries = CounterMetricFamily("wa_webhook_deliveries", "Webhook delivery outcomes recorded by the dispatcher",
                                     labels=["outcome"])
    for outcome in ("delivered", "failed", "retried"):
        deliveries.add_metric([outcome], s.webhooks.get(outcome, 0))
    out.append(deliveries)
    out.append(GaugeMetricFamily("wa_webhook_dead_letters", "Webhook events given up on (dead-letter lists)",
                                 value=s.webhooks.get("dead_letters", 0)))
    out.append(GaugeMetricFamily("wa_webhook_pending", "Webhook events read by the dispatcher, not yet acknowledged",
                                 value=s.webhooks.get("pending", 0)))

    for name, doc in (("sse_clients", "SSE clients connected to this replica"),
                      ("sse_feeds", "Workspace event readers running in this replica"),
                      ("asyncio_tasks", "asyncio tasks alive in this replica")):
        gauge = GaugeMetricFamily(f"wa_ingress_{name}", doc, labels=["replica"])
        gauge.add_metric([replica], local.get({"sse_clients": "clients", "sse_feeds": "feeds"}.get(name, name), 0))
        out.append(gauge)
    inflight = GaugeMetricFamily("wa_ingress_inflight", "Requests in flight in this replica (admission control)",
                                 labels=["replica"])
    inflight.add_metric([replica], local.get("inflight", 0))
    shed = CounterMetricFamily("wa_ingress_shed", "Requests this replica refused with 503 overloaded",
                               labels=["replica"])
    shed.add_metric([replica], local.get("shed_total", 0))
    out += [inflight, shed]
    return out


def session_families(p: PerSession) -> list[Metric]:
    """The opt-in per-session series (storage/session_metrics.py): bounded by WA_METRICS_SESSION_MAX."""
    today = GaugeMetricFamily("wa_session_messages_today", "One number's messages of the current UTC day, by "
                              "metric (sent, delivered, read, failed, received, replies)",
                              labels=["workspace", "session", "metric"])
    connected = GaugeMetricFamily("wa_session_connected", "1 when the session is connected",
                                  labels=["workspace", "session"])
    risk = GaugeMetricFamily("wa_session_ban_risk", "The number's last ban-risk score (0..100)",
                             labels=["workspace", "session"])
    for one in p.series:
        for metric, n in one.today.items():
            today.add_metric([one.workspace, one.session, metric], n)
        connected.add_metric([one.workspace, one.session], 1 if one.connected else 0)
        if one.ban_risk is not None:
            risk.add_metric([one.workspace, one.session], one.ban_risk)
    omitted = GaugeMetricFamily("wa_session_series_omitted", "Sessions left out of the wa_session_* series "
                                "(past WA_METRICS_SESSION_MAX)", value=p.omitted)
    return [today, connected, risk, omitted]


def render(s: Snapshot, local: dict[str, int], replica: str, per_session: PerSession | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    extra = session_families(per_session) if per_session is not None else []
    registry.register(_Snapshot(families(s, local, replica) + extra))  # type: ignore[arg-type]
    return generate_latest(registry)
