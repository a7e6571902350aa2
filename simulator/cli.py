"""`wa-sim web|cloud`: run a simulator standalone on loopback."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wa-sim", description="wa-ray offline simulators")
    sub = parser.add_subparsers(dest="which", required=True)
    web = sub.add_parser("web", help="WhatsApp Web simulator (page + phone-side control API)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8701)
    web.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    cloud = sub.add_parser("cloud", help="WhatsApp Cloud API simulator")
    cloud.add_argument("--host", default="127.0.0.1")
    cloud.add_argument("--port", type=int, default=8702)
    cloud.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if args.which == "web":
        from wa_ray.simulator.wa_web.server import run
    else:
        from wa_ray.simulator.cloud_api.server import run
    run(host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
