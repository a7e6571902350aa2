"""Registered business phone numbers and the access tokens that may use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from wa_ray.simulator.cloud_api.config import PhoneNumber


class TokenCheck(Enum):
    OK = "ok"
    INVALID = "invalid"
    EXPIRED = "expired"
    NOT_ALLOWED = "not_allowed"


@dataclass
class Registry:
    phones: dict[str, PhoneNumber] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def register(self, phone: PhoneNumber) -> None:
        self.phones[phone.phone_number_id] = phone
        self.revoked.discard(phone.access_token)

    def revoke(self, access_token: str) -> None:
        self.revoked.add(access_token)

    def check(self, access_token: str | None, phone_number_id: str) -> TokenCheck:
        if not access_token:
            return TokenCheck.INVALID
        if access_token in self.revoked:
            return TokenCheck.EXPIRED
        known = {p.access_token for p in self.phones.values()}
        if access_token not in known:
            return TokenCheck.INVALID
        phone = self.phones.get(phone_number_id)
        # A valid token aimed at someone else's number gets the same answer as
        # an unknown number: Graph does not reveal which objects exist.
        if phone is None or phone.access_token != access_token:
            return TokenCheck.NOT_ALLOWED
        return TokenCheck.OK
