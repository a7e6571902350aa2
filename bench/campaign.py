"""`python -m wa_ray.bench campaign --recipients 10000 --numbers 20`: a campaign against its pacing capacity.

Issue 15's goal: a 10,000-recipient campaign over 20 numbers with pacing on finishes within 5% of the time
the numbers' pacing capacity allows, with 0 duplicates. Measured through the whole service: the numbers
are linked by QR in the simulator, the recipients are uploaded as one CSV (with a variable per recipient),
the campaign is started with a signed call, and its end is the campaign's own `finished_at` (the runner
marks it completed once no message of it is queued or sending). Every recipient's phone is then read from
the simulator's side: exactly one message each, with its own variable filled in, and which number sent it.

The capacity ("ideal") is `storage/campaign_plan.duration_s`: each number's sender replayed on the pacing's
own `decide` for its share of the recipients, with `send_s=0`, i.e. what the pacing rules alone allow,
before the page's own time per send. A run's ratio is its measured time over that ideal.

Policy: the workspace's pacing is the seed's caps (30 a minute, 1000 an hour, and the daily cap of 500 new
contacts per number, which 10,000 over 20 numbers meets exactly) with short progressive gaps and no typing
delay, so each number sends at its minute cap: the seed's own steps (1-5 s gaps) pace a number at about 19
a minute, and the same campaign would take 27 min instead of 17. The seed steps are measured too, after the
big run, as a smaller campaign to the same recipients with the daily cap of new contacts lifted (every
number met it in the big run): its ideal is the same replay, and its ratio shows what the page's send
time costs when the gaps are seconds long. Between the two, a baseline in the same run: one number sending direct messages (no
campaign) under the big run's policy, against the same replay.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.output import Envelope, table, write
from wa_ray.bench.report import to_jsonable
from wa_ray.storage.campaign_plan import duration_s
from wa_ray.storage.pacing import PacingPolicy

GOAL_RATIO = 1.05
# the seed's caps, short gaps, no typing: each number sends at its minute cap (module docstring)
CAP_BOUND = {"steps": [[30, 0.5]], "above_s": 0.5, "per_minute": 30, "per_hour": 1000, "typing": False}
SEED_STEPS = {"steps": [[5, 0.0], [10, 1.0], [15, 2.0], [20, 3.0]], "above_s": 5.0, "per_minute": 30,
              "per_hour": 1000, "typing": False}


@dataclass(frozen=True)
class CampaignConfig:
    recipients: int = 10_000
    numbers: int = 20
    seed_recipients: int = 400  # the seed-steps run, to the first of the same recipients
    baseline_messages: int = 40
    out_dir: Path | None = None


def _phone(i: int) -> str:
    return f"1557{i:07d}"


def _policy(overrides: dict[str, Any]) -> PacingPolicy:
    return PacingPolicy().with_overrides(overrides)


async def _pacing(live: Any, ws: str, overrides: dict[str, Any]) -> None:
    put = await live.api.put(f"/v1/workspaces/{ws}/pacing", json=overrides)
    put.raise_for_status()


async def _campaign(live: Any, ws: str, name: str, text: str, count: int, console: Console,
                    timeout_s: float) -> dict[str, Any]:
    """Create a draft, upload `count` recipients as CSV, start it, wait for completed; its record and timings."""
    created = await live.api.post(f"/v1/workspaces/{ws}/campaigns", json={
        "name": name, "message": {"type": "text", "text": text}, "numbers": "all", "draft": True})
    created.raise_for_status()
    cid = created.json()["campaign_id"]
    csv = "phone,code\r\n" + "".join(f"{_phone(i)},C{i}\r\n" for i in range(count))
    t0 = time.perf_counter()
    up = await live.api.post(f"/v1/workspaces/{ws}/campaigns/{cid}/recipients", content=csv.encode(),
                             headers={"Content-Type": "text/csv"})
    upload_s = time.perf_counter() - t0
    if up.status_code != 200:
        raise RuntimeError(f"CSV upload -> {up.status_code} {up.text[:300]}")
    started = await live.api.post(f"/v1/workspaces/{ws}/campaigns/{cid}/start")
    started.raise_for_status()
    first_eta = started.json().get("eta_s")
    deadline = time.monotonic() + timeout_s
    record: dict[str, Any] = {}
    last_print = 0.0
    while time.monotonic() < deadline:
        got = await live.api.get(f"/v1/workspaces/{ws}/campaigns/{cid}")
        got.raise_for_status()
        record = got.json()
        if record["status"] in ("completed", "cancelled"):
            break
        if time.monotonic() - last_print > 30:
            t = record["totals"]
            console.print(f"  {name}: {t['sent'] + t['delivered'] + t['read']}/{count} sent, "
                          f"eta {record.get('eta_s')} s, waiting {record.get('waiting')}")
            last_print = time.monotonic()
        await asyncio.sleep(1.0)
    else:
        raise RuntimeError(f"campaign {name} not completed after {timeout_s} s: {record.get('totals')}")
    return {"campaign_id": cid, "record": record, "upload_s": round(upload_s, 3), "first_eta_s": first_eta,
            "took_s": round(record["finished_at"] - record["started_at"], 3)}


async def _received(live: Any, count: int, marker: str) -> dict[str, list[dict[str, Any]]]:
    """Each recipient's messages whose text carries `marker`, read from its phone (32 at a time)."""
    slots = asyncio.Semaphore(32)

    async def one(i: int) -> tuple[str, list[dict[str, Any]]]:
        async with slots:
            reply = await live.phones.get(f"/_phone/{_phone(i)}/inbox")
        reply.raise_for_status()
        return _phone(i), [m for m in reply.json()["messages"] if marker in (m.get("body") or "")]

    return dict(await asyncio.gather(*(one(i) for i in range(count))))


