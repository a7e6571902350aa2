"""Every event type's envelope model, in one map: what the OpenAPI document installs (serve_app/openapi.py).

DESIGN.md: every event type's `data` has a schema and an example in the OpenAPI document, so this map's
keys are wa_ray.events.EVENT_TYPES, no more and no fewer (tests/unit/test_event_models.py holds it to
that). It sits above the modules it gathers because sync_event_models imports conversation_models,
which imports event_models: gathering them in any one of those would be a circular import.
"""

from __future__ import annotations

from wa_ray.serve_app.campaign_event_models import CAMPAIGN_EVENT_MODELS
from wa_ray.serve_app.event_models import EVENT_MODELS, _Envelope
from wa_ray.serve_app.message_event_models import MESSAGE_EVENT_MODELS
from wa_ray.serve_app.risk_event_models import RISK_EVENT_MODELS
from wa_ray.serve_app.session_event_models import SESSION_EVENT_MODELS
from wa_ray.serve_app.sync_event_models import SYNC_EVENT_MODELS

# event type -> the envelope model that documents it
ALL_EVENT_MODELS: dict[str, type[_Envelope]] = {
    **EVENT_MODELS, **MESSAGE_EVENT_MODELS, **SESSION_EVENT_MODELS, **SYNC_EVENT_MODELS, **RISK_EVENT_MODELS,
    **CAMPAIGN_EVENT_MODELS}
