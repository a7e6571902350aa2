"""`WA_SESSION_HOSTING=host` (grains in the node's BrowserHost, the density option) stays supported now that a
SessionActor per session is the default: the lifecycle, exactly-once and sender-incarnation tests run again
with it, in a pytest of their own (one Ray cluster per process). Some of their cases need a SessionActor to
kill or to own a page and skip under `host`; the rest must pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.own_cluster

ROOT = Path(__file__).resolve().parents[2]
# (tests/messages/test_sender_incarnations.py drives a SessionActor owner: nothing of it runs under `host`)
MODULES = ("tests/integration/test_session_lifecycle.py", "tests/messages/test_exactly_once.py")


@pytest.mark.timeout(900)
def test_lifecycle_and_exactly_once_with_grains_in_the_browser_host() -> None:
    # no test of these modules reads Ray's dashboard (tests/integration/test_dashboard.py does, on the
    # shared service): off, it takes seconds of the two cores less to start
    env = {**os.environ, "WA_SESSION_HOSTING": "host", "WA_DASHBOARD": "0"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *MODULES],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, stdin=subprocess.DEVNULL)
    print(proc.stdout[-2000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    summary = proc.stdout.splitlines()[-1]
    assert " passed" in summary, summary
