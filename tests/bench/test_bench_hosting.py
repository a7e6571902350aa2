"""`--hosting actor,host` (bench/hosting.py): the modes are parsed out of argv only for the benches that
take them, and the combined report puts each goal's measurement per mode in one row."""

from __future__ import annotations

import pytest

from wa_ray.bench.hosting import side_by_side, split_hosting


def test_hosting_is_split_out_for_density_qr_and_throughput_only() -> None:
    assert split_hosting(["qr", "--hosting", "actor,host", "--sessions", "5"]) == (["qr", "--sessions", "5"],
                                                                                 ["actor", "host"])
    assert split_hosting(["density", "--hosting=host"]) == (["density"], ["host"])
    assert split_hosting(["throughput-peak", "--sessions", "5"]) == (["throughput-peak", "--sessions", "5"], None)
    assert split_hosting(["chaos", "--hosting", "host"]) == (["chaos", "--hosting", "host"], None)
    for bad in ("grain", "actor,actor", ""):
        with pytest.raises(SystemExit):
            split_hosting(["qr", "--hosting", bad])


def test_side_by_side_rows_per_goal_columns_per_mode() -> None:
    goal = "create -> first QR p95"
    md = side_by_side("qr", {
        "actor": {"goals": [{"goal": goal, "target": "<= 1000 ms", "measured": "912 ms", "met": True}]},
        "host": {"goals": [{"goal": goal, "target": "<= 1000 ms", "measured": "1200 ms", "met": False}]},
    })
    assert "| goal | target | actor | host |" in md
    assert f"| {goal} | <= 1000 ms | 912 ms (met) | 1200 ms (NOT met) |" in md
    peak = side_by_side("throughput-peak", {"actor": {"peak": {"peak_rate_per_min": 600}}, "host": {}})
    assert "| peak: peak_rate_per_min |  | 600 (n/a) | - |" in peak
