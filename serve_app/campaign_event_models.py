"""The payload of `campaign.progress` (actors/campaign_runner.py, serve_app/campaigns_api.py), as a schema.

Published at most every 2 s while a campaign runs and at every status change; `totals` is the same object
GET .../campaigns/{id} answers (serve_app/campaign_models.py). A workspace-wide event: `session_id` null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from wa_ray.serve_app.campaign_models import CampaignStatus, CampaignTotals, Waiting
from wa_ray.serve_app.event_models import _Envelope, _event_examples, _examples

_TOTALS = {"recipients": 1200, "pending": 700, "queued": 12, "sent": 180, "delivered": 210, "read": 90,
           "failed": 3, "replied": 14, "cancelled": 0}


class CampaignProgressData(BaseModel):
    model_config = _examples(
        {"campaign_id": "cmp_3f9a0c2b7d1e4a6c", "status": "running", "totals": _TOTALS, "eta_s": 1432.5},
        {"campaign_id": "cmp_3f9a0c2b7d1e4a6c", "status": "running", "totals": _TOTALS, "eta_s": 1432.5,
         "waiting": "plan_limit"},
        {"campaign_id": "cmp_3f9a0c2b7d1e4a6c", "status": "completed",
         "totals": {**_TOTALS, "pending": 0, "queued": 0, "sent": 0, "delivered": 1000, "read": 197},
         "eta_s": 0.0})
    campaign_id: str
    status: CampaignStatus
    totals: CampaignTotals
    eta_s: float | None = Field(description="seconds to finish at the numbers' pacing capacity; null: no number "
                                            "can send")
    waiting: Waiting | None = Field(default=None, description="why a running campaign feeds nothing now: outside "
                                    "its schedule, the plan's messages_per_day reached (until the next UTC day), "
                                    "or no usable number")


class CampaignProgressEvent(_Envelope):
    model_config = _event_examples("campaign.progress", CampaignProgressData, session_id=None)
    type: Literal["campaign.progress"]
    data: CampaignProgressData


CAMPAIGN_EVENT_MODELS: dict[str, type[_Envelope]] = {"campaign.progress": CampaignProgressEvent}
