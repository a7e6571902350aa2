"""Key names read back (storage/keys.py): the workspace of a name, and the prefix of an API key's keys."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from wa_ray.ids import is_valid_id
from wa_ray.storage import keys

NOT_NAMES = {"tag", "workspace_of"}  # a bare tag and the parser: neither gives a key name


def _key_functions(first: str | None) -> list[Callable[..., str]]:
    """Every public function of keys.py that gives a name, whose first parameter is `first` (None: any other)."""
    out = []
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        if fn.__module__ != keys.__name__ or name.startswith("_") or name in NOT_NAMES:
            continue
        params = list(inspect.signature(fn).parameters)
        if (params[:1] == [first]) if first is not None else (params[:1] not in (["ws"], ["key_id"])):
            out.append(fn)
    return out


def _name(fn: Callable[..., str], first: str) -> str:
    """The name `fn` gives with `first` as its first argument (if it takes any) and valid ids for the others."""
    arity = len(inspect.signature(fn).parameters)
    return fn(*[first, *["x-1"] * (arity - 1)][:arity])


@pytest.mark.parametrize("ws", ["acme", "ws-a", "k", "g", "wh", "webhook-queue", "0_a"])
@pytest.mark.parametrize("fn", _key_functions("ws"), ids=lambda fn: fn.__name__)
def test_every_key_of_a_workspace_names_its_workspace(fn: Callable[..., str], ws: str) -> None:
    assert is_valid_id(ws)
    assert keys.workspace_of(_name(fn, ws)) == ws


@pytest.mark.parametrize("fn", _key_functions("key_id"), ids=lambda fn: fn.__name__)
def test_a_key_of_an_api_key_names_no_workspace_and_starts_with_its_prefix(fn: Callable[..., str]) -> None:
    for key_id in ("k1", "acme", "ws-a"):  # a key id spelled like a workspace id is still the key's tag
        name = _name(fn, key_id)
        assert keys.workspace_of(name) is None, name
        assert name.startswith(keys.api_key_prefix(key_id)), name
        assert not name.startswith(keys.api_key_prefix(key_id[:-1])), name


@pytest.mark.parametrize("fn", _key_functions(None), ids=lambda fn: fn.__name__)
def test_a_global_key_names_no_workspace(fn: Callable[..., str]) -> None:
    """Tagged `{g:wh}` or `{g:metrics}`, or untagged."""
    name = _name(fn, "acme")
    assert name.startswith(f"{keys.PREFIX}:"), name
    assert keys.workspace_of(name) is None, name


def test_the_global_tags_are_covered() -> None:
    names = [_name(fn, "acme") for fn in _key_functions(None)]
    tags = {name.partition("}")[0] + "}" for name in names if name.startswith(f"{keys.PREFIX}:{{")}
    assert tags == {"wa:{g:wh}", "wa:{g:metrics}"}


@pytest.mark.parametrize("name", [
    "wa:{k:acme}:apikey",  # an API key's tag: its `:` is what keeps it apart from a workspace's
    "wa:{g:wh}:webhook-workspaces",
    "wa:{a:b}:events",  # a tag with a `:` is never a workspace: no workspace id holds one
    "wa:workspaces",
    "wa:sessions:all",
    "wa:meta-number:{acme}:x",  # a brace further on is not a hash tag of ours
    "wa:{acme",  # no closing brace
    "wa:{acme}",  # a tag and nothing after it: no key of the layout
    "wa:{acme}events",
    "wa:{}:events",  # an empty tag
    "xa:{acme}:events",
    "{acme}:events",
    "",
])
def test_names_outside_a_workspace(name: str) -> None:
    assert keys.workspace_of(name) is None


def test_workspace_ids_hold_no_colon() -> None:
    """What keeps a workspace's tag apart from `{k:...}` and `{g:...}`: the id rule forbids `:` (and `}`)."""
    assert not is_valid_id("a:b") and not is_valid_id("k:acme") and not is_valid_id("a}b")


def test_the_prefixes_are_the_start_of_a_tagged_name() -> None:
    assert keys.workspace_prefix("acme") == "wa:{acme}:"
    assert keys.api_key_prefix("acme") == "wa:{k:acme}:"
    assert keys.workspace_of(keys.workspace_prefix("acme")) == "acme"
    assert keys.workspace_of(keys.api_key_prefix("acme")) is None
