"""When a session retries a WhatsApp-side disconnect, and what it says when it gives up. Pure: no I/O.

WhatsApp drops a linked page for three reasons the page reports as its socket state:

* `CONFLICT`: another WhatsApp Web took the account over;
* `UNLAUNCHED`: WhatsApp Web was opened in another tab of the browser;
* `TIMEOUT`: the socket to WhatsApp was lost (the page reconnects by itself, usually within seconds).

The first two are answered with a takeover (what whatsapp-web.js's `takeoverOnConflict` does), the third,
once it outlasts a grace, with a reopen of the page from its saved auth state. Attempts back off (2, 4, 8,
16, 30, 30, ... s): a flapping account hammered with takeovers looks like automation, which is a ban risk.
The whole episode is bounded: from the disconnect, at most `budget_s` (WA_DISCONNECT_RETRY_S), after which
the session is `failed` with a reason naming the cause; a user restarts it (POST .../restart).
"""

from __future__ import annotations

from enum import StrEnum

FIRST_DELAY_S = 2.0
MAX_DELAY_S = 30.0


class DisconnectCause(StrEnum):
    CONFLICT = "conflict"
    UNLAUNCHED = "unlaunched"
    TIMEOUT = "timeout"

    @property
    def takes_over(self) -> bool:
        """Answered by a takeover of the page's own socket; a lost socket is answered by a reopen."""
        return self is not DisconnectCause.TIMEOUT


# The page's socket states that start (or continue) a retry episode.
SOCKET_CAUSES: dict[str, DisconnectCause] = {
    "CONFLICT": DisconnectCause.CONFLICT,
    "UNLAUNCHED": DisconnectCause.UNLAUNCHED,
    "TIMEOUT": DisconnectCause.TIMEOUT,
}

_GAVE_UP = {
    DisconnectCause.CONFLICT: "conflict: another WhatsApp Web took over and takeover did not succeed within {}",
    DisconnectCause.UNLAUNCHED: "unlaunched: WhatsApp Web was opened elsewhere and takeover did not succeed within {}",
    DisconnectCause.TIMEOUT: "timeout: the connection to WhatsApp stayed lost and reopening did not restore it "
                             "within {}",
}


def attempt_offsets(budget_s: float, start_s: float = 0.0, first_s: float = FIRST_DELAY_S,
                    max_s: float = MAX_DELAY_S) -> list[float]:
    """Seconds after the disconnect at which to attempt a recovery: `start_s` (a grace) plus delays
    doubling from `first_s` up to `max_s`, every one strictly before `budget_s`.

    Invariants: strictly increasing, all in (start_s, budget_s), consecutive gaps never above `max_s`;
    empty when the budget ends before the first attempt."""
    if first_s <= 0 or max_s < first_s:
        raise ValueError("delays must be positive and first_s <= max_s")
    offsets: list[float] = []
    at, delay = start_s, first_s
    while at + delay < budget_s:
        at += delay
        offsets.append(at)
        delay = min(delay * 2, max_s)
    return offsets


def gave_up_reason(cause: DisconnectCause, budget_s: float) -> str:
    """The `failed` state's reason: which disconnect, and the bound that passed."""
    return _GAVE_UP[cause].format(f"{budget_s:g} s")
