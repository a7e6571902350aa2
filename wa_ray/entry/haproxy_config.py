"""The HAProxy launcher of `WA_INGRESS=haproxy`: Ray writes HAProxy's configuration, this makes it fit for a
multi-tenant API, then becomes haproxy.

Ray 2.60's HAProxyManager starts `$RAY_SERVE_HAPROXY_BINARY_PATH -db -f <config> [-sf <pids> -x <socket>]` on
every start and reload. wa_ray/entry/haproxy_ingress.py points that at a two-line script that runs this
module, which reads Ray's config, writes `harden()`'s version beside it and execs the real haproxy on it with
the same arguments. What `harden()` changes, and why each:

- **The caller's address.** Ray's frontend forwards none, so the Ingress replica would see every caller as
  HAProxy and judge the keys' IP allow-lists (serve_app/auth.py) against HAProxy's address. `option forwardfor`
  appends the caller's address to X-Forwarded-For; the replica's uvicorn (Ray starts it with uvicorn's
  defaults) takes the client from that header when the connection comes from a trusted proxy address
  (`FORWARDED_ALLOW_IPS`, default 127.0.0.1): HAProxy on the same node. It is the rule Serve's own proxy
  applies, so a key's allow-list judges the same address under either ingress.
- **The scheme.** X-Forwarded-Proto is set to what the caller used (a caller's own value would otherwise be
  believed by the replica, which trusts HAProxy's headers), so the console's cookies are Secure over TLS.
- **TLS.** With WA_TLS_CERT / WA_TLS_KEY, HAProxy terminates TLS on the frontend (`ssl crt`) and serves HTTPS
  only; Serve's `ssl_*` options would make the replica speak TLS to HAProxy instead.
- **No access log.** Ray logs every request line (syslog to 127.0.0.1:514), and a browser's SSE URL carries
  its stream token in the query: secrets never go to logs, so the global log target is removed, and any other
  log target is refused rather than kept.
- **Where the API listens.** The service gives Serve 127.0.0.1 as its HTTP host in this mode, so the replica's
  own uvicorn (ports 30000-31000) and Serve's fallback proxy serve plain HTTP on loopback only, and the
  frontend is bound to WA_HTTP_HOST here: HAProxy is the only listener a client elsewhere can reach.
- **Loopback only for HAProxy's own listeners.** Ray binds its Prometheus exporter and stats page to every
  interface (`bind :9101`, `bind *:8404`): bound to 127.0.0.1. Any other listener outside the frontend that is
  not on loopback (a gRPC frontend's `bind :9000 proto h2`, should Ray write one) is refused, not guessed at.
  Its admin socket is made 0600 (Ray makes it 0666; the HAProxyManager runs as the same user).

HAProxy is the HAProxyManager's child and Ray does not stop it when that worker dies (a crashed node, `ray stop`):
the launcher asks the kernel to end it with its parent (PR_SET_PDEATHSIG survives the exec), so no HAProxy of
a stopped service keeps its port.

Anything `harden()` expects and does not find (Ray changed its template) stops the launcher with a message on
stderr (Ray keeps it in the HAProxyManager's per-spawn log) instead of starting an HAProxy that leaks.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

HTTP_FRONTEND = "frontend http_frontend"
_ANY_INTERFACE_BIND = re.compile(r"^(\s*)bind\s+(?:\*|0\.0\.0\.0)?:(\d+)\s*$")
# A listener of HAProxy's own (stats, Prometheus) that is already on loopback, or a unix socket: kept as it is.
_LOOPBACK_BIND = re.compile(r"^\s*bind\s+(?:127\.0\.0\.1:\d+|\[::1\]:\d+|/\S+|unix@\S+)(?:\s|$)")
_FRONTEND_BIND = re.compile(r"^(\s*)bind\s+(\S+)\s*$")
_ADMIN_SOCKET_MODE = re.compile(r"(stats socket \S+ .*)\bmode 666\b")


class UnexpectedConfig(ValueError):
    """Ray's HAProxy configuration does not have the shape harden() was written against."""


