"""The campaign tests use the API tests' live Redis client (diagnostics read message records straight)."""

from tests.api.conftest import live_redis  # noqa: F401
