"""Where each process gets the master key from: a key file or its own environment, never an argument.

The key is not part of `RuntimeConfig`: that config is a Ray actor constructor argument, so it is
kept in the GCS (and in the GCS's Redis when GCS fault tolerance is on). The config carries only a
reference, `master_key_file` (or None for "WA_MASTER_KEY in this process's environment"), and the
non-secret `master_key_id`, so a process that found a different key fails at start instead of
writing blobs no other process can read.

Key file: one base64 key per line, 0600. The first line is the current key (it encrypts); further
lines are previous keys, still accepted for decryption while `wa-ray rotate-key` re-encrypts. It is
only ever replaced whole (temp file, fsync, rename, fsync of the directory), so a crash leaves either
the old file or the new one, never half of one.

On a cluster the file must exist at the same path on every node, or every node's environment must
have WA_MASTER_KEY (and WA_MASTER_KEY_PREVIOUS while rotating).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wa_ray.crypto import MasterKey
from wa_ray.runtime import RuntimeConfig

log = logging.getLogger(__name__)

ENV_KEY = "WA_MASTER_KEY"
ENV_PREVIOUS = "WA_MASTER_KEY_PREVIOUS"  # comma-separated base64 keys


class MasterKeyError(ValueError):
    """No key where the config says, a malformed one, or not the key the service was started with."""


def read_key_file(path: str | Path) -> tuple[MasterKey, ...]:
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise MasterKeyError(f"no master key file at {path}") from None
    if not lines:
        raise MasterKeyError(f"master key file {path} is empty")
    try:
        return tuple(MasterKey.from_b64(line) for line in lines)
    except ValueError:
        raise MasterKeyError(f"master key file {path} holds a malformed key") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(path: str | Path, keys: Sequence[MasterKey]) -> None:
    """Replace the file whole and durably: after this returns, a power cut keeps exactly `keys`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(k.b64() + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def ensure_key_file(path: str | Path) -> tuple[MasterKey, ...]:
    """The keys in `path`, generating one first (0600, never printed) when there is no file."""
    path = Path(path)
    if not path.exists():
        write_key_file(path, [MasterKey.from_b64(MasterKey.generate_b64())])
        log.warning("generated a master key in %s; keep a copy of it: without it the stored secrets are lost",
                    path)
    return read_key_file(path)


def keys_from_env(env: Mapping[str, str]) -> tuple[MasterKey, ...]:
    current = env.get(ENV_KEY, "").strip()
    if not current:
        raise MasterKeyError(f"{ENV_KEY} is not set in this process's environment")
    try:
        return (MasterKey.from_b64(current),
                *(MasterKey.from_b64(k) for k in env.get(ENV_PREVIOUS, "").split(",") if k.strip()))
    except ValueError:
        raise MasterKeyError(f"{ENV_KEY} or {ENV_PREVIOUS} is not base64 of 32 bytes") from None


class KeySource(Protocol):
    master_key_file: str | None
    master_key_id: str


@dataclass(frozen=True)
class KeyRef:
    """A key source for tools that have Settings but no RuntimeConfig (the CLIs)."""

    master_key_file: str | None
    master_key_id: str = ""


def current_key_id(key_file: str | Path | None, *, create: bool) -> str:
    """The driver's look before it builds the RuntimeConfig: the current key's id (the key file is
    generated first when `create` and absent)."""
    if key_file is None:
        keys = keys_from_env(os.environ)
    else:
        keys = ensure_key_file(key_file) if create else read_key_file(key_file)
    return keys[0].key_id.decode()


def load_master_keys(config: RuntimeConfig | KeySource, env: Mapping[str, str] | None = None) -> tuple[MasterKey, ...]:
    """(current, *previous) for this process, from the config's key file or this process's environment."""
    keys = read_key_file(config.master_key_file) if config.master_key_file else keys_from_env(
        os.environ if env is None else env)
    if config.master_key_id and keys[0].key_id.decode() != config.master_key_id:
        raise MasterKeyError(f"this process's master key (id {keys[0].key_id.decode()}) is not the service's "
                             f"(id {config.master_key_id}): every node needs the same key")
    return keys


def master_and_previous(config: RuntimeConfig | KeySource) -> tuple[MasterKey, tuple[MasterKey, ...]]:
    """`load_master_keys` split as the stores take it: `ProviderStore(redis, *master_and_previous(config))`."""
    current, *previous = load_master_keys(config)
    return current, tuple(previous)
