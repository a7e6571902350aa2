"""deploy/rayservice.yaml against a schema derived from KubeRay's ray.io/v1 types and the operator's
own validation rules (tests/ops/kuberay.py), and wa-ray's rules for it; deploy/Dockerfile, its image."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import ray
import yaml

from wa_ray.supervisors.placement import SLOT
from tests.ops.kuberay import ray_start_resources, rule_errors, schema_errors
from wa_ray.config import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest() -> dict:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "rayservice.yaml").read_text()) if d]
    assert len(docs) == 1
    return docs[0]


def containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def groups(manifest: dict) -> list[dict]:
    cluster = manifest["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def test_valid_rayservice(manifest: dict) -> None:
    assert schema_errors(manifest) == []
    assert rule_errors(manifest) == []


@pytest.mark.parametrize("break_it, expect", [
    (lambda m: m["spec"]["rayClusterConfig"].__setitem__("workerGroupSpec", []), "workerGroupSpec"),
    (lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    (lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["rayStartParams"].__setitem__("num-cpus", 4),
     "is not of type 'string'"),
    (lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"][0]
     .__setitem__("value", "redis://:pw@x"), "should not be valid"),
    (lambda m: m["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"].pop("redisAddress"), "redisAddress"),
    (lambda m: m["spec"].__setitem__("upgradeStrategy", {"type": "BlueGreen"}), "BlueGreen"),
])
def test_schema_catches_mistakes(manifest: dict, break_it, expect: str) -> None:
    broken = copy.deepcopy(manifest)
    break_it(broken)
    assert any(expect in e for e in schema_errors(broken)), schema_errors(broken)


@pytest.mark.parametrize("break_it, expect", [
    (lambda m: m["metadata"].__setitem__("name", "wa-ray-" + "x" * 41), "longer than 47"),
    (lambda m: m["metadata"].__setitem__("annotations", {"ray.io/ft-enabled": "true"}), "both set"),
    (lambda m: containers(m["spec"]["rayClusterConfig"]["headGroupSpec"])[0]["env"].append(
        {"name": "RAY_REDIS_ADDRESS", "value": "redis:6379"}), "RAY_REDIS_ADDRESS"),
    (lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"].__setitem__(
        "containers", []), "no container"),
])
def test_operator_rules_catch_mistakes(manifest: dict, break_it, expect: str) -> None:
    broken = copy.deepcopy(manifest)
    break_it(broken)
    assert any(expect in e for e in rule_errors(broken)), rule_errors(broken)


def test_session_slots_on_workers_not_on_the_head(manifest: dict) -> None:
    cluster = manifest["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    assert SLOT not in ray_start_resources(head.get("rayStartParams", {})) and SLOT not in head.get("resources", {})
    assert head["rayStartParams"].get("num-cpus") == "0", "the head keeps the control plane only"
    default = Settings.model_fields["sessions_per_node"].default
    assert cluster["workerGroupSpecs"]
    for worker in cluster["workerGroupSpecs"]:
        assert worker["rayStartParams"]["resources"] == '"{\\"wa_session_slot\\": 50}"'
        assert ray_start_resources(worker["rayStartParams"]) == {SLOT: default}
        assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"] and worker["minReplicas"] >= 1


def test_settings_from_the_secret(manifest: dict) -> None:
    for group in groups(manifest):
        for container in containers(group):
            env = {e["name"]: e for e in container["env"]}
            for name, key in (("REDIS_URL", "redis-url"), ("WA_MASTER_KEY", "master-key")):
                assert "value" not in env[name], f"{name} never in the manifest"
                ref = env[name]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "wa-ray-secrets", "key": key}, ref
            assert env["WA_AUTH_STORE"]["value"] == "redis"
            assert not any("value" in e for n, e in env.items() if "SECRET" in n or "KEY" in n or "PASSWORD" in n)
    ft = manifest["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert ft["redisAddress"] and ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == "wa-ray-secrets"


def test_serve_config_is_deploy_serve_yaml(manifest: dict) -> None:
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((REPO / "deploy" / "serve.yaml").read_text())


def test_versions_and_upgrades(manifest: dict) -> None:
    spec = manifest["spec"]
    assert spec["rayClusterConfig"]["rayVersion"] == ray.__version__
    images = {c["image"] for g in groups(manifest) for c in containers(g)}
    assert len(images) == 1, "head and workers run the same image"
    assert spec["upgradeStrategy"] == {"type": "None"}, "two clusters would drive the same WhatsApp sessions"
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is False


def test_dockerfile_builds_the_image_the_manifest_needs() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    assert re.match(r"FROM \S*bookworm\b", lines[0]), "Debian, for Debian's chromium"
    apt = next(line for line in lines if "apt-get install" in line)
    assert re.search(r"\bchromium\b", apt) and re.search(r"\bwget\b", apt), "the browser; KubeRay's probes"
    assert re.findall(r'"ray\[[a-z,]+\]==([0-9.]+)"', text) == [ray.__version__], "Ray = the manifest's rayVersion"
    copied = {m.group(1) for m in re.finditer(r"^COPY (?!--)(\S+) /home/ray/wa-ray/", text, re.MULTILINE)}
    assert not any(src in (".", "./") for src in copied), "never the whole tree (.venv, .wa-ray keys)"
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    packages = set(package_dir.values())  # the folders that install as wa_ray.<folder>
    assert packages <= copied, f"packages missing from the image: {packages - copied}"
    assert "ENV WA_CHROMIUM=/usr/lib/chromium/chromium" in text.replace("\\\n", "")
