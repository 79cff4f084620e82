"""RazorVolume reconciliation on the real kube-apiserver and a real S3 server, with
`razorfs-operator` running as in production (one process for the module)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realparts.kubeapi import ADMIN_TOKEN

from .conftest import (
    GROUP,
    PLURAL,
    VERSION,
    WRONG_SECRET_KEY,
    OperatorProcess,
    ProtectionStandIn,
    condition,
    create_secret,
    delete_razorvolumes,
    events_with_reason,
    eventually,
    razorvolume,
)

pytestmark = [pytest.mark.kube, pytest.mark.s3]


@pytest.fixture(autouse=True)
def _running(
    operator_process: OperatorProcess,
    protection_controllers: ProtectionStandIn,
    custom_api: Any,
    core_api: Any,
    kube_namespace: str,
) -> Iterator[None]:
    """Every test here runs against the module's operator and the protection stand-in, and leaves
    no RazorVolume, PV or PVC behind."""
    yield
    delete_razorvolumes(custom_api, core_api, kube_namespace)


def require_credential_checks(s3_server: Any) -> None:
    if s3_server.kind == "moto":
        # Not a pass: moto's standalone server accepts any signature, so there is nothing to observe.
        pytest.skip("moto's S3 server does not verify credentials; these run on SeaweedFS (the default)")


def spec_for(s3_server: Any, bucket: str, secret: str, **extra: Any) -> dict[str, Any]:
    s3 = {"endpoint": s3_server.endpoint_url, "bucket": bucket, "secretRef": {"name": secret}, "prefix": "vol"}
    s3.update(extra.pop("s3", {}))
    return {"s3": s3, **extra}


def get_rv(custom_api: Any, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = custom_api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return found


def apply_rv(custom_api: Any, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom_api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, razorvolume(name, spec)
    )
    return created


def wait_phase(custom_api: Any, namespace: str, name: str, phase: str, timeout_s: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        rv = get_rv(custom_api, namespace, name)
        return rv if (rv.get("status") or {}).get("phase") == phase else None

    found: dict[str, Any] = eventually(reached, timeout_s, f"RazorVolume {name} phase {phase}")
    return found


def rv_gone(custom_api: Any, namespace: str, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        get_rv(custom_api, namespace, name)
    except ApiException as exc:
        return exc.status == 404
    return False


def test_valid_razorvolume_becomes_ready_with_pv_and_pvc_bound_to_each_other(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "data", spec_for(s3_server, bucket, s3_secret, capacity="5Gi"))
    rv = wait_phase(custom_api, kube_namespace, "data", "Ready", timeout_s=20)
    status = rv["status"]
    uid = rv["metadata"]["uid"]
    assert status["claimName"] == "data"
    assert status["persistentVolumeName"] == f"razorfs-{uid}"
    assert status["observedGeneration"] == rv["metadata"]["generation"]
    for type_ in ("Ready", "S3Reachable", "Bound"):
        cond = condition(rv, type_)
        assert cond is not None and cond["status"] == "True", (type_, status)
        assert cond["observedGeneration"] == rv["metadata"]["generation"]
    in_use = condition(rv, "InUse")
    assert in_use is not None and in_use["status"] == "False"

    pvc = core_api.read_namespaced_persistent_volume_claim("data", kube_namespace)
    pv = core_api.read_persistent_volume(status["persistentVolumeName"])
    assert pvc.spec.volume_name == pv.metadata.name
    assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name, pv.spec.claim_ref.uid) == (
        kube_namespace,
        "data",
        pvc.metadata.uid,
    )
    assert pvc.spec.storage_class_name == "" and not pv.spec.storage_class_name
    assert pv.spec.capacity["storage"] == "5Gi"
    assert pv.spec.csi.driver == "razorfs.csi.io"
    assert pv.spec.csi.volume_handle == status["volumeHandle"]
    assert pv.spec.csi.volume_attributes["bucket"] == bucket
    assert pv.spec.csi.volume_attributes["prefix"] == "vol"
    assert pv.spec.csi.node_stage_secret_ref.name == s3_secret
    assert pv.spec.csi.node_stage_secret_ref.namespace == kube_namespace
    # The write check cleaned up after itself.
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)


def test_operator_metrics_count_successful_reconciliations(
    custom_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str, operator_process: Any
) -> None:
    import urllib.request

    apply_rv(custom_api, kube_namespace, "metered", spec_for(s3_server, bucket, s3_secret))
    wait_phase(custom_api, kube_namespace, "metered", "Ready", timeout_s=20)
    assert operator_process.metrics_url is not None
    with urllib.request.urlopen(operator_process.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    samples = [
        line for line in text.splitlines() if line.startswith('razorfs_operator_reconciles_total{handler="converge"')
    ]
    assert any('outcome="ok"' in line and float(line.split()[-1]) >= 1 for line in samples), samples


def test_capacity_growth_reaches_the_pv_and_the_bound_claim_and_observed_generation_follows(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "grow", spec_for(s3_server, bucket, s3_secret, capacity="1Gi"))
    rv = wait_phase(custom_api, kube_namespace, "grow", "Ready")
    # What the PV controller (not run here) does on binding: the claim reports the PV's capacity.
    bound = {"status": {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "1Gi"}}}
    core_api.patch_namespaced_persistent_volume_claim_status("grow", kube_namespace, bound)
    custom_api.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "grow", {"spec": {"capacity": "3Gi"}}
    )

    def observed_new_generation() -> dict[str, Any] | None:
        current = get_rv(custom_api, kube_namespace, "grow")
        generation = current["metadata"]["generation"]
        return current if current["status"].get("observedGeneration") == generation > 1 else None

    updated = eventually(observed_new_generation, 20, "observedGeneration of the capacity change")
    assert updated["status"]["phase"] == "Ready"
    assert (condition(updated, "Ready") or {}).get("observedGeneration") == updated["metadata"]["generation"]
    pv = core_api.read_persistent_volume(rv["status"]["persistentVolumeName"])
    assert pv.spec.capacity["storage"] == "3Gi"
    claim = core_api.read_namespaced_persistent_volume_claim("grow", kube_namespace)
    assert claim.status.capacity["storage"] == "3Gi" and claim.status.phase == "Bound"
    assert claim.spec.resources.requests["storage"] == "1Gi"  # the request stays what was asked
    time.sleep(2)  # a few more resync runs, which must not announce Ready again
    events = events_with_reason(core_api, kube_namespace, "grow", "Ready")
    assert [e.reason for e in events if e.reason == "Ready"] == ["Ready"], "one Ready event, not one per run"


def test_existing_foreign_claim_of_the_same_name_is_a_conflict_not_adopted(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    foreign = {
        "metadata": {"name": "taken"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core_api.create_namespaced_persistent_volume_claim(kube_namespace, foreign)
    apply_rv(custom_api, kube_namespace, "taken", spec_for(s3_server, bucket, s3_secret))
    rv = wait_phase(custom_api, kube_namespace, "taken", "Failed")
    assert (condition(rv, "Ready") or {}).get("reason") == "ClaimConflict"
    assert "claimName" not in rv["status"] and "persistentVolumeName" not in rv["status"]
    claim = core_api.read_namespaced_persistent_volume_claim("taken", kube_namespace)
    assert claim.spec.volume_name is None and not (claim.metadata.labels or {})


def test_deleted_claim_is_recreated_and_the_pv_reserved_for_the_new_one(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "repair", spec_for(s3_server, bucket, s3_secret))
    rv = wait_phase(custom_api, kube_namespace, "repair", "Ready")
    old_uid = core_api.read_namespaced_persistent_volume_claim("repair", kube_namespace).metadata.uid
    core_api.delete_namespaced_persistent_volume_claim("repair", kube_namespace)

    def recreated() -> Any:
        claims = core_api.list_namespaced_persistent_volume_claim(kube_namespace).items
        fresh = [c for c in claims if c.metadata.uid != old_uid and not c.metadata.deletion_timestamp]
        if not fresh:
            return None
        pv = core_api.read_persistent_volume(rv["status"]["persistentVolumeName"])
        return fresh[0] if pv.spec.claim_ref.uid == fresh[0].metadata.uid else None

    claim = eventually(recreated, 30, "claim recreated and PV re-reserved by the resync timer")
    assert claim.spec.volume_name == rv["status"]["persistentVolumeName"]
    assert (condition(get_rv(custom_api, kube_namespace, "repair"), "Bound") or {}).get("status") == "True"


def test_printer_columns_show_phase_bucket_prefix_claim_ready_and_age(
    custom_api: Any, kube_apiserver: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "cols", spec_for(s3_server, bucket, s3_secret))
    wait_phase(custom_api, kube_namespace, "cols", "Ready")
    # What `kubectl get rv` prints: the server-side Table built from the CRD's printer columns.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(
        f"{kube_apiserver.url}/apis/{GROUP}/{VERSION}/namespaces/{kube_namespace}/{PLURAL}",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io", "Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        table = json.loads(response.read())
    default = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert default == ["Name", "Phase", "Bucket", "Prefix", "Claim", "Ready", "Age"]
    # The node-side figures are for -o wide (priority 1); test_node_state.py checks their values.
    wide = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 1]
    assert wide == ["Nodes", "CachedBytes", "DirtyBytes", "Warmup", "Warmed%"]
    (row,) = table["rows"]
    assert row["cells"][:6] == ["cols", "Ready", bucket, "vol", "cols", "True"]
    assert row["cells"][6:9] == [0, 0, 0], "no node has the volume staged"


def test_wrong_credentials_give_ready_false_with_reason_and_no_secret(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, operator_process: OperatorProcess
) -> None:
    require_credential_checks(s3_server)
    create_secret(core_api, kube_namespace, "bad-creds", s3_server.access_key, WRONG_SECRET_KEY)
    apply_rv(custom_api, kube_namespace, "badcreds", spec_for(s3_server, bucket, "bad-creds"))
    rv = wait_phase(custom_api, kube_namespace, "badcreds", "Failed")
    ready, s3 = condition(rv, "Ready"), condition(rv, "S3Reachable")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "CredentialsRejected"
    assert s3 is not None and s3["status"] == "False"
    assert f"{kube_namespace}/bad-creds" in ready["message"]
    assert "claimName" not in rv["status"], "no claim is offered for a volume whose mounts must fail"
    events = events_with_reason(core_api, kube_namespace, "badcreds", "CredentialsRejected")
    assert all(e.type == "Warning" for e in events if e.reason == "CredentialsRejected")
    everything = json.dumps(rv) + "".join(e.message or "" for e in events) + operator_process.log()
    assert WRONG_SECRET_KEY not in everything and s3_server.secret_key not in everything


def test_fixing_the_secret_makes_a_failed_volume_ready(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str
) -> None:
    require_credential_checks(s3_server)
    create_secret(core_api, kube_namespace, "late-creds", s3_server.access_key, WRONG_SECRET_KEY)
    apply_rv(custom_api, kube_namespace, "late", spec_for(s3_server, bucket, "late-creds"))
    wait_phase(custom_api, kube_namespace, "late", "Failed")
    import base64

    core_api.patch_namespaced_secret(
        "late-creds",
        kube_namespace,
        {"data": {"secretAccessKey": base64.b64encode(s3_server.secret_key.encode()).decode()}},
    )
    wait_phase(custom_api, kube_namespace, "late", "Ready", timeout_s=30)


def test_missing_secret_and_missing_bucket_are_named_in_the_condition(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "nosecret", spec_for(s3_server, bucket, "absent"))
    apply_rv(custom_api, kube_namespace, "nobucket", spec_for(s3_server, "no-such-bucket-razorfs", s3_secret))
    nosecret = wait_phase(custom_api, kube_namespace, "nosecret", "Failed")
    nobucket = wait_phase(custom_api, kube_namespace, "nobucket", "Failed")
    assert (condition(nosecret, "Ready") or {}).get("reason") == "SecretNotFound"
    assert (condition(nobucket, "Ready") or {}).get("reason") == "BucketNotFound"


def _put_objects(s3_server: Any, bucket: str, prefix: str, count: int) -> None:
    client = s3_server.client()
    for index in range(count):
        client.put_object(Bucket=bucket, Key=f"{prefix}file-{index}", Body=b"x" * 10)


def _keys(s3_server: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_usage_is_reported_from_s3(
    custom_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    _put_objects(s3_server, bucket, "vol/", 7)
    _put_objects(s3_server, bucket, "other/", 2)
    apply_rv(custom_api, kube_namespace, "usage", spec_for(s3_server, bucket, s3_secret))

    def usage() -> dict[str, Any] | None:
        found: dict[str, Any] | None = get_rv(custom_api, kube_namespace, "usage").get("status", {}).get("usage")
        return found

    measured = eventually(usage, 20, "usage in status")
    assert (measured["objects"], measured["bytes"], measured.get("truncated")) == (7, 70, False)


def test_delete_with_reclaim_policy_delete_removes_pvc_pv_and_objects(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "gone", spec_for(s3_server, bucket, s3_secret, reclaimPolicy="Delete"))
    rv = wait_phase(custom_api, kube_namespace, "gone", "Ready")
    pv_name = rv["status"]["persistentVolumeName"]
    _put_objects(s3_server, bucket, "vol/", 1205)  # more than one DeleteObjects batch
    _put_objects(s3_server, bucket, "volume-neighbour/", 3)
    custom_api.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "gone")
    eventually(lambda: rv_gone(custom_api, kube_namespace, "gone"), 30, "RazorVolume removed")
    assert not core_api.list_namespaced_persistent_volume_claim(kube_namespace).items
    assert pv_name not in [pv.metadata.name for pv in core_api.list_persistent_volume().items]
    assert sorted(_keys(s3_server, bucket)) == [f"volume-neighbour/file-{i}" for i in range(3)]


def test_delete_with_reclaim_policy_retain_keeps_objects(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "kept", spec_for(s3_server, bucket, s3_secret))
    rv = wait_phase(custom_api, kube_namespace, "kept", "Ready")
    _put_objects(s3_server, bucket, "vol/", 3)
    custom_api.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "kept")
    eventually(lambda: rv_gone(custom_api, kube_namespace, "kept"), 30, "RazorVolume removed")
    assert not core_api.list_namespaced_persistent_volume_claim(kube_namespace).items
    assert rv["status"]["persistentVolumeName"] not in [
        pv.metadata.name for pv in core_api.list_persistent_volume().items
    ]
    assert len(_keys(s3_server, bucket)) == 3


def test_pod_using_the_claim_blocks_deletion_until_it_is_deleted(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any, bucket: str, s3_secret: str
) -> None:
    apply_rv(custom_api, kube_namespace, "busy", spec_for(s3_server, bucket, s3_secret, reclaimPolicy="Delete"))
    wait_phase(custom_api, kube_namespace, "busy", "Ready")
    _put_objects(s3_server, bucket, "vol/", 2)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "user"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "busy"}}],
        },
    }
    core_api.create_namespaced_pod(kube_namespace, pod)
    eventually(
        lambda: (condition(get_rv(custom_api, kube_namespace, "busy"), "InUse") or {}).get("status") == "True",
        20,
        "InUse=True while the pod exists",
    )
    custom_api.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "busy")
    rv = wait_phase(custom_api, kube_namespace, "busy", "Terminating")
    in_use = eventually(lambda: condition(get_rv(custom_api, kube_namespace, "busy"), "InUse"), 10, "InUse condition")
    assert in_use["status"] == "True" and "user" in in_use["message"]
    # It keeps waiting: the claim and the objects are still there a few retries later.
    time.sleep(3)
    assert not rv_gone(custom_api, kube_namespace, "busy")
    assert core_api.read_namespaced_persistent_volume_claim("busy", kube_namespace).metadata.deletion_timestamp is None
    assert len(_keys(s3_server, bucket)) == 2
    events_with_reason(core_api, kube_namespace, "busy", "PodsUsingClaim")
    assert rv["metadata"]["deletionTimestamp"]

    core_api.delete_namespaced_pod("user", kube_namespace, grace_period_seconds=0)
    eventually(lambda: rv_gone(custom_api, kube_namespace, "busy"), 30, "RazorVolume removed after the pod")
    assert not _keys(s3_server, bucket)
