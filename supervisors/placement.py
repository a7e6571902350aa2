"""Placement: which node gets the next session. Pure, so it is testable without Ray."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

SLOT = "wa_session_slot"


class PlacementError(RuntimeError):
    """Every eligible node is at its session limit."""


class QuotaExceeded(RuntimeError):
    """The workspace already has as many sessions as it may."""


@dataclass(frozen=True)
class NodeSlots:
    node_id: str
    capacity: int


def nodes_from_ray(ray_nodes: Iterable[dict], default_capacity: int) -> list[NodeSlots]:
    """Alive nodes and their session capacity (the `wa_session_slot` they advertise).

    Where some nodes advertise slots, only those host sessions (a head node without slots keeps the
    control plane to itself); a cluster where none does gets `default_capacity` on every node."""
    alive = [n for n in ray_nodes if n.get("Alive")]
    with_slots = [n for n in alive if n["Resources"].get(SLOT)]
    if with_slots:
        return [NodeSlots(n["NodeID"], int(n["Resources"][SLOT])) for n in with_slots]
    return [NodeSlots(n["NodeID"], default_capacity) for n in alive]


def least_loaded(nodes: list[NodeSlots], placed: Iterable[str], exclude: frozenset[str] = frozenset()) -> str:
    """The node with most free slots; ties go to the first listed (stable)."""
    used = Counter(placed)
    best, best_free = None, 0
    for node in nodes:
        if node.node_id in exclude:
            continue
        free = node.capacity - used[node.node_id]
        if free > best_free:
            best, best_free = node.node_id, free
    if best is None:
        raise PlacementError("every node is at its session limit")
    return best
