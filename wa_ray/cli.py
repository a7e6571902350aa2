"""`wa-ray up` runs the service; `wa-ray demo` runs it with the simulator and walks you through linking."""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
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


def cmd_rotate_key(settings: Settings, new_key: str | None) -> None:
    """Re-encrypt every blob under a new master key (service stopped). A key kept in the data dir is
    replaced there; a key from WA_MASTER_KEY needs --new-key, and the operator updates the variable."""
    import asyncio

    from sessions.crypto import MasterKey
    from storage.embedded import EmbeddedRedis
    from storage.redis_client import connect
    from wa_ray.rotation import rotate
    from wa_ray.service import load_master_key

    key_file = settings.data_dir / "master.key"
    if settings.master_key and not new_key:
        raise SystemExit("WA_MASTER_KEY is set: pass --new-key, then set WA_MASTER_KEY to it")
    old = [MasterKey.from_b64(load_master_key(settings))]
    if settings.master_key_previous:
        old.append(MasterKey.from_b64(settings.master_key_previous))
    new_b64 = new_key or MasterKey.generate_b64()
    new = MasterKey.from_b64(new_b64)
    embedded = None if settings.redis_url else EmbeddedRedis(settings.data_dir / "redis")
    url = settings.redis_url or embedded.start()  # type: ignore[union-attr]

    async def go() -> object:
        redis = connect(url)
        try:
            return await rotate(settings.data_dir, redis, old, new)
        finally:
            await redis.aclose()

    try:
        report = asyncio.run(go())
    finally:
        if embedded:
            embedded.stop()
    if not settings.master_key:
        tmp = key_file.with_suffix(".tmp")
        tmp.write_text(new_b64)
        tmp.chmod(0o600)
        tmp.replace(key_file)
    console.print(f"re-encrypted: {report}; new key id {new.key_id.decode()}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # its own parser (wa_ray/keys_cli.py); needs no Ray and no running service
        from wa_ray.keys_cli import main as keys_main

        raise SystemExit(keys_main(argv[1:]))
    parser = argparse.ArgumentParser(prog="wa-ray")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="create, list and revoke API keys; mint a console token (wa-ray keys -h)")
    up = sub.add_parser("up", help="run the service (embedded Redis and local Ray unless configured)")
    demo = sub.add_parser("demo", help="run the service against the WhatsApp Web simulator and link a session")
    demo.add_argument("--phone", default="15550001", help="the simulated phone that scans the QR")
    rotate_p = sub.add_parser("rotate-key", help="re-encrypt all stored secrets under a new master key")
    rotate_p.add_argument("--new-key", help="base64 of 32 bytes (default: generate one into the data dir)")
    for p in (up, demo, rotate_p):
        p.add_argument("--port", type=int, help="HTTP port (default 8000, or WA_HTTP_PORT)")
        p.add_argument("--data-dir", help="data directory (default .wa-ray, or WA_DATA_DIR)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"http_port": args.port, "data_dir": args.data_dir}.items() if v is not None}
    settings = Settings(**overrides)
    if args.command == "up":
        cmd_up(settings)
    elif args.command == "rotate-key":
        cmd_rotate_key(settings, args.new_key)
    else:
        cmd_demo(settings, args.phone)


if __name__ == "__main__":
    main()