@dataclass(frozen=True)
class HardenOptions:
    tls_pem: Path | None = None  # HAProxy's `crt`: the certificate, its key beside it as `<crt>.key`
    frontend_host: str | None = None  # WA_HTTP_HOST; None keeps Ray's address


def harden(config: str, options: HardenOptions) -> str:
    """Ray's HAProxy configuration with the changes the module docstring lists; raises UnexpectedConfig when
    a line it must change is not there, or a log target it does not know is."""
    out: list[str] = []
    section = ""
    frontend_bound = admin_socket = False
    for line in config.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            section = stripped
        words = stripped.split()
        if words[:1] == ["log"] and words[1:2] != ["global"]:
            if section == "global":
                continue  # the access log's target: nothing is logged without it
            raise UnexpectedConfig(f"a log target in {section!r}: {stripped!r}")
        if words[:2] == ["stats", "socket"]:
            line, admin_socket = _ADMIN_SOCKET_MODE.sub(r"\1mode 600", line), True
            if "mode 600" not in line:
                raise UnexpectedConfig(f"the admin socket's mode: {stripped!r}")
        if section == HTTP_FRONTEND and words[:1] == ["bind"]:
            match = _FRONTEND_BIND.match(line)
            if not match or frontend_bound:
                raise UnexpectedConfig(f"the HTTP frontend's bind: {stripped!r}")
            indent, address = match.groups()
            if options.frontend_host:
                address = f"{options.frontend_host}:{address.rpartition(':')[2]}"
            tls = f" ssl crt {options.tls_pem}" if options.tls_pem else ""
            out += [f"{indent}bind {address}{tls}", f"{indent}option forwardfor",
                    f"{indent}http-request set-header X-Forwarded-Proto {'https' if tls else 'http'}"]
            frontend_bound = True
            continue
        if section != HTTP_FRONTEND and words[:1] == ["bind"]:
            if match := _ANY_INTERFACE_BIND.match(line):
                line = f"{match.group(1)}bind 127.0.0.1:{match.group(2)}"
            elif not _LOOPBACK_BIND.match(line):  # e.g. a gRPC frontend's `bind :9000 proto h2`: not ours to guess
                raise UnexpectedConfig(f"a listener beyond loopback in {section!r}: {stripped!r}")
        out.append(line)
    if not frontend_bound or not admin_socket:
        raise UnexpectedConfig("no HTTP frontend bind" if not frontend_bound else "no admin socket")
    return "\n".join(out) + "\n"


def _config_path(haproxy_args: list[str]) -> int:
    """The index of the config path in haproxy's arguments (after `-f`)."""
    try:
        return haproxy_args.index("-f") + 1
    except ValueError:
        raise UnexpectedConfig(f"no -f in {haproxy_args}") from None


_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        sys.stderr.write(f"wa-ray: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}\n")
    if os.getppid() == 1:  # the parent died before the request took effect
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", required=True, help="the real haproxy binary")
    parser.add_argument("--tls-pem", type=Path, default=None)
    parser.add_argument("--frontend-host", default=None)
    parser.add_argument("haproxy_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    haproxy_args = list(args.haproxy_args[1:] if args.haproxy_args[:1] == ["--"] else args.haproxy_args)
    try:
        at = _config_path(haproxy_args)
        source = Path(haproxy_args[at])
        hardened = source.with_name(source.name + ".wa-ray")
        text = harden(source.read_text(), HardenOptions(tls_pem=args.tls_pem, frontend_host=args.frontend_host))
    except (UnexpectedConfig, OSError) as exc:
        sys.stderr.write(f"wa-ray: refusing to start HAProxy on Ray's configuration: {exc}\n")
        raise SystemExit(78) from None  # EX_CONFIG
    fd = os.open(hardened, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    haproxy_args[at] = str(hardened)
    _end_with_parent()
    os.execv(args.haproxy, [args.haproxy, *haproxy_args])


if __name__ == "__main__":
    main()
