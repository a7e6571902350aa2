"""WhatsApp's own ids of chats and users, as the API accepts and reports them. Ground floor: the API
validates them, the page layer turns them into wids, and the actors read them out of page reports.

A WhatsApp id is `<user>@<server>`:

* `15551234567@c.us`: a phone number's user (the number is the user part).
* `120363012345678901@g.us` (or the older `15551234567-1600000000@g.us`): a group.
* `123456789012345@lid`: a "linked id", WhatsApp's newer opaque address for a user. It is NOT a phone
  number and is never turned into one here; the page may know the number behind it, and only then do
  we report that number.

Invariant: `phone_of` answers a number only for a `@c.us` id; every other id yields None.
"""

from __future__ import annotations

import re

USER_SERVER = "c.us"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"

# Bounded and anchored: a chat id reaches page code (as an argument, never as source text) and paths.
CHAT_ID_PATTERN = r"^(?:[1-9][0-9]{4,19}@c\.us|[0-9]{5,20}(?:-[0-9]{1,20})?@g\.us|[0-9]{1,20}@lid)$"
GROUP_ID_PATTERN = r"^[0-9]{5,20}(?:-[0-9]{1,20})?@g\.us$"
LID_PATTERN = r"^[0-9]{1,20}@lid$"

_CHAT_ID = re.compile(CHAT_ID_PATTERN)
_GROUP_ID = re.compile(GROUP_ID_PATTERN)
_LID = re.compile(LID_PATTERN)


def is_chat_id(value: object) -> bool:
    return isinstance(value, str) and _CHAT_ID.fullmatch(value) is not None


def is_group_id(value: object) -> bool:
    return isinstance(value, str) and _GROUP_ID.fullmatch(value) is not None


def is_lid(value: object) -> bool:
    return isinstance(value, str) and _LID.fullmatch(value) is not None


def user_id(number: str) -> str:
    """The WhatsApp id of a phone number (digits)."""
    return f"{number}@{USER_SERVER}"


def phone_of(wid: object) -> str | None:
    """The phone number of a `@c.us` id; None for a group, a `@lid` or anything else."""
    if not isinstance(wid, str) or "@" not in wid:
        return None
    user, server = wid.split("@", 1)
    return user if server == USER_SERVER and user.isdigit() else None


def recipient_id(to: str) -> str:
    """The chat id a send goes to: a phone number (digits) becomes its `@c.us` id; a WhatsApp id (a group,
    a `@lid`) is already one."""
    return to if "@" in to else user_id(to)
