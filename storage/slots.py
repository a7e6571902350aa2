"""Which keys may share one command on a Redis Cluster: those of one hash slot.

A multi-key command (XREAD, XREADGROUP over several streams) whose keys hash to several slots is refused by a
cluster, even when one node holds them all; the readers of many workspaces' streams split their streams with
`by_slot` there. On a single Redis slots do not matter: they read everything in one command.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.crc import key_slot

GLOB = "*?[\\"


def slot_of(key: str | bytes) -> int:
    return key_slot(key if isinstance(key, bytes) else key.encode())


def by_slot(keys: Iterable[str]) -> list[list[str]]:
    """`keys` in groups of one slot each: the groups in the order of their first key, each group in the
    order given (a reader's priority order survives)."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(slot_of(key), []).append(key)
    return list(groups.values())


def pattern_tag(pattern: str) -> str | None:
    """The hash tag (`{acme}`) of every key a SCAN `pattern` can match, when its literal start holds a whole
    one (`wa:{acme}:msg:*`, `wa:{k:id}:nonce:*`): they all lie in that tag's slot. None when matching keys
    may lie anywhere.

    Redis hashes a key by the text between its first `{` and the first `}` after it, when that is not empty.
    A key matching the pattern starts with the pattern's literal prefix, so when that prefix already holds
    a `{`, then a `}`, with something between, that text is every matching key's tag."""
    literal = pattern
    for i, char in enumerate(pattern):
        if char in GLOB:
            literal = pattern[:i]
            break
    start = literal.find("{")
    end = literal.find("}", start + 1) if start >= 0 else -1
    if start < 0 or end <= start + 1:
        return None
    return literal[start:end + 1]