def _check(got: dict[str, list[dict[str, Any]]], marker: str) -> dict[str, Any]:
    duplicates = sum(1 for msgs in got.values() if len(msgs) > 1)
    missing = sum(1 for msgs in got.values() if not msgs)
    wrong = sum(1 for phone, msgs in got.items() for m in msgs
                if m.get("body") != f"{marker} C{int(phone[4:])}")
    by_number = Counter(m["from"] for msgs in got.values() for m in msgs)
    return {"recipients": len(got), "duplicates": duplicates, "missing": missing, "wrong_text": wrong,
            "per_number": dict(sorted(by_number.items()))}


async def _baseline(live: Any, ws: str, sid: str, phones: list[str]) -> dict[str, Any]:
    """Direct messages (no campaign) from one number to `phones` (contacts it already wrote to, so its daily
    cap of new contacts does not bind), from the first accept to the last sent."""
    started = time.time()
    ids = []
    for phone in phones:
        r = await live.api.post(f"/v1/workspaces/{ws}/messages",
                                json={"to": phone, "text": "baseline", "session_id": sid, "priority": "bulk"})
        r.raise_for_status()
        ids.append(r.json()["message_id"])
    last = 0.0
    for mid in ids:
        while True:
            m = (await live.api.get(f"/v1/workspaces/{ws}/messages/{mid}")).json()
            sent = [h["ts"] for h in m.get("history", []) if h.get("status") in ("sent", "delivered", "read")]
            if sent:
                last = max(last, min(sent))
                break
            if m.get("status") == "failed":
                raise RuntimeError(f"baseline message failed: {m}")
            await asyncio.sleep(0.5)
    return {"messages": len(phones), "took_s": round(last - started, 3)}


async def measure(cfg: CampaignConfig, live: Any, console: Console) -> dict[str, Any]:
    from wa_ray.bench.harness import WORKSPACE, phone_of, session_id_of

    ws = WORKSPACE
    t0 = time.perf_counter()
    await live.link(cfg.numbers)
    link_s = time.perf_counter() - t0
    console.print(f"{cfg.numbers} numbers linked in {link_s:.1f} s")
    out: dict[str, Any] = {"link_s": round(link_s, 2), "policies": {"cap_bound": CAP_BOUND, "seed_steps": SEED_STEPS}}

    await _pacing(live, ws, CAP_BOUND)
    share = math.ceil(cfg.recipients / cfg.numbers)
    big = await _campaign(live, ws, "bench", "Offer {{code}}", cfg.recipients, console,
                          timeout_s=4 * duration_s(share, _policy(CAP_BOUND), send_s=0.0) + 600)
    big["ideal_s"] = round(duration_s(share, _policy(CAP_BOUND), send_s=0.0), 3)
    got = await _received(live, cfg.recipients, "Offer")
    big["check"] = _check(got, "Offer")
    out["big"] = big
    console.print(f"big campaign: {big['took_s']} s vs ideal {big['ideal_s']} s; {big['check']['duplicates']} dup")

    await asyncio.sleep(61)  # the minute windows empty again: the next runs start from quiet as their ideal does
    known = [phone for phone, msgs in got.items() if msgs and msgs[0]["from"] == phone_of(0)]
    base = await _baseline(live, ws, session_id_of(0), known[:cfg.baseline_messages])
    base["ideal_s"] = round(duration_s(base["messages"], _policy(CAP_BOUND), send_s=0.0), 3)
    out["baseline"] = base
    console.print(f"baseline: {base['took_s']} s vs ideal {base['ideal_s']} s")

    await asyncio.sleep(61)
    await _pacing(live, ws, SEED_STEPS)
    # every number has met its daily cap of new contacts: lift it, so the seed run spreads by headroom (as
    # its ideal's even share assumes) instead of each recipient waiting for the one number that knows it
    lifted = await live.api.put(f"/v1/workspaces/{ws}/ban-risk", json={"daily_new_contacts": 100_000})
    lifted.raise_for_status()
    seed_share = math.ceil(cfg.seed_recipients / cfg.numbers)
    seed = await _campaign(live, ws, "bench-seed", "Seed {{code}}", cfg.seed_recipients, console,
                           timeout_s=4 * duration_s(seed_share, _policy(SEED_STEPS), send_s=0.0) + 300)
    seed["ideal_s"] = round(duration_s(seed_share, _policy(SEED_STEPS), send_s=0.0), 3)
    seed["check"] = _check(await _received(live, cfg.seed_recipients, "Seed"), "Seed")
    out["seed"] = seed
    return out


