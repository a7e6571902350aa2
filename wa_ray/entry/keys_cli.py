"""`wa-ray keys ...`: create, list and revoke API keys; mint a console token. Run on the service's host.

    wa-ray keys create --role workspace --workspace acme [--id acme-backend] [--rate 100 --burst 200]
                       [--allow-cidr 10.0.0.0/8 --allow-cidr 2001:db8::/32] [--max-streams 50]
    wa-ray keys list [--json]
    wa-ray keys revoke KEY_ID
    wa-ray keys reinstate KEY_ID   # lets the service's bootstrap key (WA_API_KEY_ID) be created again
    wa-ray keys console-token [--workspace acme] [--ttl 900] [--base-url http://127.0.0.1:8000]

The secret is printed once, by `create`, and never again: the service keeps it
encrypted under the master key and no listing shows it. The command reaches
the service's Redis the way the service does (wa_ray/entry/data_redis.py):
`WA_REDIS_URL`, the running embedded server of the data dir, or, when none
runs, that server started for the moment the command needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from wa_ray.serve_app.tokens import CLI_ISSUER, CONSOLE_TTL_S, TokenSigner
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import KeyRef, MasterKeyError, load_master_keys
from wa_ray.storage.apikeys import ROLES, ApiKeyStore, KeyExists
from wa_ray.storage.redis_client import connect
from wa_ray.storage.layout_migration import prepare as prepare_layout
from wa_ray.config import Settings
from wa_ray.entry import data_redis
from wa_ray.ids import is_valid_id


def master_keys(settings: Settings) -> tuple[MasterKey, ...]:
    """The service's keys (current first), found as every process of the service finds them; never
    generated here, so the CLI cannot split the service from its secrets."""
    key_file = settings.key_file()
    try:
        return load_master_keys(KeyRef(str(key_file) if key_file else None))
    except MasterKeyError as exc:
        raise SystemExit(f"{exc}: set WA_MASTER_KEY or WA_MASTER_KEY_FILE, or start the service once "
                         "(it creates the data dir's master.key)") from None


async def _create(store: ApiKeyStore, args: argparse.Namespace) -> int:
    try:
        key = await store.create(args.role, args.workspace, args.id, rate_per_s=args.rate, burst=args.burst,
                                 label=args.label or "", replace=False, allowed_cidrs=args.allow_cidr,
                                 max_streams=args.max_streams or 0)
    except KeyExists as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"key_id": key.key_id, "secret": key.secret, "role": key.role,
                          "workspace_id": key.workspace_id, "rate_per_s": key.rate_per_s, "burst": key.burst,
                          "allowed_cidrs": list(key.allowed_cidrs), "max_streams": key.max_streams,
                          "generation": key.generation}))
    else:
        print(f"key id:  {key.key_id}\nsecret:  {key.secret}\nrole:    {key.role}"
              f"{' (workspace ' + key.workspace_id + ')' if key.workspace_id else ''}\n"
              f"rate:    {'unlimited' if not key.rate_per_s else f'{key.rate_per_s:g}/s, burst {key.burst}'}\n"
              f"from:    {', '.join(key.allowed_cidrs) or 'anywhere'}\n"
              "The secret is shown only now: store it in the caller's secret store.")
    return 0


async def _list(store: ApiKeyStore, args: argparse.Namespace) -> int:
    keys = await store.list()
    if args.json:
        print(json.dumps([k.__dict__ for k in keys]))
        return 0
    print(f"{'key id':<24} {'role':<10} {'workspace':<20} {'rate/s':>8} {'burst':>6}  {'from':<18}  label")
    for k in keys:
        ws = k.workspace_id or "*"
        origin = ",".join(k.allowed_cidrs) or "*"
        print(f"{k.key_id:<24} {k.role:<10} {ws:<20} {k.rate_per_s or 0:>8g} {k.burst:>6}  {origin:<18}  {k.label}")
    return 0


async def _reinstate(store: ApiKeyStore, args: argparse.Namespace) -> int:
    if await store.reinstate(args.key_id):
        print(f"reinstated {args.key_id}: the service's bootstrap key may be created under this id at its next start"
              " (a new generation: tokens from before stay refused)")
        return 0
    print(f"error: {args.key_id} is not revoked", file=sys.stderr)
    return 1


async def _revoke(store: ApiKeyStore, args: argparse.Namespace) -> int:
    if await store.revoke(args.key_id):
        print(f"revoked {args.key_id}: its signed requests and the tokens it issued are refused from now on")
        return 0
    print(f"error: no key {args.key_id}", file=sys.stderr)
    return 1


def _console_token(master: MasterKey, args: argparse.Namespace) -> int:
    # Minted by whoever holds the master key on this host: an admin console, or one workspace's.
    role = "admin" if not args.workspace else "workspace"
    token, claims = TokenSigner(master).mint("console", ws=args.workspace, role=role, kid=CLI_ISSUER,
                                             ttl_s=args.ttl)
    base = args.base_url.rstrip("/")
    if args.json:
        print(json.dumps({"token": token, "expires_at": claims.exp, "url": f"{base}/console#token={token}"}))
    else:
        print(f"open: {base}/console#token={token}\n(valid {args.ttl} s; signing out in the console revokes it)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wa-ray keys", description="manage API keys of a wa-ray service")
    p.add_argument("--data-dir", help="data directory (default .wa-ray, or WA_DATA_DIR)")
    p.add_argument("--redis-url", help="Redis of the service (default REDIS_URL, else the data dir's embedded one)")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--workspace", help="the one workspace of a workspace key (optional for read keys)")
    create.add_argument("--id", help="key id (default: generated)")
    create.add_argument("--rate", type=float, help="requests per second (0 = unlimited; default by role)")
    create.add_argument("--burst", type=int, help="burst size (default: twice the rate, at least the role's)")
    create.add_argument("--label", help="a note for `list`")
    create.add_argument("--allow-cidr", action="append", metavar="CIDR",
                        help="client network the key may be used from (repeatable; default: anywhere)")
    create.add_argument("--max-streams", type=int, metavar="N",
                        help="concurrent SSE streams of the key and its tokens (default: WA_STREAMS_PER_KEY)")
    create.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    reinstate = sub.add_parser("reinstate", help="clear a revocation, so the bootstrap key may be re-created")
    reinstate.add_argument("key_id")
    token = sub.add_parser("console-token", help="mint a console token and print the URL to open")
    token.add_argument("--workspace", help="bind the console to one workspace (default: all, admin)")
    token.add_argument("--ttl", type=int, default=CONSOLE_TTL_S, help="seconds (default 900, max 43200)")
    token.add_argument("--base-url", default=None, help="the service's URL (default from WA_HTTP_HOST/PORT)")
    token.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if args.redis_url:  # by field, not alias: REDIS_URL is the field's environment name
        settings = settings.model_copy(update={"redis_url": args.redis_url})
    master, *previous = master_keys(settings)
    if args.action == "console-token":
        if not 60 <= args.ttl <= 43_200:
            print("error: --ttl must be between 60 and 43200 seconds", file=sys.stderr)
            return 2
        if args.workspace and not is_valid_id(args.workspace):
            print("error: --workspace must match ^[a-z0-9][a-z0-9_-]{0,63}$", file=sys.stderr)
            return 2
        args.base_url = args.base_url or f"http://{settings.http_host}:{settings.http_port}"
        return _console_token(master, args)
    action = {"create": _create, "list": _list, "revoke": _revoke, "reinstate": _reinstate}[args.action]

    async def run(url: str) -> int:
        await prepare_layout(url)  # a no-op once the service has started on this data; keys live in today's layout
        client = connect(url)
        try:
            return await action(ApiKeyStore(client, master, previous), args)
        finally:
            await client.aclose()

    try:
        with data_redis.data_dir_redis(settings) as url:
            return asyncio.run(run(url))
    except data_redis.NoDataRedis as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
