"""Every Redis key name in one place, so ownership and layout are reviewable."""

from __future__ import annotations

PREFIX = "wa"
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "bulk")


def events(ws: str) -> str:
    return f"{PREFIX}:events:{ws}"


def workspaces() -> str:
    return f"{PREFIX}:workspaces"


def session(ws: str, sid: str) -> str:
    return f"{PREFIX}:session:{ws}:{sid}"


def session_index(ws: str) -> str:
    return f"{PREFIX}:sessions:{ws}"


def all_sessions() -> str:
    return f"{PREFIX}:sessions:all"


def queue(ws: str, sid: str, priority: str) -> str:
    return f"{PREFIX}:q:{ws}:{sid}:{priority}"


def message(mid: str) -> str:
    return f"{PREFIX}:msg:{mid}"


def message_history(mid: str) -> str:
    return f"{PREFIX}:msg:{mid}:history"


def wa_message(wa_id: str) -> str:
    return f"{PREFIX}:wamsg:{wa_id}"


def idempotency(ws: str, key: str) -> str:
    return f"{PREFIX}:idem:{ws}:{key}"


def api_key(key_id: str) -> str:
    return f"{PREFIX}:apikey:{key_id}"


def nonce(key_id: str, value: str) -> str:
    return f"{PREFIX}:nonce:{key_id}:{value}"


def webhook(ws: str) -> str:
    return f"{PREFIX}:webhook:{ws}"


def webhook_workspaces() -> str:
    return f"{PREFIX}:webhook-workspaces"


def webhook_attempts(ws: str) -> str:
    return f"{PREFIX}:webhook-attempts:{ws}"


def dead_letters(ws: str) -> str:
    return f"{PREFIX}:dead-letters:{ws}"


def auth_state(ws: str, sid: str) -> str:
    return f"{PREFIX}:auth:{ws}:{sid}"


QUEUE_GROUP = "senders"
WEBHOOK_GROUP = "webhooks"
