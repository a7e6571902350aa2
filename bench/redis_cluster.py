"""A Redis Cluster of our own on loopback: `running_redis_cluster(directory)` yields its `redis+cluster://` URL.

What `--redis-cluster N` runs the bench against, and what the tests' cluster fixtures (tests/redis_cluster.py)
start. Masters only (no replicas), each a `redis-server` process of ours on free loopback ports (the client
port and the cluster bus port), with a password, no persistence, in a directory of its own under `directory`.
The slots are split evenly as `redis-cli --cluster create` does (3 masters: 0-5460, 5461-10922, 10923-16383),
and the cluster is formed with plain commands (ADDSLOTS, SET-CONFIG-EPOCH, MEET) so no `redis-cli` is
needed. The context returns only once every node answers `cluster_state:ok` and knows every master and every
slot, and it stops the processes on the way out (they also die with the thread that started them).

The binary is `$WA_TEST_REDIS_SERVER`, else `redis-server` on the PATH, else /usr/bin/redis-server
(`NoRedisServer` when there is none). Redis 7 takes the bus port as an option; on 6.2 the bus is the client
port + 10000.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from wa_ray.storage.embedded import free_port

SLOTS = 16384
START_TIMEOUT_S = 15.0
FORM_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
SERVER_ENV = "WA_TEST_REDIS_SERVER"


class NoRedisServer(RuntimeError):
    """No redis-server binary on this machine (Debian's `redis-server` package provides one)."""


def redis_server() -> str | None:
    """The redis-server binary the cluster runs, or None when this machine has none."""
    for candidate in (os.environ.get(SERVER_ENV), shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def server_major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    found = re.search(r"v=(\d+)\.", out)
    return int(found.group(1)) if found else 0


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """The slots of each master, first to last, split evenly."""
    bounds = [round(i * SLOTS / masters) for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the forked child imports nothing


def _die_with_parent() -> None:
    _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class _Node:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def client(self, password: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=password, decode_responses=True,
                           socket_timeout=10, socket_connect_timeout=5)

    def log_tail(self) -> str:
        try:
            return "\n".join((self.directory / "redis.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


def _start_node(binary: str, major: int, directory: Path, password: str) -> _Node:
    """One cluster-enabled server on free ports; a port taken between the check and the bind is tried again."""
    directory.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _ in range(5):
        port = free_port()
        bus_port = free_port() if major >= 7 else port + 10000
        if bus_port == port or not _bindable(bus_port):
            continue
        conf = directory / "redis.conf"
        lines = [f"port {port}", "bind 127.0.0.1", "cluster-enabled yes",
                 f"cluster-config-file {directory / 'nodes.conf'}", "cluster-node-timeout 5000",
                 f"dir {directory}", 'save ""', "appendonly no", f"requirepass {password}",
                 f"masterauth {password}", f"logfile {directory / 'redis.log'}", "daemonize no"]
        if major >= 7:
            lines.append(f"cluster-port {bus_port}")
        (directory / "nodes.conf").unlink(missing_ok=True)
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the password stays off the argv
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        process = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)  # noqa: PLW1509 - the child only calls prctl
        node = _Node(port, bus_port, directory, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with node.client(password) as client:
                    client.ping()
                return node
            except redis.RedisError:
                time.sleep(0.05)
        last_error = node.log_tail()
        node.stop()
    raise RuntimeError(f"redis-server would not start in {directory}:\n{last_error}")


def _form(nodes: list[_Node], password: str, major: int) -> None:
    """Slots to each master, distinct config epochs, then every node meets the first."""
    for i, (node, (first, last)) in enumerate(zip(nodes, slot_ranges(len(nodes)))):
        with node.client(password) as client:
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
    with nodes[0].client(password) as first_node:
        for node in nodes[1:]:
            bus = [node.bus_port] if major >= 7 else []
            first_node.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, *bus)


def _settled(nodes: list[_Node], password: str) -> bool:
    """Every node says the cluster is ok and sees every master with its slots."""
    for node in nodes:
        with node.client(password) as client:
            info = client.execute_command("CLUSTER", "INFO")
            if isinstance(info, bytes):
                info = info.decode()
            fields = dict(line.split(":", 1) for line in str(info).splitlines() if ":" in line)
            if (fields.get("cluster_state") != "ok" or int(fields.get("cluster_known_nodes", 0)) != len(nodes)
                    or int(fields.get("cluster_slots_assigned", 0)) != SLOTS):
                return False
            masters = {tuple(s[2][:2]) for s in client.execute_command("CLUSTER", "SLOTS")}
            if len(masters) != len(nodes):
                return False
    return True


def _wait_settled(nodes: list[_Node], password: str) -> None:
    deadline = time.monotonic() + FORM_TIMEOUT_S
    while not _settled(nodes, password):
        dead = [n for n in nodes if n.process.poll() is not None]
        if dead:
            raise RuntimeError(f"a cluster node exited:\n{dead[0].log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster never settled:\n{nodes[0].log_tail()}")
        time.sleep(0.1)


def cluster_url(ports: list[int], password: str) -> str:
    return f"redis+cluster://:{password}@" + ",".join(f"127.0.0.1:{port}" for port in ports)


@contextlib.contextmanager
def running_redis_cluster(directory: Path, *, masters: int = 3, password: str | None = None) -> Iterator[str]:
    """A cluster of `masters` primaries for the duration of the block; yields its `redis+cluster://` URL (every
    node listed). Raises NoRedisServer when no redis-server is installed."""
    binary = redis_server()
    if binary is None:
        raise NoRedisServer(f"no redis-server binary for a Redis Cluster (install Debian's redis-server, or set "
                            f"{SERVER_ENV})")
    if masters < 1:
        raise ValueError("a cluster has at least one master")
    major = server_major(binary)
    password = password or secrets.token_hex(16)
    nodes: list[_Node] = []
    try:
        for i in range(masters):
            nodes.append(_start_node(binary, major, Path(directory) / f"node{i}", password))
        _form(nodes, password, major)
        _wait_settled(nodes, password)
        yield cluster_url([node.port for node in nodes], password)
    finally:
        for node in nodes:
            node.stop()


@contextlib.contextmanager
def temporary_redis_cluster(masters: int) -> Iterator[str]:
    """`running_redis_cluster` in a directory of its own under the temp dir, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="wa-ray-redis-cluster-"))
    try:
        with running_redis_cluster(directory, masters=masters) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)