def run_campaign(cfg: CampaignConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.bench.harness import Harness, HarnessOptions, Live

    env = Envelope("campaign")
    harness = Harness(HarnessOptions(sessions=cfg.numbers, pacing=True))
    console.print("wa-ray: starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    raw: dict[str, Any] = {}
    try:
        env.machine = to_jsonable(harness.machine())

        async def body() -> dict[str, Any]:
            async with Live(harness) as live:
                return await measure(cfg, live, console)

        try:
            raw = asyncio.run(body())
        except Exception as exc:  # noqa: BLE001 - reported in the results, the service still stops
            raw = {"errors": [f"{type(exc).__name__}: {exc}"]}
    finally:
        env.cleanup = to_jsonable(harness.stop())
    env.results = {"config": {k: v for k, v in vars(cfg).items() if k != "out_dir"}, **raw}
    rows = []
    for name in ("big", "baseline", "seed"):
        run = raw.get(name)
        if not run:
            continue
        ratio = round(run["took_s"] / run["ideal_s"], 4) if run.get("ideal_s") else None
        run["ratio"] = ratio
        check = run.get("check", {})
        rows.append([name, run.get("messages") or check.get("recipients"), run["took_s"], run["ideal_s"], ratio,
                     check.get("duplicates", "-"), check.get("missing", "-"), run.get("upload_s", "-")])
    big = raw.get("big")
    if big:
        c = big["check"]
        env.goal(f"{cfg.recipients} recipients over {cfg.numbers} numbers, pacing on (minute cap 30): time over "
                 "what the pacing allows", f"<= {GOAL_RATIO}", big["ratio"], big["ratio"] <= GOAL_RATIO)
        env.goal("duplicates (a recipient's phone with two messages of the campaign)", "0", c["duplicates"],
                 c["duplicates"] == 0)
        env.goal("every recipient reached, its own variable filled in", f"{cfg.recipients}",
                 cfg.recipients - c["missing"] - c["wrong_text"], c["missing"] == 0 and c["wrong_text"] == 0)
    if raw.get("errors"):
        env.goal("the run completed", "no error", raw["errors"][0][:300], False)
    env.notes.append("ideal = storage/campaign_plan.duration_s(ceil(recipients / numbers), policy, send_s=0): each "
                     "number's sender replayed on the pacing's own decide, from a quiet window, for its even share")
    env.notes.append("took = the campaign's finished_at - started_at (the runner's own record); baseline: one "
                     "number's direct sends (no campaign), first accept to last sent, under the big run's policy")
    env.notes.append("seed: the seed's progressive steps (1-5 s gaps), to the first recipients again with the daily "
                     "cap of new contacts lifted; its ratio shows the page's own send time against second-long gaps")
    body = "\n".join(["## Result", "", table(
        ["run", "messages", "took s", "ideal s", "ratio", "duplicates", "missing", "CSV upload s"], rows), "",
        f"Per number (big run, from the phones): {big['check']['per_number'] if big else '-'}", ""])
    env.finish()
    return env, write(env, body, cfg.out_dir or Path(__file__).resolve().parent / "results")


def summary(env: Envelope) -> Any:
    from rich.table import Table

    t = Table(title="wa-ray campaign vs pacing capacity")
    for column in ("run", "took s", "ideal s", "ratio"):
        t.add_column(column)
    for name in ("big", "baseline", "seed"):
        run = env.results.get(name)
        if run:
            t.add_row(name, str(run["took_s"]), str(run["ideal_s"]), str(run.get("ratio")))
    return t
