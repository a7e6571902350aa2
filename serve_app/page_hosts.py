"""A replica's BrowserHost handles by node id: the one way the ingress reaches a node's pages.

Looking an actor up by name is a blocking GCS call, so a handle is looked up once and kept. Invariants:
* `get` never starts Ray: without a Ray connection it answers None (ray.get_actor would start a whole
  local cluster rather than fail), as it does when the node has no BrowserHost.
* A handle that answered RayActorError (its host died or was restarted) is `forget`-ten by the caller, so
  the next `get` looks the host up again and finds the new one.
"""

from __future__ import annotations

from typing import Any

import ray

from wa_ray import NAMESPACE, browser_host_name


class PageHosts:
    def __init__(self) -> None:
        self._by_node: dict[str, Any] = {}

    def get(self, node_id: str) -> Any | None:
        """The BrowserHost handle of `node_id`; None when Ray is not connected or the node has no host."""
        if not ray.is_initialized():
            return None
        host = self._by_node.get(node_id)
        if host is None:
            try:
                host = ray.get_actor(browser_host_name(node_id), namespace=NAMESPACE)
            except ValueError:
                return None
            self._by_node[node_id] = host
        return host

    def forget(self, node_id: str) -> None:
        """Drop the kept handle of `node_id` (its actor is gone); the next `get` looks it up again."""
        self._by_node.pop(node_id, None)
