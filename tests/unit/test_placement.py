import pytest

from wa_ray.supervisors.placement import SLOT, NodeSlots, PlacementError, least_loaded, nodes_from_ray


def _node(node_id: str, slots: int | None, alive: bool = True) -> dict:
    return {"NodeID": node_id, "Alive": alive, "Resources": {"CPU": 1.0, **({SLOT: float(slots)} if slots else {})}}


def test_only_slot_nodes_host_sessions_when_any_advertises() -> None:
    nodes = nodes_from_ray([_node("head", None), _node("a", 2), _node("b", 3), _node("dead", 9, alive=False)], 50)
    assert nodes == [NodeSlots("a", 2), NodeSlots("b", 3)]


def test_without_slot_resources_every_node_gets_the_default() -> None:
    assert nodes_from_ray([_node("x", None)], 50) == [NodeSlots("x", 50)]


def test_least_loaded_spreads_and_refuses_when_full() -> None:
    nodes = [NodeSlots("a", 2), NodeSlots("b", 2)]
    placed: list[str] = []
    for _ in range(4):
        placed.append(least_loaded(nodes, placed))
    assert sorted(placed) == ["a", "a", "b", "b"]
    with pytest.raises(PlacementError):
        least_loaded(nodes, placed)
    assert least_loaded(nodes, ["a"], exclude=frozenset({"b"})) == "a"
