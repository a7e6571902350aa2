"""`wa-ray up` runs the service; `wa-ray demo` runs it with the simulator and walks you through linking."""

from __future__ import annotations

import argparse
import secrets
import signal
import threading

from rich.console import Console

from wa_ray.config import Settings
from wa_ray.service import Service

console = Console()


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            stop.wait(1)
    except KeyboardInterrupt:
        pass


def cmd_up(settings: Settings) -> None:
    service = Service(settings).start()
    console.print(f"[bold green]wa-ray is up[/] on {service.base_url}  (data in {settings.data_dir.resolve()})")
    console.print(f"Redis: {'embedded' if service.redis else 'REDIS_URL'}; web: {settings.web_url}")
    console.print("Ctrl-C stops it.")
    try:
        _wait_for_interrupt()
    finally:
        service.stop()


def cmd_demo(settings: Settings, phone: str) -> None:
    from simulator.wa_web.testing import running_web_simulator
    from wa_ray.demo import run_demo

    key_id, secret = settings.api_key_id or "demo-admin", settings.api_key_secret or secrets.token_urlsafe(24)
    with running_web_simulator() as sim:
        settings = settings.model_copy(update={"web_url": sim.url + "/", "api_key_id": key_id, "api_key_secret": secret})
        service = Service(settings).start()
        try:
            run_demo(console, service.base_url, sim.url, key_id, secret, phone)
            _wait_for_interrupt()
        finally:
            service.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wa-ray")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the service (embedded Redis and local Ray unless configured)")
    demo = sub.add_parser("demo", help="run the service against the WhatsApp Web simulator and link a session")
    demo.add_argument("--phone", default="15550001", help="the simulated phone that scans the QR")
    for p in (up, demo):
        p.add_argument("--port", type=int, help="HTTP port (default 8000, or WA_HTTP_PORT)")
        p.add_argument("--data-dir", help="data directory (default .wa-ray, or WA_DATA_DIR)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"http_port": args.port, "data_dir": args.data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    if args.command == "up":
        cmd_up(settings)
    else:
        cmd_demo(settings, args.phone)


if __name__ == "__main__":
    main()
