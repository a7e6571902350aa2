"""cluster.yaml against the Ray cluster launcher's own schema and checks, and wa-ray's rules for it:
a head without session slots, workers advertising `wa_session_slot`, GCS fault tolerance on an
external Redis, the project and Debian chromium installed, cluster settings exported into Ray."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import validate_config

from wa_ray.supervisors.placement import SLOT
from wa_ray.config import Settings

REPO = Path(__file__).resolve().parents[2]
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_valid_for_the_ray_cluster_launcher(cluster: dict) -> None:
    assert RAY_SCHEMA.exists(), "the installed ray ships its launcher schema"
    jsonschema.validate(cluster, json.loads(RAY_SCHEMA.read_text()))
    validate_config(copy.deepcopy(cluster))  # schema + head_node_type + min_workers <= max_workers


def test_the_schema_is_strict_enough_to_catch_a_typo(cluster: dict) -> None:
    broken = copy.deepcopy(cluster)
    worker = broken["available_node_types"]["session_worker"]
    worker["resource"] = worker.pop("resources")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(RAY_SCHEMA.read_text()))


def test_head_has_no_session_slots_and_workers_do(cluster: dict) -> None:
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert not head["resources"].get(SLOT), "the head keeps the control plane, no sessions"
    assert not any(SLOT in cmd for cmd in cluster["head_start_ray_commands"])
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    assert workers
    default = Settings.model_fields["sessions_per_node"].default
    for name, worker in workers.items():
        assert worker["resources"].get(SLOT) == default, f"{name} advertises {SLOT}: {default}"
        assert worker.get("min_workers", 0) >= 1, f"{name}: at least one session node from the start"
    assert sum(t.get("min_workers", 0) for t in workers.values()) <= cluster["max_workers"]


def test_gcs_fault_tolerance_on_external_redis(cluster: dict) -> None:
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "RAY_REDIS_ADDRESS" in head_start and "--redis-password" in head_start and "--head" in head_start
    worker_start = " ".join(cluster["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in worker_start and "--head" not in worker_start
    assert "unset RAY_REDIS_ADDRESS" in worker_start, "only the head's GCS talks to the GCS Redis"


def test_cluster_settings_reach_ray(cluster: dict) -> None:
    mounts = cluster["file_mounts"]
    env_remote = next(remote for remote, local in mounts.items() if remote.endswith(".env"))
    local = mounts[env_remote]
    assert local.startswith("~/") and not (REPO / local).exists(), "secrets come from outside the repository"
    for commands in (cluster["head_start_ray_commands"], cluster["worker_start_ray_commands"]):
        start = " ".join(commands)
        assert f". {env_remote}" in start and "set -a" in start, "the env file is exported into `ray start`"
        assert "WA_AUTH_STORE=redis" in start, "auth state in Redis: any node restores any session"
        assert "WA_CHROMIUM=/usr/lib/chromium/chromium" in start
    assert mounts.get("~/wa-ray") == ".", "the checkout `ray up` runs from is synced to every node"


def test_setup_installs_chromium_and_the_project_with_the_same_ray(cluster: dict) -> None:
    setup = "\n".join(cluster["setup_commands"])
    assert re.search(r"apt-get install [^\n]*\bchromium\b", setup), "Debian's chromium"
    pins = re.findall(r'"ray\[[a-z,]+\]==([0-9.]+)"', setup)
    assert pins == [ray.__version__], "the launcher needs the same Ray on the cluster as where `ray up` runs"
    assert re.search(r"pip install [^\n]*~/wa-ray\b", setup), "the project, from the synced checkout"
    assert any("boto3" in c for c in cluster["head_setup_commands"]), "the head's autoscaler launches AWS workers"
    assert cluster["auth"]["ssh_user"] == "admin", "the Debian AMIs' user"
