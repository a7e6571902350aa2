"""`WA_SESSION_HOSTING=actor` (a SessionActor process per session) stays supported: the lifecycle, the
exactly-once crash and the sender-incarnation tests run again with it, in a pytest of their own (one Ray
cluster per process). (The chaos suite runs with actor hosting already.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("tests/integration/test_session_lifecycle.py", "tests/messages/test_exactly_once.py",
           "tests/messages/test_sender_incarnations.py")


@pytest.mark.timeout(900)
def test_lifecycle_and_exactly_once_with_a_session_actor_each() -> None:
    env = {**os.environ, "WA_SESSION_HOSTING": "actor"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *MODULES],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, stdin=subprocess.DEVNULL)
    print(proc.stdout[-2000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " skipped" not in proc.stdout.splitlines()[-1], "with actor hosting nothing is skipped"
