"""deploy/serve.yaml is a valid Ray Serve config, names only options Serve knows, and each
import_path resolves to a builder that Serve can call and that yields the deployments the config
overrides. No Ray cluster: the builders' cluster steps are replaced by recorders."""

from __future__ import annotations

import base64
import importlib
import os
from pathlib import Path
from types import FunctionType

import pytest
import yaml
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema, ServeApplicationSchema, ServeDeploySchema

from wa_ray.entry import deploy_entry
from wa_ray.entry.wiring import APP_NAME
from wa_ray.serve_app.app import Ingress
from wa_ray.serve_app.provider_selector import SELECTOR_DEPLOYMENT

REPO = Path(__file__).resolve().parents[2]


def load() -> dict:
    return yaml.safe_load((REPO / "deploy" / "serve.yaml").read_text())


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The environment a cluster node has, and the builders' Ray steps recorded instead of run."""
    monkeypatch.setenv("REDIS_URL", "redis://:pw@redis.internal:6379/0")
    monkeypatch.setenv("WA_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("WA_AUTH_STORE", "redis")
    calls: list[str] = []
    monkeypatch.setattr(deploy_entry, "wait_for_slot_nodes",
                        lambda timeout_s: calls.append(f"wait {timeout_s}") or ["node-1"])
    monkeypatch.setattr(deploy_entry, "start_control_plane", lambda config, settings: calls.append("control plane"))
    return calls


def test_valid_serve_deploy_schema() -> None:
    config = ServeDeploySchema.model_validate(load())
    assert config.http_options.host == "0.0.0.0" and config.http_options.port == 8000
    routes = {app.name: app.route_prefix for app in config.applications}
    assert routes == {APP_NAME: "/"}, "one app: the selector is bound into the Ingress, not found by name"


def test_only_options_serve_knows() -> None:
    """ServeDeploySchema ignores unknown keys (forward compatibility), so a typo would be silently dropped."""
    config = load()
    assert set(config) <= ServeDeploySchema.model_fields.keys()
    for app in config["applications"]:
        assert set(app) <= ServeApplicationSchema.model_fields.keys() - {"host", "port"}, app["name"]
        for deployment in app.get("deployments", []):
            assert set(deployment) <= DeploymentSchema.model_fields.keys(), deployment["name"]
            assert set(deployment.get("ray_actor_options", {})) <= RayActorOptionsSchema.model_fields.keys()


def test_import_paths_resolve_to_builders_serve_can_call(cluster_env: list[str]) -> None:
    for app in load()["applications"]:
        module, _, attr = app["import_path"].partition(":")
        builder = getattr(importlib.import_module(module), attr)
        assert isinstance(builder, FunctionType), "an application builder, so `args` reach it"
        built = build_app(call_user_app_builder_with_args_if_necessary(builder, app.get("args", {})), name=app["name"])
        names = {d.name for d in built.deployments}
        overridden = {d["name"] for d in app.get("deployments", [])}
        assert overridden <= names, f"{app['name']}: Serve refuses options for deployments the app lacks"
        assert names == {Ingress.name, SELECTOR_DEPLOYMENT}, "the selector is composed into the ingress app"
        assert built.ingress_deployment_name == Ingress.name
        ingress = next(d for d in built.deployments if d.name == Ingress.name)
        handles = [a for a in ingress.init_args if isinstance(a, DeploymentHandle)]
        assert [h.deployment_name for h in handles] == [SELECTOR_DEPLOYMENT], "the Ingress is given the selector's handle"
    assert cluster_env == ["wait 120.0", "control plane"], "slots first, then the control plane, once"


def test_deployment_names_and_ingress_options_match_the_code() -> None:
    apps = {app["name"]: app for app in load()["applications"]}
    ingress, selector = apps[APP_NAME]["deployments"]
    assert selector["name"] == SELECTOR_DEPLOYMENT and selector["num_replicas"] == 1, "one watcher announces flips"
    assert ingress["name"] == Ingress.name
    # the config overrides the code: keep the measured limits (SSE streams hold requests open)
    assert ingress["max_ongoing_requests"] == Ingress.max_ongoing_requests
    assert ingress["max_queued_requests"] == Ingress.max_queued_requests
    assert apps["wa-ray"]["logging_config"]["enable_access_log"] is False
    for app in apps.values():
        for deployment in app["deployments"]:
            assert deployment["ray_actor_options"]["num_cpus"] == 0, "I/O-bound; must fit a head with num-cpus 0"


def test_no_secret_in_the_config() -> None:
    text = (REPO / "deploy" / "serve.yaml").read_text()
    for app in load()["applications"]:
        assert not set(app.get("args", {})) & deploy_entry.SECRET_SETTINGS
        assert not app.get("runtime_env", {}).get("env_vars")
    assert "redis://" not in text and "WA_MASTER_KEY=" not in text
