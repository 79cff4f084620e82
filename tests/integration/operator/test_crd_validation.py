"""The API server itself enforces the RazorVolume schema, defaults and CEL rules of the chart's CRD
(no operator runs in this module)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import GROUP, PLURAL, VERSION, razorvolume, s3_spec

pytestmark = pytest.mark.kube

ENDPOINT = "http://s3.example.test:9000"


def create(custom_api: Any, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom_api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, razorvolume(name, spec)
    )
    return created


def rejection(call: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


def patch_spec(custom_api: Any, namespace: str, name: str, spec_patch: dict[str, Any]) -> Any:
    return custom_api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec_patch})


def test_minimal_razorvolume_is_accepted_and_defaulted(custom_api: Any, kube_namespace: str) -> None:
    created = create(custom_api, kube_namespace, "minimal", s3_spec(ENDPOINT, "my-bucket"))
    spec = created["spec"]
    assert spec["s3"]["prefix"] == ""
    assert spec["s3"]["region"] == "us-east-1"
    assert spec["s3"]["forcePathStyle"] is True
    assert spec["capacity"] == "1Ti"
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["reclaimPolicy"] == "Retain"
    assert spec["cache"] == {"mode": "writeback", "size": "10Gi", "metadataTTL": "1s"}
    assert spec["mountOptions"] == {"fileMode": "0644", "dirMode": "0755", "readOnly": False}


def test_short_name_rv_and_category_are_registered(razorvolume_crd: dict[str, Any]) -> None:
    names = razorvolume_crd["spec"]["names"]
    assert "rv" in names["shortNames"]


def test_missing_bucket_is_rejected_with_the_field_named(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "x")
    del spec["s3"]["bucket"]
    message = rejection(lambda: create(custom_api, kube_namespace, "nobucket", spec))
    assert "spec.s3.bucket: Required value" in message


def test_bad_reclaim_policy_is_rejected_with_the_allowed_values(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket", prefix="vol", reclaimPolicy="Sometimes")
    message = rejection(lambda: create(custom_api, kube_namespace, "badpolicy", spec))
    assert "spec.reclaimPolicy" in message and '"Retain", "Delete"' in message


def test_invalid_bucket_name_is_rejected(custom_api: Any, kube_namespace: str) -> None:
    message = rejection(lambda: create(custom_api, kube_namespace, "badname", s3_spec(ENDPOINT, "Bad_Bucket")))
    assert "spec.s3.bucket" in message


def test_prefix_with_leading_slash_is_rejected(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket", prefix="/vol")
    message = rejection(lambda: create(custom_api, kube_namespace, "slash", spec))
    assert "spec.s3.prefix" in message


def test_changing_bucket_after_creation_is_rejected(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "fixed", s3_spec(ENDPOINT, "first-bucket", prefix="vol"))
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "fixed", {"s3": {"bucket": "other-bucket"}}))
    assert "s3.bucket is immutable" in message


def test_changing_prefix_after_creation_is_rejected(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "fixedprefix", s3_spec(ENDPOINT, "first-bucket", prefix="vol"))
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "fixedprefix", {"s3": {"prefix": "other"}}))
    assert "s3.prefix is immutable" in message


def test_cache_mode_is_immutable_but_capacity_and_warmup_may_change(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "mutable", s3_spec(ENDPOINT, "my-bucket", prefix="vol"))
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "mutable", {"cache": {"mode": "writethrough"}}))
    assert "cache mode, size and metadataTTL are immutable" in message
    updated = patch_spec(
        custom_api,
        kube_namespace,
        "mutable",
        {"capacity": "2Ti", "reclaimPolicy": "Delete", "cache": {"warmup": {"paths": ["models/"]}}},
    )
    assert updated["spec"]["capacity"] == "2Ti"
    assert updated["spec"]["cache"]["warmup"]["paths"] == ["models/"]


def test_readonly_cache_needs_a_read_only_mount_or_access(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket", cache={"mode": "readonly"})
    message = rejection(lambda: create(custom_api, kube_namespace, "rocache", spec))
    assert "cache.mode readonly needs mountOptions.readOnly" in message
    create(custom_api, kube_namespace, "rocache-rox", {**spec, "accessModes": ["ReadOnlyMany"]})
    create(custom_api, kube_namespace, "rocache-ro", {**spec, "mountOptions": {"readOnly": True}})


def test_reclaim_policy_delete_needs_a_prefix(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket", reclaimPolicy="Delete")
    message = rejection(lambda: create(custom_api, kube_namespace, "wipeall", spec))
    assert "reclaimPolicy Delete needs a non-empty s3.prefix" in message


def test_read_write_once_and_many_are_allowed_but_once_pod_stands_alone(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "rwo", s3_spec(ENDPOINT, "my-bucket", accessModes=["ReadWriteOnce"]))
    create(
        custom_api,
        kube_namespace,
        "rwo-rwx",
        s3_spec(ENDPOINT, "my-bucket", accessModes=["ReadWriteOnce", "ReadWriteMany"]),
    )
    spec = s3_spec(ENDPOINT, "my-bucket", accessModes=["ReadWriteOncePod", "ReadWriteMany"])
    message = rejection(lambda: create(custom_api, kube_namespace, "rwop", spec))
    assert "ReadWriteOncePod cannot be combined" in message


def test_kms_key_id_needs_kms_encryption(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket")
    spec["s3"]["sse"] = {"type": "AES256", "kmsKeyID": "key-1"}
    message = rejection(lambda: create(custom_api, kube_namespace, "sse", spec))
    assert "sse.kmsKeyID is only valid with sse.type aws:kms" in message


def test_storage_class_name_cannot_be_added_later(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "sc", s3_spec(ENDPOINT, "my-bucket"))
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "sc", {"storageClassName": "fast"}))
    assert "storageClassName is immutable" in message


def test_status_rejects_an_unknown_phase(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "st", s3_spec(ENDPOINT, "my-bucket"))
    message = rejection(
        lambda: custom_api.patch_namespaced_custom_object_status(
            GROUP, VERSION, kube_namespace, PLURAL, "st", {"status": {"phase": "Happy"}}
        )
    )
    assert "status.phase" in message


def test_capacity_may_grow_in_any_unit_but_never_shrink(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "grow", s3_spec(ENDPOINT, "my-bucket", capacity="1Gi"))
    for larger in ("2Gi", "2048Mi", "2.5G", "1Ti"):  # 2.5G = 2.5e9 > 2048Mi = 2.147e9
        patch_spec(custom_api, kube_namespace, "grow", {"capacity": larger})
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "grow", {"capacity": "1000G"}))
    assert "capacity cannot shrink" in message
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "grow", {"capacity": "lots"}))
    assert "capacity must be a number with an optional unit" in message
    assert "cannot shrink" not in message  # a malformed value gets one clear sentence, not a CEL error


@pytest.mark.parametrize(
    ("prefix", "sentence"),
    [
        ("data/", "s3.prefix must not start or end with a slash"),
        ("/data", "s3.prefix must not start or end with a slash"),
        ("a//b", "must not contain an empty, '.' or '..' path segment"),
        ("a/../b", "must not contain an empty, '.' or '..' path segment"),
    ],
)
def test_a_prefix_with_stray_slashes_or_dots_is_refused_with_a_sentence(
    custom_api: Any, kube_namespace: str, prefix: str, sentence: str
) -> None:
    name = f"p{abs(hash(prefix)) % 10**6}"
    message = rejection(lambda: create(custom_api, kube_namespace, name, s3_spec(ENDPOINT, "my-bucket", prefix=prefix)))
    assert sentence in message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("s3.endpoint", "ftp://s3"),
        ("s3.bucket", "Bad_Bucket"),
        ("s3.region", "US East"),
        ("s3.secretRef.name", "Bad_Name"),
        ("capacity", "1Xi"),
        ("cache.size", "big"),
        ("cache.metadataTTL", "1d"),
        ("mountOptions.fileMode", "999"),
        ("mountPod.resources.limits.memory", "lots"),
        ("storageClassName", "Bad_Class"),
    ],
)
def test_format_errors_are_sentences_not_regular_expressions(
    custom_api: Any, kube_namespace: str, path: str, value: Any
) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket")
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    message = rejection(lambda: create(custom_api, kube_namespace, "fmt", spec))
    assert f"spec.{path}" in message and " must " in message, message
    assert "should match" not in message and "^" not in message, message


def test_openapi_schema_served_for_kubectl_explain_describes_every_field(
    kube_api_client: Any, razorvolume_crd: dict[str, Any]
) -> None:
    """`kubectl explain razorvolume.spec --recursive` prints what the server publishes here."""
    method, url, headers, _, _ = kube_api_client.param_serialize(
        "GET",
        f"/openapi/v3/apis/{GROUP}/{VERSION}",
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    body = json.loads(kube_api_client.call_api(method, url, header_params=headers).read())
    schemas = body["components"]["schemas"]
    (root,) = [
        s for s in schemas.values() if s.get("x-kubernetes-group-version-kind", [{}])[0].get("kind") == "RazorVolume"
    ]
    undescribed: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if not node.get("description"):
            undescribed.append(path)
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    for field in ("apiVersion", "kind", "spec", "status"):
        walk(root["properties"][field], f"razorvolume.{field}")
    assert undescribed == []
    assert len(root["properties"]["spec"]["properties"]) >= 7  # the walk saw the real tree


@pytest.mark.parametrize("field", ["spec.cache", "spec.s3.prefix", "spec.capacity", "status.nodes.warmedPaths"])
def test_kubectl_explain_shows_the_description(
    kube_apiserver: Any, razorvolume_crd: dict[str, Any], field: str
) -> None:
    import subprocess

    from tests.realparts.kubeapi import test_binary

    argv = [str(test_binary("kubectl")), "--kubeconfig", str(kube_apiserver.kubeconfig), "explain", f"rv.{field}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("DESCRIPTION:", 1)[1].split("FIELDS:", 1)[0].strip()
    assert len(description.split()) >= 3, result.stdout


def test_mount_pod_settings_are_accepted_and_immutable(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket")
    spec["mountPod"] = {
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "priorityClassName": "storage-critical",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoSchedule"}],
    }
    created = create(custom_api, kube_namespace, "podsettings", spec)
    assert created["spec"]["mountPod"] == spec["mountPod"]
    change = {"mountPod": {"priorityClassName": "other"}}
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "podsettings", change))
    assert "mountPod is immutable" in message
