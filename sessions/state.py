"""The page signals that move a session between its states (wa_ray/states.py, re-exported here), and how
WhatsApp Web's socket states map onto them."""

from __future__ import annotations

from enum import StrEnum

from wa_ray.states import SessionState

__all__ = ["LIFECYCLE_SIGNALS", "MESSAGE_CHANGE_SIGNALS", "SENDABLE", "SOCKET_STATES", "UNSENDABLE_SIGNALS",
           "PageSignal", "SessionState"]


# Socket.state values of WhatsApp Web (see WWEBJS_SURFACE.md) -> our state.
SOCKET_STATES: dict[str, SessionState] = {
    "OPENING": SessionState.INITIALIZING,
    "PAIRING": SessionState.AUTHENTICATING,
    "UNPAIRED": SessionState.QR_REQUIRED,
    "UNPAIRED_IDLE": SessionState.QR_REQUIRED,
    "CONNECTED": SessionState.CONNECTED,
    "TIMEOUT": SessionState.RECONNECTING,
    "CONFLICT": SessionState.DISCONNECTED,
    "UNLAUNCHED": SessionState.DISCONNECTED,
    "DEPRECATED_VERSION": SessionState.FAILED,
    "PROXYBLOCK": SessionState.BLOCKED,
    "SMB_TOS_BLOCK": SessionState.BLOCKED,
    "TOS_BLOCK": SessionState.BLOCKED,
}


class PageSignal(StrEnum):
    """What a page reports: the bridge's `__warayEmit` kinds (sessions/bridge.js), and `crash`/`page_closed`
    from the browser's own page events."""

    BOOT = "boot"
    STATE = "state"
    QR = "qr"
    READY = "ready"
    LOGOUT = "logout"
    ERROR = "error"
    MESSAGE = "message"
    ACK = "ack"
    REACTION = "reaction"  # someone reacted to a message, or removed their reaction (emoji "")
    REVOKE = "revoke"  # the sender deleted a message for everyone
    EDIT = "edit"  # the sender edited a message's text or caption
    CRASH = "crash"
    PAGE_CLOSED = "page_closed"


# What happened to a message already there: each becomes an event of its own (actors/inbound_webjs.py).
MESSAGE_CHANGE_SIGNALS = frozenset({PageSignal.REACTION, PageSignal.REVOKE, PageSignal.EDIT})
# The signals the session's lifecycle owner hears; messages, acks and message changes are the data plane's.
LIFECYCLE_SIGNALS = frozenset(set(PageSignal) - {PageSignal.MESSAGE, PageSignal.ACK} - MESSAGE_CHANGE_SIGNALS)
# The signals after which the page cannot send until it is linked again.
UNSENDABLE_SIGNALS = frozenset({PageSignal.LOGOUT, PageSignal.CRASH, PageSignal.PAGE_CLOSED})

# Sessions in these states have a page that can send.
SENDABLE = frozenset({SessionState.CONNECTED})
