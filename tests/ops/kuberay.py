"""An offline check of KubeRay RayService manifests (ray.io/v1).

`RAYSERVICE_SCHEMA` is a JSON Schema derived by hand from KubeRay's Go API types
(ray-operator/apis/ray/v1: RayServiceSpec, RayClusterSpec, HeadGroupSpec, WorkerGroupSpec,
GcsFaultToleranceOptions, RedisCredential) for the KubeRay 1.3-1.6 field names, plus the parts of
Kubernetes' PodTemplateSpec a manifest here uses (containers, env/valueFrom, resources). KubeRay's
objects are closed (`additionalProperties: false`) so a misspelt field fails here instead of being
silently dropped by the API server; pod specs stay open (Kubernetes has too many fields to list).

`rule_errors` mirrors the checks the KubeRay operator makes before it reconciles
(ray-operator/controllers/ray/utils/validation.go: ValidateRayServiceMetadata,
ValidateRayClusterSpec, ValidateRayServiceSpec), which the CRD schema alone does not express.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
MAX_RAYSERVICE_NAME = 47  # MaxRayClusterNameLength (53) - 6 for the generated cluster suffix
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
FT_ANNOTATION = "ray.io/ft-enabled"
STORAGE_NS_ANNOTATION = "ray.io/external-storage-namespace"

_str_map = {"type": "object", "additionalProperties": {"type": "string"}}
_int32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_quantity = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": QUANTITY}]}
_key_ref = {
    "type": "object", "required": ["key"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}},
}
_env_var_source = {
    "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
    "properties": {
        "secretKeyRef": _key_ref,
        "configMapKeyRef": _key_ref,
        "fieldRef": {"type": "object", "required": ["fieldPath"],
                     "properties": {"apiVersion": {"type": "string"}, "fieldPath": {"type": "string"}}},
        "resourceFieldRef": {"type": "object", "required": ["resource"],
                             "properties": {"containerName": {"type": "string"}, "resource": {"type": "string"},
                                            "divisor": _quantity}},
    },
}
_env_var = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "value": {"type": "string"},
                   "valueFrom": _env_var_source},
    "not": {"required": ["value", "valueFrom"]},
}
_container = {
    "type": "object", "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "image": {"type": "string", "minLength": 1},
        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "array", "items": _env_var},
        "envFrom": {"type": "array", "items": {"type": "object"}},
        "ports": {"type": "array", "items": {
            "type": "object", "required": ["containerPort"], "additionalProperties": False,
            "properties": {"containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                           "name": {"type": "string", "maxLength": 15}, "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                           "hostPort": {"type": "integer"}, "hostIP": {"type": "string"}}}},
        "resources": {"type": "object", "additionalProperties": False, "properties": {
            "limits": {"type": "object", "additionalProperties": _quantity},
            "requests": {"type": "object", "additionalProperties": _quantity},
            "claims": {"type": "array"}}},
        "volumeMounts": {"type": "array", "items": {
            "type": "object", "required": ["name", "mountPath"],
            "properties": {"name": {"type": "string"}, "mountPath": {"type": "string"}}}},
    },
}
_pod_template = {
    "type": "object", "required": ["spec"], "additionalProperties": False,
    "properties": {
        "metadata": {"type": "object", "properties": {"labels": _str_map, "annotations": _str_map}},
        "spec": {"type": "object", "required": ["containers"], "properties": {
            "containers": {"type": "array", "minItems": 1, "items": _container},
            "initContainers": {"type": "array", "items": _container},
            "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
            "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]},
            "nodeSelector": _str_map,
            "serviceAccountName": {"type": "string"},
        }},
    },
}
_redis_credential = {
    "type": "object", "additionalProperties": False,
    "properties": {"valueFrom": _env_var_source, "value": {"type": "string"}},
}
_head_group = {
    "type": "object", "required": ["template"], "additionalProperties": False,
    "properties": {
        "template": _pod_template,
        "headService": {"type": "object"},
        "enableIngress": {"type": "boolean"},
        "rayStartParams": _str_map,
        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
        "resources": _str_map,
        "labels": _str_map,
    },
}
_worker_group = {
    "type": "object", "required": ["groupName", "template"], "additionalProperties": False,
    "properties": {
        "suspend": {"type": "boolean"},
        "groupName": {"type": "string", "minLength": 1},
        "replicas": _int32,
        "minReplicas": _int32,
        "maxReplicas": _int32,
        "idleTimeoutSeconds": _int32,
        "rayStartParams": _str_map,
        "template": _pod_template,
        "scaleStrategy": {"type": "object", "additionalProperties": False,
                          "properties": {"workersToDelete": {"type": "array", "items": {"type": "string"}}}},
        "numOfHosts": {"type": "integer", "minimum": 1},
        "resources": _str_map,
        "labels": _str_map,
    },
}
_cluster_spec = {
    "type": "object", "required": ["headGroupSpec"], "additionalProperties": False,
    "properties": {
        "suspend": {"type": "boolean"},
        "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
        "autoscalerOptions": {"type": "object"},
        "headServiceAnnotations": _str_map,
        "enableInTreeAutoscaling": {"type": "boolean"},
        "gcsFaultToleranceOptions": {
            "type": "object", "required": ["redisAddress"], "additionalProperties": False,
            "properties": {"redisUsername": _redis_credential, "redisPassword": _redis_credential,
                           "externalStorageNamespace": {"type": "string"},
                           "redisAddress": {"type": "string", "minLength": 1}}},
        "headGroupSpec": _head_group,
        "rayVersion": {"type": "string"},
        "workerGroupSpecs": {"type": "array", "items": _worker_group},
        "authOptions": {"type": "object"},
        "upgradeStrategy": {"type": "object"},
    },
}
RAYSERVICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayService"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"},
            "labels": _str_map, "annotations": _str_map}},
        "spec": {
            "type": "object", "required": ["serveConfigV2", "rayClusterConfig"], "additionalProperties": False,
            "properties": {
                "serveConfigV2": {"type": "string", "minLength": 1},
                "rayClusterConfig": _cluster_spec,
                "upgradeStrategy": {"type": "object", "additionalProperties": False, "properties": {
                    "type": {"enum": ["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]},
                    "clusterUpgradeOptions": {"type": "object"}}},
                "serveService": {"type": "object"},
                "excludeHeadPodFromServeSvc": {"type": "boolean"},
                "rayClusterDeletionDelaySeconds": {"type": "integer", "minimum": 0},
                "serviceUnhealthySecondThreshold": {"type": "integer"},
                "deploymentUnhealthySecondThreshold": {"type": "integer"},
            },
        },
    },
}


def schema_errors(manifest: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(RAYSERVICE_SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e.get("name") for e in container.get("env") or []}


def rule_errors(manifest: dict[str, Any]) -> list[str]:
    """What the KubeRay operator refuses although the CRD schema lets it through."""
    errors = []
    meta = manifest.get("metadata") or {}
    name, annotations = meta.get("name", ""), meta.get("annotations") or {}
    if len(name) > MAX_RAYSERVICE_NAME:
        errors.append(f"RayService name longer than {MAX_RAYSERVICE_NAME} characters")
    if not DNS1035.match(name):
        errors.append("RayService name is not a DNS-1035 label")
    cluster = (manifest.get("spec") or {}).get("rayClusterConfig") or {}
    head = cluster.get("headGroupSpec") or {}
    groups = [("Head", head), *[(w.get("groupName", "?"), w) for w in cluster.get("workerGroupSpecs") or []]]
    for group_name, group in groups:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            errors.append(f"{group_name} group has no container")
        params = group.get("rayStartParams") or {}
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            errors.append(f"{group_name}: resources set in both rayStartParams and resources")
        if "labels" in params:
            errors.append(f"{group_name}: rayStartParams['labels'] is not supported; use the group's labels")
        if params.get("redis-username") or any("REDIS_USERNAME" in _env_names(c) for c in containers[:1]):
            errors.append(f"{group_name}: redis username only through gcsFaultToleranceOptions.redisUsername")
    head_containers = ((head.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    head_env = _env_names(head_containers[0])
    ft = cluster.get("gcsFaultToleranceOptions")
    if ft is not None:
        if annotations.get(FT_ANNOTATION):
            errors.append(f"{FT_ANNOTATION} annotation and gcsFaultToleranceOptions are both set")
        if (head.get("rayStartParams") or {}).get("redis-password"):
            errors.append("redis-password in rayStartParams with gcsFaultToleranceOptions")
        for var in ("REDIS_PASSWORD", "RAY_REDIS_ADDRESS"):
            if var in head_env:
                errors.append(f"{var} env var in the head with gcsFaultToleranceOptions")
        if annotations.get(STORAGE_NS_ANNOTATION):
            errors.append(f"{STORAGE_NS_ANNOTATION} annotation with gcsFaultToleranceOptions")
    elif "RAY_REDIS_ADDRESS" in head_env and annotations.get(FT_ANNOTATION) != "true":
        errors.append("RAY_REDIS_ADDRESS set without gcsFaultToleranceOptions")
    return errors


def ray_start_resources(params: dict[str, str]) -> dict[str, Any]:
    """The custom resources of `rayStartParams.resources`, which KubeRay passes through a shell
    (`--resources="{\\"x\\": 1}"`): a double-quoted, backslash-escaped JSON object."""
    import json

    raw = params.get("resources")
    if raw is None:
        return {}
    if not (len(raw) >= 2 and raw[0] == raw[-1] == '"'):
        raise ValueError(f"rayStartParams.resources must be shell-quoted JSON, got {raw!r}")
    return json.loads(raw[1:-1].replace('\\"', '"'))
