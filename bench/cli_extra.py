"""Sub-commands density, qr, recovery, api, crypto, chaos, chats, campaign, accept-batch, soak and smoke of
`python -m wa_ray.bench`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.output import DEFAULT_OUT


def _ints(value: str) -> list[int]:
    try:
        xs = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not xs or xs[0] <= 0:
        raise argparse.ArgumentTypeError("expected positive integers, comma separated")
    return xs


def _names(allowed: tuple[str, ...]) -> Any:
    def parse(value: str) -> list[str]:
        xs = [v.strip() for v in value.split(",") if v.strip()]
        bad = [x for x in xs if x not in allowed]
        if bad or not xs:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return xs

    return parse


def _pos(kind: Any) -> Any:
    def parse(value: str) -> Any:
        x = kind(value)
        if x <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return x

    return parse


def _nonneg(kind: Any) -> Any:
    def parse(value: str) -> Any:
        x = kind(value)
        if x < 0:
            raise argparse.ArgumentTypeError("must be >= 0")
        return x

    return parse


def add_redis_option(p: argparse.ArgumentParser) -> None:
    """`--redis-cluster N`, for the commands whose service runs in a Harness (bench/harness.py)."""
    p.add_argument("--redis-cluster", type=_pos(int), default=None, metavar="N",
                   help="run the service on a Redis Cluster of N masters that the bench starts on loopback ports "
                        "(Debian's redis-server) and stops after the run. Default: the embedded Redis, or the "
                        "Redis REDIS_URL names (it must be empty; redis+cluster://h1:p1,h2:p2 for a cluster)")


def add_parsers(sub: Any) -> None:
    from wa_ray.bench.density import METHODS
    from wa_ray.bench.recovery import FAULTS

    d = sub.add_parser("density", help="PSS per linked session: wa-ray vs a browser per session vs whatsapp-web.js")
    d.add_argument("--sessions", type=_ints, default=[10, 25, 50], help="sizes, comma separated (grown in order)")
    d.add_argument("--only", type=_names(METHODS), default=list(METHODS),
                   help=f"which of {','.join(METHODS)} to run (default all)")
    d.add_argument("--link-concurrency", type=_pos(int), default=4)
    d.add_argument("--settle", type=_nonneg(float), default=5.0, help="seconds idle before sampling memory")
    d.add_argument("--samples", type=_pos(int), default=3, help="memory samples per size (median taken)")
    d.add_argument("--min-free-gib", type=_nonneg(float), default=2.0,
                   help="skip a size whose estimated need would leave less than this available")

    q = sub.add_parser("qr", help="create -> first session.qr on SSE (warm node), vs whatsapp-web.js's qr event")
    q.add_argument("--sessions", type=_pos(int), default=50, help="samples per variant")
    q.add_argument("--burst", type=_nonneg(int), default=10, help="concurrent variant: creates at once (0: skip)")
    q.add_argument("--wwebjs-sessions", type=_nonneg(int), default=None,
                   help="whatsapp-web.js samples (default --sessions; 0 skips)")

    r = sub.add_parser("recovery", help="time to all-connected (no QR) after actor/browser/serve/redis/service faults")
    r.add_argument("--sessions", type=_pos(int), default=10, help="linked sessions for the per-fault runs")
    r.add_argument("--service-sessions", type=_nonneg(int), default=50,
                   help="linked sessions for the whole-service restart (0: same as --sessions)")
    r.add_argument("--faults", type=_names(FAULTS), default=list(FAULTS), help=f"subset of {','.join(FAULTS)}")
    r.add_argument("--timeout", type=_pos(float), default=180.0, help="seconds to wait per fault")
    r.add_argument("--link-concurrency", type=_pos(int), default=4)

    a = sub.add_parser("api", help="open-loop POST /messages latency vs a bare Starlette endpoint and a trivial Serve route")
    a.add_argument("--rate", type=_pos(float), default=200.0, help="requests per second")
    a.add_argument("--duration", type=_pos(float), default=30.0, help="seconds per target")
    a.add_argument("--warmup", type=_nonneg(float), default=3.0, help="unrecorded seconds per target first")
    a.add_argument("--targets", type=_names(("bare", "serve-trivial", "wa-ray")), default=["bare", "serve-trivial", "wa-ray"])
    a.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="py-spy the Serve proxy, the Ingress replica and the bench during the wa-ray phase into DIR")

    c = sub.add_parser("crypto", help="AES-256-GCM encrypt+decrypt of a session state (wa_ray/crypto.py)")
    c.add_argument("--size-mb", type=_pos(float), default=10.0)
    c.add_argument("--runs", type=_pos(int), default=20)

    ch = sub.add_parser("chaos", help="the chaos scenario run again and again: lost, duplicated, webhooks, QR, leaks")
    ch.add_argument("--runs", type=_pos(int), default=5)
    ch.add_argument("--scale", type=_pos(float), default=0.5, help="scenario scale (1: 36 s of sustained send)")
    ch.add_argument("--hosting", choices=("actor", "host"), default="actor",
                    help="sessions as SessionActors (the issue's 'kill session actors') or as grains in the host")
    ch.add_argument("--faults", type=_names(("actor", "chromium", "supervisor", "dispatcher", "redis", "host")),
                    default=[], help="fault kinds (default: the scenario's list)")

    cs = sub.add_parser("chats", help="GET .../chats?limit=50 from a session holding --chats chats: p50/p95/p99")
    cs.add_argument("--chats", type=_pos(int), default=5000, help="chats seeded on the phone before linking")
    cs.add_argument("--messages-per-chat", type=_pos(int), default=2)
    cs.add_argument("--requests", type=_pos(int), default=500, help="measured requests")
    cs.add_argument("--warmup", type=_nonneg(int), default=20, help="unrecorded requests first")
    cs.add_argument("--concurrency", type=_pos(int), default=1, help="requests in flight at once")

    cp = sub.add_parser("campaign", help="a campaign over linked numbers against its pacing capacity; duplicates")
    cp.add_argument("--recipients", type=_pos(int), default=10_000)
    cp.add_argument("--numbers", type=_pos(int), default=20)
    cp.add_argument("--seed-recipients", type=_pos(int), default=400, help="the seed-steps run afterwards")
    cp.add_argument("--baseline-messages", type=_pos(int), default=40, help="one number's direct sends")

    ab = sub.add_parser("accept-batch", help="messages/s through POST .../messages:batch vs one POST per message")
    ab.add_argument("--batches", type=_pos(int), default=20)
    ab.add_argument("--size", type=_pos(int), default=1000, help="messages per batch (at most 1,000)")
    ab.add_argument("--batch-concurrency", type=_pos(int), default=1, help="batches in flight at once")
    ab.add_argument("--singles", type=_pos(int), default=2000, help="the baseline: messages sent one POST each")
    ab.add_argument("--concurrency", type=_pos(int), default=32, help="single POSTs in flight at once")

    so = sub.add_parser("soak", help="steady outbound + inbound traffic for long; memory, fds, asyncio tasks, "
                                     "Redis sampled: growth after the warm-up, lost, p99 first vs last")
    so.add_argument("--sessions", type=_pos(int), default=50)
    so.add_argument("--rate", type=_pos(float), default=1000.0, help="outbound msg/min over all sessions (pacing off)")
    so.add_argument("--inbound-rate", type=_nonneg(float), default=None,
                    help="msg/min the sessions' phones write to them, in all (default: a quarter of --rate)")
    so.add_argument("--duration", type=_pos(float), default=3600.0, help="seconds of traffic, the warm-up included")
    so.add_argument("--sample", type=_pos(float), default=60.0, help="seconds between samples")
    so.add_argument("--warmup", type=_nonneg(float), default=600.0,
                    help="seconds at the start whose growth is not judged")
    so.add_argument("--compare-window", type=_pos(float), default=600.0,
                    help="seconds of the first (after the warm-up) and last p99 windows")
    so.add_argument("--limit-pct", type=_pos(float), default=5.0, help="growth limit per series")
    so.add_argument("--count-slack", type=_nonneg(float), default=2.0,
                    help="a count (fds, tasks, clients) may also rise by this much")
    so.add_argument("--drain-timeout", type=_pos(float), default=120.0)
    so.add_argument("--link-concurrency", type=_pos(int), default=4)
    so.add_argument("--page-cost", choices=("light", "heavy"), default="light")
    so.add_argument("--raw", action="store_true", help="per-process rows in every sample of the JSON")

    sm = sub.add_parser("smoke", help="every bench at toy size on one service (what tests/bench runs)")
    sm.add_argument("--no-baselines", action="store_true", help="skip the Playwright and whatsapp-web.js parts")

    for p in (d, q, r, a, c, ch, sm, cs, cp, ab, so):
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
        p.add_argument("-v", "--verbose", action="store_true")
    for p in (d, q, r, a, sm, cs, cp, ab, so):  # crypto has no service, chaos starts its own
        add_redis_option(p)


def run(args: argparse.Namespace, console: Console, out: Console) -> int:
    ok = True
    if args.command == "smoke":
        from wa_ray.bench.smoke import run_smoke

        envs = run_smoke(args.out, console, baselines=not args.no_baselines)
        bad = []
        for name, env in envs.items():
            errs = env.results.get("errors")
            leftovers = [v for v in (env.cleanup or {}).values() if isinstance(v, dict) and v.get("leftovers_killed")]
            out.print(f"{name}: goals {[(g['goal'][:40], g['met']) for g in env.goals]}; errors {errs or '-'}")
            if errs or leftovers:
                bad.append(name)
        out.print(f"results in {args.out}")
        return 1 if bad else 0
    if args.command == "crypto":
        from wa_ray.bench.crypto import CryptoConfig, run_crypto, summary

        env, paths = run_crypto(CryptoConfig(size_mb=args.size_mb, runs=args.runs, out_dir=args.out), console)
    elif args.command == "density":
        from wa_ray.bench.density import DensityConfig, run_density, summary

        env, paths = run_density(DensityConfig(sizes=args.sessions, methods=args.only, out_dir=args.out,
                                               link_concurrency=args.link_concurrency, settle_s=args.settle,
                                               samples=args.samples, min_free_gib=args.min_free_gib), console)
    elif args.command == "qr":
        from wa_ray.bench.qr import QrConfig, run_qr, summary

        wwebjs = args.sessions if args.wwebjs_sessions is None else args.wwebjs_sessions
        env, paths = run_qr(QrConfig(sessions=args.sessions, burst=args.burst, wwebjs_sessions=wwebjs,
                                     out_dir=args.out), console)
    elif args.command == "recovery":
        from wa_ray.bench.recovery import RecoveryConfig, run_recovery, summary

        env, paths = run_recovery(RecoveryConfig(sessions=args.sessions, service_sessions=args.service_sessions,
                                                 faults=args.faults, timeout_s=args.timeout, out_dir=args.out,
                                                 link_concurrency=args.link_concurrency), console)
    elif args.command == "api":
        from wa_ray.bench.api import ApiConfig, run_api, summary

        env, paths = run_api(ApiConfig(rate=args.rate, duration_s=args.duration, warmup_s=args.warmup,
                                       targets=args.targets, out_dir=args.out, profile_dir=args.profile), console)
    elif args.command == "chats":
        from wa_ray.bench.chats import ChatsConfig, run_chats, summary

        env, paths = run_chats(ChatsConfig(chats=args.chats, messages_per_chat=args.messages_per_chat,
                                           requests=args.requests, warmup=args.warmup,
                                           concurrency=args.concurrency, out_dir=args.out), console)
    elif args.command == "campaign":
        from wa_ray.bench.campaign import CampaignConfig, run_campaign, summary

        env, paths = run_campaign(CampaignConfig(recipients=args.recipients, numbers=args.numbers,
                                                 seed_recipients=args.seed_recipients,
                                                 baseline_messages=args.baseline_messages, out_dir=args.out), console)
    elif args.command == "accept-batch":
        from wa_ray.bench.batch_accept import BatchAcceptConfig, run_batch_accept, summary

        env, paths = run_batch_accept(BatchAcceptConfig(batches=args.batches, size=args.size,
                                                        batch_concurrency=args.batch_concurrency,
                                                        singles=args.singles, concurrency=args.concurrency,
                                                        out_dir=args.out), console)
    elif args.command == "soak":
        from wa_ray.bench.soak import SoakConfig, run_soak, summary

        cfg = SoakConfig(sessions=args.sessions, rate_per_min=args.rate, inbound_rate_per_min=args.inbound_rate,
                         duration_s=args.duration, sample_s=args.sample, warmup_s=args.warmup,
                         compare_s=args.compare_window, drain_timeout_s=args.drain_timeout, out_dir=args.out,
                         link_concurrency=args.link_concurrency, limit_pct=args.limit_pct,
                         count_slack=args.count_slack, page_cost=args.page_cost, raw=args.raw)
        try:
            cfg.check()
        except ValueError as exc:
            raise SystemExit(f"soak: {exc}") from None
        env, paths = run_soak(cfg, console)
        ok = all(g["met"] is not False for g in env.goals)
    elif args.command == "chaos":
        from wa_ray.bench.chaos import ChaosConfig, run_chaos, summary

        env, paths = run_chaos(ChaosConfig(runs=args.runs, scale=args.scale, hosting=args.hosting,
                                           faults=tuple(args.faults), out_dir=args.out), console)
    else:
        raise SystemExit(f"unknown command {args.command}")
    out.print(summary(env))
    for g in env.goals:
        mark = "-" if g["met"] is None else ("[green]met[/]" if g["met"] else "[red]not met[/]")
        out.print(f"goal: {g['goal']}: target {g['target']}, measured {g['measured']} -> {mark}")
    if env.cleanup and env.cleanup.get("leftovers_killed"):
        out.print(f"[yellow]ended leftover processes: {env.cleanup['leftovers_killed']}[/]")
        ok = False
    for kind, path in paths.items():
        out.print(f"{kind}: {path}")
    return 0 if ok and not env.results.get("errors") else 1
