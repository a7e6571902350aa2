"""Fixtures of the PHP client tests: the API tests' keys on the shared live service, and a runner for `php`.

php-cli, Guzzle and phpunit come from Debian (scripts/bootstrap installs them); a machine without them fails
these tests rather than skipping them, since the client is only as good as the PHP that ran it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import key_store, live_redis, make_key, unique_ws  # noqa: F401

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "php"
PHP_TIMEOUT_S = 120


@dataclass(frozen=True)
class PhpRun:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def php_binary() -> str:
    found = shutil.which("php")
    assert found, "php is not installed: run scripts/bootstrap --tests (Debian php-cli, Guzzle, phpunit)"
    return found


PhpRunner = Callable[..., Awaitable[PhpRun]]


@pytest.fixture
def run_php() -> PhpRunner:
    """run_php(script, *args, env={...}) -> PhpRun; `script` relative to clients/php; never raises on exit."""

    async def run(script: str, *args: str, env: dict[str, str] | None = None) -> PhpRun:
        done = await asyncio.to_thread(
            subprocess.run, [php_binary(), str(CLIENT_DIR / script), *args], capture_output=True, text=True,
            timeout=PHP_TIMEOUT_S, env={**os.environ, **(env or {})}, cwd=CLIENT_DIR)
        return PhpRun(done.returncode, done.stdout, done.stderr)

    return run
