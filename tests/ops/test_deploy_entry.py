"""wa_ray/entry/deploy_entry.py: what the config-file builders refuse, the RuntimeConfig they build (the
same as `Service.start`'s), and the wait for session-slot nodes. No Ray cluster."""

from __future__ import annotations

import ast
import base64
import dataclasses
import inspect
import os
from pathlib import Path

import pytest
import ray

from wa_ray.entry import deploy_entry
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import load_master_keys
from wa_ray.entry.deploy_entry import DeployConfigError, runtime_config, settings_from
from wa_ray.config import RuntimeConfig, Settings

REPO = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("WA_") or name in ("REDIS_URL", "RAY_ADDRESS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", "redis://:pw@redis.internal:6379/0")
    monkeypatch.setenv("WA_MASTER_KEY", KEY)
    monkeypatch.setenv("WA_AUTH_STORE", "redis")
    return monkeypatch


@pytest.mark.parametrize("unset, message", [("REDIS_URL", "REDIS_URL"), ("WA_MASTER_KEY", "WA_MASTER_KEY"),
                                            ("WA_AUTH_STORE", "WA_AUTH_STORE")])
def test_a_cluster_needs_shared_redis_one_key_and_auth_state_in_redis(env, unset: str, message: str) -> None:
    env.delenv(unset)
    with pytest.raises(DeployConfigError, match=message):
        settings_from({})


@pytest.mark.parametrize("args, message", [
    ({"redis_url": "redis://x"}, "secrets"), ({"master_key": KEY}, "secrets"), ({"api_key_secret": "s"}, "secrets"),
    ({"web_ur": "https://x"}, "unknown"), ({"http_port": 9000}, "unknown"), ({"ray_address": "auto"}, "unknown"),
])
def test_config_args_refuse_secrets_and_unknown_names(env, args: dict, message: str) -> None:
    with pytest.raises(DeployConfigError, match=message):
        settings_from(args)


def test_args_override_the_environment(env) -> None:
    env.setenv("WA_WEB_URL", "https://from-env.example/")
    settings, deploy = settings_from({"web_url": "https://web.whatsapp.com", "qr_max_refs": 3,
                                      "wait_for_slot_nodes_s": 5})
    assert settings.web_url == "https://web.whatsapp.com" and settings.qr_max_refs == 3
    assert deploy == {"wait_for_slot_nodes_s": 5.0}
    assert settings_from({})[1] == {"wait_for_slot_nodes_s": 120.0}


def test_every_runtime_config_field_comes_from_settings() -> None:
    """Settings.runtime sets every field, so an added RuntimeConfig field cannot be forgotten."""
    settings = Settings(data_dir=Path("/tmp/x"), chromium="/bin/true", pacing=False, qr_max_refs=4)
    built = settings.runtime("redis://127.0.0.1:1/0", "a2V5")
    assert built.pacing is False and built.qr_max_refs == 4 and built.redis_url.endswith(":1/0")
    source = ast.parse(inspect.getsource(Settings.runtime).strip().replace("\n    ", "\n"))
    keywords = {k.arg for n in ast.walk(source) if isinstance(n, ast.Call) for k in n.keywords}
    assert keywords == {f.name for f in dataclasses.fields(RuntimeConfig)} - {"chromium_flags"}


def test_runtime_config_values(env) -> None:
    env.setenv("WA_MASTER_KEY_PREVIOUS", base64.b64encode(bytes(32)).decode())
    env.setenv("WA_PACING", "false")
    env.setenv("WA_SESSIONS_PER_NODE", "7")
    settings, _ = settings_from({"web_url": "https://sim.example/"})
    config = runtime_config(settings)
    assert config.redis_url == "redis://:pw@redis.internal:6379/0"
    # the key is named (each node's WA_MASTER_KEY) and identified, never carried: the config is an actor argument
    assert config.master_key_file is None and config.master_key_id == MasterKey.from_b64(KEY).key_id.decode()
    assert KEY not in repr(config) and KEY not in str(dataclasses.asdict(config))
    assert [k.b64() for k in load_master_keys(config)] == [KEY, os.environ["WA_MASTER_KEY_PREVIOUS"]]
    assert (config.auth_store, config.pacing, config.sessions_per_node, config.web_url) == (
        "redis", False, 7, "https://sim.example/")
    assert config.data_dir == str(settings.data_dir.resolve())
    for field in dataclasses.fields(RuntimeConfig):
        # egress_allow: one comma-separated string in the environment, parsed into a tuple for the actors
        if field.name in Settings.model_fields.keys() - {"redis_url", "data_dir", "egress_allow"}:
            assert getattr(config, field.name) == getattr(settings, field.name), field.name


def test_a_malformed_master_key_fails_at_build(env) -> None:
    env.setenv("WA_MASTER_KEY", base64.b64encode(b"sixteen bytes...").decode())
    settings, _ = settings_from({})
    with pytest.raises(ValueError, match="32 bytes"):
        runtime_config(settings)


NODES = [
    {"NodeID": "head", "Alive": True, "Resources": {"CPU": 2.0, "node:__internal_head__": 1.0}},
    {"NodeID": "dead", "Alive": False, "Resources": {"wa_session_slot": 50.0}},
]
WORKER = {"NodeID": "w1", "Alive": True, "Resources": {"CPU": 4.0, "wa_session_slot": 50.0}}


def test_slot_and_head_nodes() -> None:
    assert deploy_entry.slot_nodes(NODES) == [] and deploy_entry.slot_nodes([*NODES, WORKER]) == ["w1"]
    assert deploy_entry.head_node([*NODES, WORKER]) == "head" and deploy_entry.head_node([WORKER]) is None
    assert deploy_entry.SLOT == __import__("wa_ray.supervisors.placement").supervisors.placement.SLOT


def test_wait_for_slot_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([NODES, NODES, [*NODES, WORKER]])
    monkeypatch.setattr(ray, "nodes", lambda: next(answers))
    assert deploy_entry.wait_for_slot_nodes(5, poll_s=0.001) == ["w1"], "waits for a worker to join"
    monkeypatch.setattr(ray, "nodes", lambda: NODES)
    assert deploy_entry.wait_for_slot_nodes(0) == [], "0: do not wait (a single node without slots)"
    with pytest.raises(RuntimeError, match="wa_session_slot"):
        deploy_entry.wait_for_slot_nodes(0.02, poll_s=0.005)
