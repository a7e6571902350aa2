"""The keys of XREAD and XREADGROUP, found in the client so a Redis Cluster client need not ask a server.

redis-py's cluster client routes a command by the slot of its keys. It reads most commands' keys from the key
specifications of `COMMAND`, but XREAD and XREADGROUP find theirs after the keyword STREAMS, a search redis-py
8.2 leaves to the server: each call costs a `COMMAND GETKEYS` round trip before the command itself. Our hot
path reads streams all the time (the watch, the consumers, the event feed), so on a cluster that was 5.7 extra
round trips per message (bench/results/experiments/throughput-cluster-20261207/getkeys_probe.py).

`StreamReadKeysParser` answers those two commands itself, the way the server does (Redis 7's key specs: the
keyword STREAMS searched forward from argument 1 for XREAD and from argument 4 for XREADGROUP, after
`GROUP group consumer`; the keys are the first half of what follows), and hands every other command to
redis-py. An argument list the server would reject (no STREAMS, an odd count after it) goes to the server too,
so the error is the server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis._parsers import AsyncCommandsParser

# where the server starts looking for the keyword STREAMS (COMMAND INFO's begin_search.keyword.startfrom)
STREAMS_SEARCH_FROM = {"xread": 1, "xreadgroup": 4}


def _text(arg: Any) -> str:
    return arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)


def stream_read_keys(args: Sequence[Any]) -> list[Any] | None:
    """The keys of an XREAD / XREADGROUP argument list (command name first), or None when this is another
    command or an argument list the server would reject."""
    if not args:
        return None
    start = STREAMS_SEARCH_FROM.get(_text(args[0]).lower())
    if start is None:
        return None
    for at in range(start, len(args)):
        if _text(args[at]).upper() == "STREAMS":
            rest = args[at + 1:]
            if not rest or len(rest) % 2:
                return None
            return list(rest[: len(rest) // 2])
    return None


class StreamReadKeysParser(AsyncCommandsParser):
    """redis-py's asynchronous commands parser, with XREAD and XREADGROUP keys found locally."""

    async def get_keys(self, *args: Any) -> Any:
        keys = stream_read_keys(args)
        if keys is not None:
            return keys
        return await super().get_keys(*args)
