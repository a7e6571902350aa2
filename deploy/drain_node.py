"""Drain a Ray node of its WhatsApp sessions before taking it down (or undrain it).

    python deploy/drain_node.py 10.0.1.23            # by node IP
    python deploy/drain_node.py 5f0c2a                # by a unique node-id prefix
    python deploy/drain_node.py --undrain 10.0.1.23
    python deploy/drain_node.py --list

Run it where Ray runs (`RAY_ADDRESS`, default "auto": a node of the cluster; `ray exec cluster.yaml
'python ~/wa-ray/deploy/drain_node.py ...'` or `kubectl exec` into the head pod). Draining marks the
node so the SessionSupervisor places nothing new there, stops each of its sessions and reopens it on
the least-loaded other node from the saved auth state (no QR). Then stop Ray on the node
(`ray stop`, or scale the worker group down). A drain lasts until --undrain or a supervisor restart.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

SUPERVISOR_NAME, NAMESPACE, SLOT = "session-supervisor", "wa-ray", "wa_session_slot"  # = wa_ray.*, placement.SLOT


def resolve_node(nodes: list[dict[str, Any]], needle: str) -> str:
    """The id of the alive node whose IP is `needle` or whose id starts with it (exactly one)."""
    alive = [n for n in nodes if n.get("Alive")]
    by_ip = [n["NodeID"] for n in alive if n.get("NodeManagerAddress") == needle]
    matches = by_ip or [n["NodeID"] for n in alive if needle and n["NodeID"].startswith(needle)]
    if len(matches) != 1:
        known = ", ".join(f"{n['NodeID'][:12]} ({n.get('NodeManagerAddress')})" for n in alive)
        raise SystemExit(f"{'no' if not matches else 'more than one'} alive node matches {needle!r}; alive: {known}")
    return matches[0]


def describe(nodes: list[dict[str, Any]], placed: dict[str, str]) -> list[str]:
    counts: dict[str, int] = {}
    for node in placed.values():
        counts[node] = counts.get(node, 0) + 1
    lines = []
    for n in nodes:
        if n.get("Alive"):
            slots = int(n.get("Resources", {}).get(SLOT, 0))
            lines.append(f"{n['NodeID'][:12]}  {n.get('NodeManagerAddress', '?'):15}  "
                         f"sessions {counts.get(n['NodeID'], 0)}/{slots if slots else '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node", nargs="?", help="node IP or node-id prefix")
    parser.add_argument("--undrain", action="store_true", help="let the supervisor place sessions there again")
    parser.add_argument("--list", action="store_true", help="show nodes and their sessions")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "auto"))
    args = parser.parse_args(argv)
    if not args.list and not args.node:
        parser.error("give a node (IP or id prefix) or --list")

    import ray

    ray.init(address=args.address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
    supervisor = ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
    nodes = ray.nodes()
    if args.list:
        print("\n".join(describe(nodes, ray.get(supervisor.placements.remote()))))
        return 0
    node_id = resolve_node(nodes, args.node)
    if args.undrain:
        ray.get(supervisor.undrain_node.remote(node_id))
        print(f"{node_id[:12]}: accepts sessions again")
    else:
        moved = ray.get(supervisor.drain_node.remote(node_id))
        print(f"{node_id[:12]}: drained, {moved} session(s) moved; stop Ray on it now")
    return 0


if __name__ == "__main__":
    sys.exit(main())
