"""What a SessionActor process loads. Ray imports an actor class's module in every process that holds a handle
to it, so the modules of the SessionActor and of the BrowserHost it holds a handle to decide its memory: they
must not pull in the data plane (Playwright, Redis, cryptography, httpx), which only the host process runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("playwright", "redis", "cryptography", "httpx", "opentelemetry")


def test_the_session_actor_and_the_browser_host_handle_import_nothing_heavy() -> None:
    probe = (
        "import sys, ray\n"
        "before = {m.split('.')[0] for m in sys.modules}\n"
        "import wa_ray.actors.session_actor, wa_ray.actors.browser_host\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert not set(out) & set(HEAVY), out
    assert "wa_ray" in out  # the probe did import them
