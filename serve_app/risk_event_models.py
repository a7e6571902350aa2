"""The payload of `session.ban_risk` (SSE `data:` and webhook bodies), as a schema.

A number's sender (actors/ban_risk_gate.py) scores it after its sends (storage/ban_risk.py has the
weights) and publishes `session.ban_risk` once each time the score crosses one of the workspace's
`warn_at` thresholds upwards; it fires again only after the score fell below that threshold. Documents
what the publisher sends; not on the publishing path. Output models allow extra fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from wa_ray.serve_app.event_models import _Envelope, _event_examples, _examples

_FACTORS = ("points each factor adds to the score (each bounded by its weight): `send_rate` (25), "
            "`new_contacts` (30), `failed` (15), `refused` (15), `few_replies` (15)")


class SessionBanRiskData(BaseModel):
    """The number's ban-risk score crossed a warning threshold upwards."""

    model_config = _examples(
        {"score": 72.5, "level": "warning", "threshold": 70,
         "factors": {"send_rate": 20.0, "new_contacts": 30.0, "failed": 7.5, "refused": 0.0, "few_replies": 15.0}},
        {"score": 93.0, "level": "critical", "threshold": 90,
         "factors": {"send_rate": 25.0, "new_contacts": 30.0, "failed": 15.0, "refused": 8.0, "few_replies": 15.0}})
    score: float = Field(ge=0, le=100, description="the ban-risk score now, 0..100")
    level: Literal["warning", "critical"] = Field(
        description="`critical` for the highest of several thresholds or one at or above `pause_at`")
    threshold: int = Field(ge=1, le=100, description="the `warn_at` value crossed")
    factors: dict[str, float] = Field(description=_FACTORS)


class SessionBanRiskEvent(_Envelope):
    model_config = _event_examples("session.ban_risk", SessionBanRiskData)
    type: Literal["session.ban_risk"]
    data: SessionBanRiskData


RISK_EVENT_MODELS: dict[str, type[_Envelope]] = {"session.ban_risk": SessionBanRiskEvent}
