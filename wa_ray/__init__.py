"""wa-ray: WhatsApp Web sessions as Ray actors behind Ray Serve."""

NAMESPACE = "wa-ray"
SUPERVISOR_NAME = "session-supervisor"
DISPATCHER_NAME = "webhook-dispatcher"


def session_actor_name(ws: str, sid: str) -> str:
    return f"session:{ws}:{sid}"
