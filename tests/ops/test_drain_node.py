"""deploy/drain_node.py: node lookup and listing (the Ray calls themselves are the supervisor's
drain_node/undrain_node, exercised by tests/scenarios/multinode.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wa_ray.supervisors.placement import SLOT
from wa_ray import NAMESPACE, SUPERVISOR_NAME

PATH = Path(__file__).resolve().parents[2] / "deploy" / "drain_node.py"
spec = importlib.util.spec_from_file_location("drain_node", PATH)
drain = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(drain)  # type: ignore[union-attr]

NODES = [
    {"NodeID": "aaaa1111", "Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 2.0}},
    {"NodeID": "bbbb2222", "Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {SLOT: 50.0}},
    {"NodeID": "bbbb3333", "Alive": True, "NodeManagerAddress": "10.0.0.3", "Resources": {SLOT: 50.0}},
    {"NodeID": "cccc4444", "Alive": False, "NodeManagerAddress": "10.0.0.4", "Resources": {SLOT: 50.0}},
]


def test_names_match_the_service() -> None:
    assert (drain.SUPERVISOR_NAME, drain.NAMESPACE, drain.SLOT) == (SUPERVISOR_NAME, NAMESPACE, SLOT)


def test_resolve_by_ip_or_unique_prefix() -> None:
    assert drain.resolve_node(NODES, "10.0.0.2") == "bbbb2222"
    assert drain.resolve_node(NODES, "bbbb3") == "bbbb3333"
    for needle in ("bbbb", "cccc", "10.0.0.4", "zz", ""):  # ambiguous, dead, unknown
        with pytest.raises(SystemExit):
            drain.resolve_node(NODES, needle)


def test_listing_counts_sessions_per_node() -> None:
    lines = drain.describe(NODES, {"ws/a": "bbbb2222", "ws/b": "bbbb2222", "ws/c": "bbbb3333"})
    assert len(lines) == 3
    assert "sessions 2/50" in lines[1] and "sessions 1/50" in lines[2] and "sessions 0/-" in lines[0]


def test_needs_a_node_or_list() -> None:
    with pytest.raises(SystemExit):
        drain.main([])
