"""Two logical nodes (ray.cluster_utils.Cluster) with two session slots each: sessions spread, the node
limit holds, and removing a node moves its sessions to a node with room, reconnecting without QR."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
import ray
from ray.cluster_utils import Cluster

from wa_ray.simulator.wa_web.testing import running_web_simulator
from wa_ray.supervisors.placement import SLOT
from tests.scenarios.common import client, link_many, qr_events_since, scenario_settings, wait_all
from wa_ray import NAMESPACE, SUPERVISOR_NAME
from wa_ray.entry.service import Service

WS = "spread"


def run() -> dict:
    # The head holds the control plane and no session slots, so removing a worker never takes it down.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"control": 1}})
    node_a = cluster.add_node(num_cpus=1, resources={SLOT: 2})
    node_b = cluster.add_node(num_cpus=1, resources={SLOT: 2})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=NAMESPACE)
    result: dict = {}
    try:
        with running_web_simulator() as sim, tempfile.TemporaryDirectory() as tmp:
            # a cluster keeps auth state in Redis so any node can restore any session
            settings = scenario_settings(Path(tmp), sim.url + "/", ray_address=cluster.address, auth_store="redis",
                                         sessions_per_workspace=4)
            service = Service(settings).start()
            try:
                result = asyncio.run(_scenario(settings, sim.url, cluster, node_a, node_b))
            finally:
                service.stop()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    return result


async def _placements(supervisor) -> dict[str, str]:
    """The supervisor may be restarting (Ray restarts it wherever there is room): ask again."""
    for _ in range(120):
        try:
            return await supervisor.placements.remote()
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            await asyncio.sleep(0.5)
    return await supervisor.placements.remote()


async def _scenario(settings, sim_url, cluster, node_a, node_b) -> dict:
    supervisor = ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
    out: dict = {}
    async with client(settings) as api:
        phones = {f"m{i}": f"1555400{i:04d}" for i in range(4)}
        await link_many(api, sim_url, WS, phones)
        placed = await _placements(supervisor)
        per_node = Counter(placed.values())
        out["per_node_after_4"] = sorted(per_node.values())
        out["nodes_used"] = sorted(n[:8] for n in per_node)
        out["slot_nodes"] = sorted(n[:8] for n in (node_a.node_id, node_b.node_id))
        over_quota = await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": "m9"})
        out["fifth_in_workspace"] = [over_quota.status_code, over_quota.json()["error"]["code"]]
        no_room = await api.post("/v1/workspaces/other/sessions", json={"session_id": "o1"})
        out["fifth_status"] = no_room.status_code

        node_c = cluster.add_node(num_cpus=1, resources={SLOT: 2})
        cluster.wait_for_nodes()
        victims = sorted(k for k, n in placed.items() if n == node_a.node_id)
        mark_ms = int(time.time() * 1000)
        cluster.remove_node(node_a)
        started = time.monotonic()
        await wait_all(api, WS, "connected", 4, timeout=90)
        # wait until the victims really live elsewhere (the registry flips once the new actor is up)
        while True:
            placed = await _placements(supervisor)
            if all(placed.get(v) not in (None, node_a.node_id) for v in victims):
                break
            await asyncio.sleep(0.1)
        await wait_all(api, WS, "connected", 4, timeout=60)
        out["moved_s"] = round(time.monotonic() - started, 2)
        out["victims"] = victims
        out["victims_now_on_c"] = all(placed[v] == node_c.node_id for v in victims)
        out["qr_after_removal"] = await qr_events_since(api, WS, mark_ms)

        node_d = cluster.add_node(num_cpus=1, resources={SLOT: 2})
        cluster.wait_for_nodes()
        mark_ms = int(time.time() * 1000)
        started = time.monotonic()
        out["drained"] = await supervisor.drain_node.remote(node_c.node_id)
        await wait_all(api, WS, "connected", 4, timeout=90)
        placed = await _placements(supervisor)
        out["drain_s"] = round(time.monotonic() - started, 2)
        out["after_drain_on_d"] = sorted(k for k, n in placed.items() if n == node_d.node_id)
        out["qr_after_drain"] = await qr_events_since(api, WS, mark_ms)
    return out


if __name__ == "__main__":
    sys.stdout.write("RESULT " + orjson.dumps(run()).decode() + "\n")
