"""Fixtures of the attack suite: the API tests' keys, signed clients and raw access, against the live service.

Every test here attacks the running service over real HTTP on loopback, as a caller holding only a
workspace key (or nothing) would.
"""

from tests.api.conftest import client_for, key_store, live_redis, make_key, raw, unique_ws  # noqa: F401
from tests.messages.conftest import cloud_sim, meta_app  # noqa: F401,E402  (the Cloud API simulator)
