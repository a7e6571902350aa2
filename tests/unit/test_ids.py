"""wa_ray/ids.py: ids minted in bulk are ids as `new_id` makes them, and all different."""

from __future__ import annotations

import re

from wa_ray.ids import is_valid_id, new_id, new_ids


def test_ids_minted_in_bulk_have_the_shape_of_one_minted_alone_and_differ() -> None:
    shape = re.compile(r"msg_[0-9a-f]{16}")
    ids = new_ids("msg", 1000)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert all(shape.fullmatch(i) and is_valid_id(i) for i in ids)
    assert shape.fullmatch(new_id("msg"))
    assert new_ids("msg", 0) == [] and new_ids("msg", 1)[0] not in ids
