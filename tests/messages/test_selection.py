"""The provider rule (pure) and the Meta signature check."""

from __future__ import annotations

import hashlib
import hmac

from wa_ray.serve_app.meta_webhooks import signature_ok
from wa_ray.serve_app.provider_selector import choose


def test_priority_health_and_override() -> None:
    assert choose("webjs", None, True, True) == "webjs"
    assert choose("webjs", None, False, True) == "meta"  # failover
    assert choose("meta", None, True, True) == "meta"
    assert choose("meta", None, True, False) == "webjs"  # breaker open: back to the web session
    assert choose("meta", None, False, False) is None
    assert choose("webjs", "meta", True, False) == "meta"  # a manual override wins over health
    assert choose("meta", "webjs", False, True) == "webjs"


def test_meta_signature_is_checked_on_raw_bytes() -> None:
    body = b'{"a":"ol\\u00e1 \\/x"}'
    good = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert signature_ok("app-secret", body, good)
    assert not signature_ok("app-secret", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("app-secret", body, None)
    assert not signature_ok("app-secret", body, good.replace("sha256=", "sha1="))
