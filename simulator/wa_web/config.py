"""Tunables of the WhatsApp Web simulator (plain dataclasses: no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass

# A Comet-era version string: whatsapp-web.js treats `x.3000.y` as "Comet or
# above" and compares it against thresholds like 2.3000.1014111620.
DEFAULT_VERSION = "2.3000.1019999999"


@dataclass
class SimConfig:
    """Simulator-wide settings. Mutable at runtime through PUT /_sim/config."""

    # QR rotation, mirroring the real page: the first ref lives longer than
    # the following ones, and after a few refs the page gives up (UNPAIRED_IDLE).
    qr_first_ttl_s: float = 60.0
    qr_next_ttl_s: float = 20.0
    qr_max_refs: int = 6
    version: str = DEFAULT_VERSION
    # Real WhatsApp allows four companion devices per phone.
    max_devices: int = 4
    # After a phone-side unlink the real page navigates to `/?post_logout=1`
    # (whatsapp-web.js keys its LOGOUT event on that). None keeps the page.
    logout_reload_ms: int | None = 300
    # hasSynced flips this long after CONNECTED once someone listens for it;
    # if nobody ever listens it flips anyway after sync_fallback_ms.
    sync_delay_ms: int = 30
    sync_fallback_ms: int = 10_000
    # How long a dropped page waits before it tries the WebSocket again.
    reconnect_ms: int = 500
    # Defaults for phones that never got PUT /_phone/{n}/config.
    default_delivered_ms: int | None = 50
    default_read_ms: int | None = 150
    # What a page spends per message. "light": next to nothing (the default: tests stay fast).
    # "heavy" (static/heavy.js): what WhatsApp Web spends and the light page does not, so a bench can
    # report figures closer to the real site: a Signal-style encryption per recipient device (HKDF,
    # AES, HMAC in WebCrypto), an IndexedDB write per message and per ack, a synchronous chat-list
    # re-render with layout. Pages already open switch when the config changes.
    page_cost: str = "light"
    heavy_devices: int = 3  # devices a message is encrypted for: the recipient's two and our own phone


@dataclass
class PhoneConfig:
    """Per-phone behaviour. Delays count from the moment the server got the send.

    delivered_ms / read_ms: when this phone (as a recipient) sends ack 2 / 3;
    None means never. fail_rate: probability that a message *to* this phone
    fails (ack -1, not stored in the inbox). latency_ms: extra one-way delay
    on everything that goes to or from this phone's linked devices.
    """

    delivered_ms: int | None = 50
    read_ms: int | None = 150
    fail_rate: float = 0.0
    latency_ms: int = 0
    pushname: str | None = None
    platform: str = "android"
