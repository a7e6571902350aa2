"""Pydantic bodies of the phone-side control API (validation lives at the edge)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScanBody(_Body):
    qr: str = Field(min_length=1)
    pushname: str | None = None


class UnlinkBody(_Body):
    device_id: str | None = None


class SendBody(_Body):
    """A phone's text. `as_lid`: it arrives from the phone's @lid address (the chat of a 1:1, or the author in
    a group), as WhatsApp delivers LID-addressed messages; `pn_known`: the stanza names the phone behind the
    lid (`sender_pn` / `participant_pn`), so the receiving page learns it, else the page never can."""

    to: str
    body: str
    group_id: str | None = None
    type: str = "chat"
    as_lid: bool = False
    pn_known: bool = True

    @model_validator(mode="after")
    def _pn_needs_lid(self) -> SendBody:
        if "pn_known" in self.model_fields_set and not self.as_lid:
            raise ValueError("pn_known only applies with as_lid")
        return self


class PhoneConfigBody(_Body):
    """Partial update: only the fields present are changed. null = never for delays."""

    delivered_ms: int | None = Field(default=None, ge=0)
    read_ms: int | None = Field(default=None, ge=0)
    fail_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    latency_ms: int | None = Field(default=None, ge=0)
    pushname: str | None = None
    platform: str | None = None


class SimConfigBody(_Body):
    qr_first_ttl_s: float | None = Field(default=None, gt=0)
    qr_next_ttl_s: float | None = Field(default=None, gt=0)
    qr_max_refs: int | None = Field(default=None, ge=0)
    max_devices: int | None = Field(default=None, ge=1)
    logout_reload_ms: int | None = Field(default=None, ge=0)
    sync_delay_ms: int | None = Field(default=None, ge=0)
    sync_fallback_ms: int | None = Field(default=None, ge=0)
    reconnect_ms: int | None = Field(default=None, ge=0)
    default_delivered_ms: int | None = Field(default=None, ge=0)
    default_read_ms: int | None = Field(default=None, ge=0)
    page_cost: Literal["light", "heavy"] | None = None
    heavy_devices: int | None = Field(default=None, ge=1, le=16)


class DropBody(_Body):
    seconds: float = Field(default=5.0, ge=0, le=3600)


class ConflictBody(_Body):
    """`seconds`: how long the other WhatsApp Web keeps taking the account back (0: it lets go at once)."""

    seconds: float = Field(default=0.0, ge=0, le=3600)


class BanBody(_Body):
    banned: bool = True


class PairingCodeBody(_Body):
    code: str = Field(min_length=8, max_length=9)
