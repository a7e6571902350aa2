"""wa-ray: WhatsApp Web sessions as Ray actors behind Ray Serve."""

NAMESPACE = "wa-ray"
SUPERVISOR_NAME = "session-supervisor"
DISPATCHER_NAME = "webhook-dispatcher"


def browser_host_name(node_id: str) -> str:
    """The named BrowserHost of a node (one per node, made by the supervisor; the registry names a
    session's node)."""
    return f"browser-host:{node_id[:16]}"


def session_actor_name(ws: str, sid: str) -> str:
    return f"session:{ws}:{sid}"
