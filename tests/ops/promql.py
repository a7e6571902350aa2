"""Just enough PromQL reading to find the series selectors of an expression (no evaluation).

`selectors("sum(rate(wa_x_total{a=\"b\"}[5m])) > 0")` -> [Selector("wa_x_total", [("a", "=", "b")])].
Function and aggregation names, grouping clauses (by/without/on/ignoring/group_left/group_right),
keywords, numbers, durations in [..] and string literals are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"})
# aggregation operators may put `by (...)` / `without (...)` between their name and their argument
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


@dataclass
class Selector:
    metric: str | None
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


class PromQLError(ValueError):
    pass


def _skip_string(s: str, i: int) -> int:
    quote = s[i]
    i += 1
    while i < len(s) and s[i] != quote:
        i += 2 if s[i] == "\\" else 1
    if i >= len(s):
        raise PromQLError(f"unterminated string in {s!r}")
    return i + 1


def _closing(s: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket matching s[i] (== open_), skipping strings."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_string(s, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromQLError(f"unbalanced {open_}{close} in {s!r}")


def _matchers(body: str) -> list[tuple[str, str, str]]:
    out, pos = [], 0
    body = body.strip()
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if not m:
            raise PromQLError(f"bad label matchers {{{body}}}")
        out.append((m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    return out


def selectors(expr: str) -> list[Selector]:
    check_balanced(expr)
    out: list[Selector] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":
            i = _closing(expr, i, "[", "]")
        elif c == "{":
            end = _closing(expr, i, "{", "}")
            out.append(Selector(None, _matchers(expr[i + 1:end - 1])))
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = _NUMBER.match(expr, i)
            i = m.end() if m else i + 1
            while i < n and expr[i].isalpha():  # a duration unit after `offset 5m`
                i += 1
        elif _IDENT.match(expr, i):
            word = _IDENT.match(expr, i).group(0)  # type: ignore[union-attr]
            j = i + len(word)
            while j < n and expr[j].isspace():
                j += 1
            nxt = expr[j] if j < n else ""
            if word in GROUPING and nxt == "(":
                i = _closing(expr, j, "(", ")")
            elif nxt == "(" or word in KEYWORDS or word in GROUPING or word in AGGREGATIONS:
                i = j  # a function or aggregation (its arguments are scanned next), or a keyword
            elif nxt == "{":
                end = _closing(expr, j, "{", "}")
                out.append(Selector(word, _matchers(expr[j + 1:end - 1])))
                i = end
            else:
                out.append(Selector(word))
                i = j
        else:
            i += 1
    return out


def check_balanced(expr: str) -> None:
    stack, pairs, i = [], {")": "(", "]": "[", "}": "{"}, 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c in "([{":
            stack.append(c)
        elif c in ")]}" and (not stack or stack.pop() != pairs[c]):
            raise PromQLError(f"unbalanced {c!r} at {i} in {expr!r}")
        i += 1
    if stack:
        raise PromQLError(f"unclosed {stack[-1]!r} in {expr!r}")


DURATION = re.compile(r"^(?=\d)((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
