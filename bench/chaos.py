"""`python -m wa_ray.bench chaos`: the chaos scenario (tests/chaos/scenario.py) run again and again, tallied.

Each run is `python -m tests.chaos.scenario` in a process of its own, with its own
Ray temp dir (one Ray and one Service per process, as in the test): a sustained
send over linked sessions while session actors, Chromium, the supervisor, the
webhook dispatcher and Redis are killed (and the BrowserHost with `--faults`).
A run passes when everything the chaos test asserts holds; the table gives each
run's audit and the totals: accepted vs on the phone exactly once, duplicates,
lost, webhook events delivered, QR after linking, Chromium leaked.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.output import Envelope, machine_without_service, progress, table, write

ROOT = Path(__file__).resolve().parents[1]
HOSTED_AS = {"actor": "SessionActors", "host": "grains in the BrowserHost"}


@dataclass(frozen=True)
class ChaosConfig:
    runs: int = 5
    scale: float = 0.5
    hosting: str = "actor"
    faults: tuple[str, ...] = ()  # empty: the scenario's default list
    out_dir: Path | None = None
    timeout_s: float = 600.0
    seeds: list[int] = field(default_factory=list)


def violations(result: dict[str, Any], expected_kinds: set[str]) -> list[str]:
    """What the chaos test asserts, as a list of what went wrong (empty: the run passed)."""
    bad = []
    if any(f["error"] for f in result["faults"]):
        bad.append("a fault could not be injected")
    if not expected_kinds <= {f["kind"] for f in result["faults"] if not f["error"]}:
        bad.append("not every kind of fault was injected")
    if result["rejected"] or not result["accepted"]:
        bad.append(f"rejected {result['rejected']}")
    missing_unconfirmed = sum(1 for n in result["unconfirmed_inbox_counts"].values() if n == 0)
    checks = {
        "duplicated on the phone": result["duplicates"],
        "lost": result["lost"],
        "stuck (not final)": result["not_final_count"],
        "accepted != delivered + unconfirmed-not-on-phone":
            result["accepted"] - result["delivered"] - missing_unconfirmed,
        "failed other than unconfirmed": len(result["other_failed"]),
        "webhook events missing": result["missing_events_count"],
        "unstable webhook ids": len(result["unstable_event_ids"]),
        "bad webhook signatures": result["bad_signatures"],
        "QR after linking": result["qr_after_linking"],
        "Chromium leaked": len(result["chromium_leaked"]),
    }
    bad += [f"{name}: {n}" for name, n in checks.items() if n]
    if result["chromium_mains"] != 1:
        bad.append(f"{result['chromium_mains']} Chromium main processes")
    return bad


def run_chaos(cfg: ChaosConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.bench.chaos_runner import ALL_FAULTS, fault_kinds, run_scenario

    faults = ",".join(cfg.faults) or os.environ.get("WA_CHAOS_FAULTS", ",".join(ALL_FAULTS[:5]))
    kinds = set(fault_kinds(faults, cfg.hosting))
    env = {"WA_CHAOS_HOSTING": cfg.hosting, **({"WA_CHAOS_FAULTS": ",".join(cfg.faults)} if cfg.faults else {})}
    envelope = Envelope("chaos", machine=machine_without_service())
    runs: list[dict[str, Any]] = []
    with progress(console) as bar:
        task = bar.add_task(f"chaos x{cfg.runs} (scale {cfg.scale}, {cfg.hosting} hosting)", total=cfg.runs, info="")
        for i in range(cfg.runs):
            seed = cfg.seeds[i] if i < len(cfg.seeds) else None
            run = run_scenario(cfg.scale, cfg.timeout_s, seed=seed, env=env)
            result, wall = run.result, run.wall_s
            if result is None:
                runs.append({"run": i + 1, "seed": seed, "wall_s": wall, "passed": False, "error": run.error[-2000:]})
            else:
                bad = violations(result, kinds)
                runs.append({"run": i + 1, "seed": result["plan"]["seed"], "wall_s": wall, "passed": not bad,
                             "violations": bad, **{k: result[k] for k in (
                                 "accepted", "delivered", "duplicates", "lost", "not_final_count", "unconfirmed",
                                 "page_deaths", "webhook_events", "webhook_deliveries", "redeliveries",
                                 "missing_events_count", "qr_after_linking", "chromium_leaked", "post_retries")},
                             "faults": dict(Counter(f["kind"] for f in result["faults"] if not f["error"]))})
            bar.update(task, advance=1, info=f"{sum(r['passed'] for r in runs)}/{len(runs)} passed")
    done = [r for r in runs if "accepted" in r]
    total = {k: sum(r[k] for r in done) for k in ("accepted", "delivered", "duplicates", "lost", "unconfirmed",
                                                   "webhook_events", "missing_events_count", "qr_after_linking")}
    total["chromium_leaked"] = sum(len(r["chromium_leaked"]) for r in done)
    passed = sum(r["passed"] for r in runs)
    envelope.results = {"runs": runs, "passed": passed, "total": total, "hosting": cfg.hosting, "scale": cfg.scale,
                   "fault_kinds": sorted(kinds)}
    envelope.goal(f"chaos runs with nothing lost or duplicated, every webhook event delivered, no QR, no Chromium "
             f"leaked ({cfg.hosting} hosting, scale {cfg.scale})", f"{cfg.runs}/{cfg.runs}",
             f"{passed}/{cfg.runs}", passed == cfg.runs)
    envelope.goal("accepted messages on the phone more than once (all runs)", "0", total["duplicates"],
             total["duplicates"] == 0)
    envelope.goal("accepted messages lost (all runs)", "0", total["lost"], total["lost"] == 0)
    envelope.notes.append("`unconfirmed` is the documented outcome of a page dying mid-send: whether WhatsApp's server "
                     "got it cannot be known, so it is never resent, reported `failed` with that reason, and on the "
                     "phone at most once; the delivered count plus those not on the phone equals accepted.")
    rows = [[r["run"], r["seed"], "yes" if r["passed"] else "**no**", r.get("accepted"), r.get("delivered"),
             r.get("duplicates"), r.get("lost"), r.get("unconfirmed"), r.get("webhook_events"),
             r.get("missing_events_count"), r.get("qr_after_linking"), len(r.get("chromium_leaked") or []),
             ", ".join(f"{k} {n}" for k, n in sorted((r.get("faults") or {}).items())), r["wall_s"],
             "; ".join(r.get("violations") or []) or (r.get("error") or "")[:200]] for r in runs]
    body = "\n".join([
        "## Result", "",
        f"{cfg.runs} runs of `python -m tests.chaos.scenario --scale {cfg.scale}`, sessions hosted as "
        f"{HOSTED_AS[cfg.hosting]}, faults {', '.join(sorted(kinds))}.", "",
        table(["run", "seed", "passed", "accepted", "on phone", "dup", "lost", "unconfirmed", "webhook events",
               "events missing", "QR", "Chromium leaked", "faults injected", "wall s", "violations"], rows), "",
        f"Totals: {total}.",
    ])
    envelope.finish()
    return envelope, write(envelope, body, cfg.out_dir or ROOT / "bench" / "results")


def summary(env: Envelope) -> str:
    r = env.results
    return f"chaos: {r['passed']}/{len(r['runs'])} runs passed; totals {r['total']}"
