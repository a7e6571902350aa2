"""`python -m wa_ray.bench <command> ...`: throughput, throughput-peak, density, qr, recovery, api, crypto, chats,
campaign, accept-batch, chaos, soak, smoke.

density, qr and throughput(-peak) also take `--hosting actor,host`: both session hosting modes in one run,
side by side (bench/hosting.py).

The commands that run the service in a Harness use the embedded Redis, or the (empty) Redis `REDIS_URL` names
(`redis+cluster://h1:p1,h2:p2,...` for a Redis Cluster), or with `--redis-cluster N` a cluster of N masters
the bench starts for the run (bench/redis_target.py, bench/redis_cluster.py)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.mix import DEFAULT_DOCUMENT_BYTES, DEFAULT_IMAGE_BYTES, DEFAULT_MIX, VIDEO_BYTES, MixSpec, parse_mix
from wa_ray.bench.throughput import DEFAULT_PEAK_RATES, PEAK_THRESHOLD_MS, BenchConfig, run_peak, run_throughput, summary_table

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("expected on or off")
    return value == "on"


def _rates(value: str) -> list[float]:
    try:
        rates = [float(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma separated")
    return rates


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        x = kind(value)
        if x <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return x

    return parse


def build_parser() -> argparse.ArgumentParser:
    from wa_ray.bench.cli_extra import add_redis_option

    parser = argparse.ArgumentParser(prog="python -m wa_ray.bench", description="wa-ray load harness")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, pacing_default: str) -> None:
        p.add_argument("--sessions", type=_positive(int), default=5, help="linked sessions (s00, s01, ...)")
        p.add_argument("--pacing", type=_on_off, default=None, metavar="on|off",
                       help=f"per-session pacing policy (default {pacing_default})")
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
        p.add_argument("--drain-timeout", type=_positive(float), default=60.0,
                       help="seconds to wait for outstanding acks/webhooks after sending stops")
        p.add_argument("--link-concurrency", type=_positive(int), default=4, help="sessions linked at once")
        p.add_argument("--raw", action="store_true", help="keep per-message records in the timestamped JSON")
        p.add_argument("--warmup", type=float, default=5.0,
                       help="seconds of unrecorded traffic after linking (0: none)")
        p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                       help="py-spy the proxy, replica, dispatcher, BrowserHost and bench during each step into DIR")
        p.add_argument("--page-cost", choices=("light", "heavy"), default="light",
                       help="the simulator page's cost per message: heavy adds WhatsApp Web's encryption per "
                            "device, IndexedDB writes and re-render (simulator/wa_web/static/heavy.js)")
        p.add_argument("-v", "--verbose", action="store_true")
        add_redis_option(p)

    tp = sub.add_parser("throughput", help="fixed rate for a duration")
    common(tp, "on; off with --find-peak")
    tp.add_argument("--rate", type=_positive(float), default=100.0, help="total msg/min over all sessions")
    tp.add_argument("--duration", type=_positive(float), default=60.0, help="seconds of sending")
    tp.add_argument("--find-peak", action="store_true", help="step the rate up instead (same as throughput-peak)")
    tp.add_argument("--rates", type=_rates, default=list(DEFAULT_PEAK_RATES), help="with --find-peak")
    tp.add_argument("--step", type=_positive(float), default=20.0, help="with --find-peak: seconds per step")
    tp.add_argument("--threshold-ms", type=_positive(float), default=PEAK_THRESHOLD_MS)
    tp.add_argument("--keep-going", action="store_true", help="with --find-peak: run every step even after a fail")
    tp.add_argument("--mix", nargs="?", const=DEFAULT_MIX, default=None, metavar="KIND:WEIGHT,...",
                    help=f"send a mix of kinds (default when given alone: {DEFAULT_MIX}); media uploaded once, sent "
                         "by media_id; adds per-kind latency, CPU per MB of media and a video memory probe")
    tp.add_argument("--image-bytes", type=_positive(int), default=DEFAULT_IMAGE_BYTES, help="with --mix")
    tp.add_argument("--document-bytes", type=_positive(int), default=DEFAULT_DOCUMENT_BYTES, help="with --mix")
    tp.add_argument("--video-bytes", type=int, default=VIDEO_BYTES,
                    help="with --mix: size of the video whose sending is memory-probed after the step (0: no probe)")

    pk = sub.add_parser("throughput-peak", help="step the rate up; report the highest with p99 accept->ack < 2 s")
    common(pk, "off")
    pk.add_argument("--rates", type=_rates, default=list(DEFAULT_PEAK_RATES), help="msg/min steps, comma separated")
    pk.add_argument("--step", type=_positive(float), default=20.0, help="seconds of sending per step")
    pk.add_argument("--threshold-ms", type=_positive(float), default=PEAK_THRESHOLD_MS)
    pk.add_argument("--keep-going", action="store_true", help="run every step even after one fails")
    pk.add_argument("--idle", type=float, default=30.0,
                    help="seconds of the idle step before the rates (service CPU with nothing sent); 0 skips it")
    from wa_ray.bench.cli_extra import add_parsers

    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from wa_ray.bench.hosting import run_modes, split_hosting

    argv, modes = split_hosting(list(sys.argv[1:] if argv is None else argv))
    if modes:  # `--hosting actor,host`: each mode in a process of its own, then one side-by-side report
        return run_modes(argv, modes)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    out = Console()
    from wa_ray.bench.redis_target import RedisNotEmpty

    try:
        with _bench_redis(getattr(args, "redis_cluster", None), console):
            return _dispatch(args, console, out)
    except RedisNotEmpty as exc:  # the operator's Redis: a message, not a traceback
        raise SystemExit(f"bench: {exc}") from None


@contextlib.contextmanager
def _bench_redis(masters: int | None, console: Console) -> Iterator[None]:
    """`--redis-cluster N`: REDIS_URL names a fresh cluster of N masters for the run (the Harness reads it),
    stopped afterwards. Without it, whatever REDIS_URL says (unset: the embedded Redis)."""
    if not masters:
        yield
        return
    from wa_ray.bench.redis_cluster import NoRedisServer, temporary_redis_cluster
    from wa_ray.bench.redis_target import URL_ENV, redacted_url, requested_url

    if requested_url() is not None:
        raise SystemExit(f"--redis-cluster starts a cluster of its own: unset {' and '.join(URL_ENV)}, "
                         "or leave --redis-cluster out to run against that Redis")
    console.print(f"starting a Redis Cluster of {masters} masters on loopback...")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_redis_cluster(masters))
        except NoRedisServer as exc:
            raise SystemExit(f"--redis-cluster: {exc}") from None
        os.environ[URL_ENV[0]] = url
        stack.callback(os.environ.pop, URL_ENV[0], None)  # before the cluster stops
        console.print(f"Redis Cluster up: {redacted_url(url)}")
        yield


def _dispatch(args: argparse.Namespace, console: Console, out: Console) -> int:
    if args.command not in ("throughput", "throughput-peak"):
        from wa_ray.bench.cli_extra import run

        return run(args, console, out)
    peak = args.command == "throughput-peak" or args.find_peak
    # A peak search with the pacing policy on would measure the policy, not the service: off unless asked.
    pacing = args.pacing if args.pacing is not None else not peak
    cfg = BenchConfig(sessions=args.sessions, pacing=pacing, out_dir=args.out,
                      link_concurrency=args.link_concurrency, raw=args.raw, warmup_s=max(0.0, args.warmup),
                      profile_dir=str(args.profile) if args.profile else None, page_cost=args.page_cost)
    if peak and getattr(args, "mix", None):
        build_parser().error("--mix runs with a fixed rate, not with --find-peak")
    if peak:
        report, paths = run_peak(cfg, args.rates, args.step, args.drain_timeout, args.threshold_ms,
                                 args.keep_going, console, idle_s=getattr(args, "idle", 0.0))
        found = report.peak or {}
        out.print(summary_table(report))
        out.print(f"peak: [bold]{found.get('peak_rate_per_min')} msg/min[/] with p99 accept->ack < "
                  f"{found.get('threshold_ms'):g} ms ({cfg.sessions} sessions)")
    else:
        mix = None
        if getattr(args, "mix", None):
            try:
                mix = MixSpec(parse_mix(args.mix), args.image_bytes, args.document_bytes, max(0, args.video_bytes))
            except ValueError as exc:
                build_parser().error(f"--mix: {exc}")
        report, paths = run_throughput(cfg, args.rate, args.duration, args.drain_timeout, console, mix)
        out.print(summary_table(report))
        for step in report.steps:
            if step.media:
                out.print(_mix_lines(step.media))
    if report.cleanup and report.cleanup.get("leftovers_killed"):
        out.print(f"[yellow]ended leftover processes: {report.cleanup['leftovers_killed']}[/]")
    for kind, path in paths.items():
        out.print(f"{kind}: {path}")
    return 0 if all(s.ok for s in report.steps[:1]) else 1


def _mix_lines(media: dict) -> str:
    rows = [f"{k}: accepted {r['accepted']}, acked {r['acked']}, delivered {r['delivered']}, accept->ack p99 "
            f"{r['accept_to_ack_ms']['p99']} ms" for k, r in media["by_kind"].items()]
    line = (f"media delivered {media['media_delivered_mb']} MB, corrupted {media['media_corrupted']}, "
            f"service CPU s per media MB {media['service_cpu_s_per_media_mb']} (upper bound)")
    probe = media.get("video_probe")
    if probe:
        line += (f"\nvideo probe: {probe.get('error') or ''}PSS {probe['baseline_pss_mb']} -> peak "
                 f"{probe['peak_pss_mb']} MB (+{probe['peak_over_baseline_mb']}), accept->ack "
                 f"{probe.get('accept_to_ack_ms')} ms, intact {probe.get('delivered_intact')}")
    return "\n".join(rows + [line])


if __name__ == "__main__":
    raise SystemExit(main())
