"""A session's states, as the design names them. Ground floor: the storage layer counts them (metrics), the
lifecycle moves between them, and neither may import the other's layer for it."""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    INITIALIZING = "initializing"
    QR_REQUIRED = "qr_required"
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    LOGGED_OUT = "logged_out"
    BLOCKED = "blocked"
    FAILED = "failed"
    STOPPED = "stopped"
