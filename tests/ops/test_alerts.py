"""deploy/alerts.yml: Prometheus rule-group structure, and every wa_* series and label value it uses
is one that GET /metrics really exposes (rendered here by serve_app.prometheus from a full snapshot)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from wa_ray.serve_app.prometheus import render
from wa_ray.sessions.state import SessionState
from wa_ray.storage import keys
from wa_ray.storage.messages import META, WEBJS
from wa_ray.storage.metrics import HISTOGRAMS, MESSAGE_EVENTS, Histogram, Snapshot
from tests.ops.promql import DURATION, PromQLError, Selector, selectors
from wa_ray.events import EVENT_TYPES

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}
# series that come from elsewhere: Prometheus itself (`up`) and node_exporter on every Ray node
EXTERNAL = {"up": {"job", "instance"},
            "node_memory_MemAvailable_bytes": {"instance", "job"}, "node_memory_MemTotal_bytes": {"instance", "job"}}
# the seed's thresholds (issue 7) -> the alert that carries each, and a fragment its expr must hold
SEED = {
    "WaRaySessionFailureRateHigh": "> 0.2",
    "WaRayWebProviderDown": 'wa_sessions{state="connected"}',
    "WaRayCloudApiDown": 'provider="meta"',
    "WaRayQueueDepthHigh": "wa_queue_depth",
    "WaRayNodeMemoryHigh": "> 0.8",
    "WaRayWebhookDeadLetters": "wa_webhook_dead_letters) > 0",
}


def exposed() -> dict[str, dict[str, set[str]]]:
    """Sample name -> label name -> values seen, from /metrics' renderer over a snapshot holding every
    state, priority, status, provider and event type the code knows."""
    statuses = set(MESSAGE_EVENTS.values()) | {"delivered", "read"}
    providers = (WEBJS, META, "unknown")
    snap = Snapshot(
        sessions={s.value: 1 for s in SessionState},
        queue_waiting={p: 1 for p in keys.PRIORITIES}, queue_pending={p: 1 for p in keys.PRIORITIES},
        messages={(s, p): 1 for s in statuses for p in providers},
        received={p: 1 for p in providers},
        events={t: 1 for t in EVENT_TYPES},
        histograms={name: Histogram(b, [1] * (len(b) + 1), 1.0, len(b) + 1) for name, b in HISTOGRAMS.items()},
        webhooks={"delivered": 1, "failed": 1, "retried": 1, "dead_letters": 1, "pending": 1},
    )
    text = render(snap, {"clients": 1, "feeds": 1, "asyncio_tasks": 1}, replica="1").decode()
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = out[sample.name]
            for name, value in sample.labels.items():
                labels[name].add(value)
    return {k: dict(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert isinstance(doc, dict) and set(doc) == {"groups"}, "a rule file is {groups: [...]}"
    out = []
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "query_offset"}, group.keys()
        assert isinstance(group["name"], str) and group["name"] not in names, "group names are unique"
        names.add(group["name"])
        if "interval" in group:
            assert DURATION.match(group["interval"])
        assert isinstance(group["rules"], list) and group["rules"]
        out += group["rules"]
    return out


def test_rule_structure(rules: list[dict]) -> None:
    seen = set()
    for rule in rules:
        assert set(rule) <= RULE_KEYS, f"unknown keys {set(rule) - RULE_KEYS}"
        assert "record" not in rule and {"alert", "expr"} <= set(rule.keys())
        name = rule["alert"]
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in seen, name
        seen.add(name)
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert isinstance(rule.get("for"), str) and DURATION.match(rule["for"]), f"{name}: for {rule.get('for')!r}"
        labels, annotations = rule.get("labels") or {}, rule.get("annotations") or {}
        assert all(isinstance(v, str) for v in [*labels.values(), *annotations.values()])
        assert labels.get("severity") in SEVERITIES, f"{name}: severity"
        assert annotations.get("summary") and annotations.get("description"), f"{name}: summary and description"
        assert annotations["description"].count("{{") == annotations["description"].count("}}")


def test_seed_thresholds_have_alerts(rules: list[dict]) -> None:
    by_name = {r["alert"]: " ".join(r["expr"].split()) for r in rules}
    for name, fragment in SEED.items():
        assert name in by_name, f"missing alert {name}"
        assert fragment in by_name[name], f"{name}: {fragment!r} not in {by_name[name]!r}"


def test_every_series_and_label_value_exists(rules: list[dict]) -> None:
    metrics = exposed()
    assert {"wa_sessions", "wa_messages_total", "wa_queue_depth", "wa_webhook_dead_letters",
            "wa_events_total"} <= metrics.keys(), "the renderer's names changed: update alerts.yml"
    used = set()
    for rule in rules:
        for sel in selectors(rule["expr"]):
            assert sel.metric, f"{rule['alert']}: a selector without a metric name"
            used.add(sel.metric)
            if sel.metric in EXTERNAL:
                assert {label for label, _, _ in sel.matchers} <= EXTERNAL[sel.metric]
                continue
            assert sel.metric in metrics, f"{rule['alert']}: {sel.metric} is not exposed by /metrics"
            labels = metrics[sel.metric]
            for label, op, value in sel.matchers:
                assert label in labels, f"{rule['alert']}: {sel.metric} has no label {label!r}"
                if op in ("=", "=~"):
                    wanted = value.split("|") if op == "=~" else [value]
                    unknown = [v for v in wanted if v not in labels[label]]
                    assert not unknown, f"{rule['alert']}: {sel.metric}{{{label}}} never takes {unknown}"
    assert used & EXTERNAL.keys() and used - EXTERNAL.keys()


def test_selector_reader() -> None:
    got = selectors('sum(max by (state) (wa_sessions{state=~"a|b", x!="y"})) / clamp_min(sum(rate(m_total[5m]) '
                    'offset 1h), 1) > 0.2 unless on (job) up == 0 and {__name__="z"}')
    assert [(s.metric, s.matchers) for s in got] == [
        ("wa_sessions", [("state", "=~", "a|b"), ("x", "!=", "y")]), ("m_total", []), ("up", []),
        (None, [("__name__", "=", "z")])]
    assert selectors("(1 - a / b) > 0.8") == [Selector("a"), Selector("b")]
    with pytest.raises(PromQLError):
        selectors("sum(rate(x[5m])")
