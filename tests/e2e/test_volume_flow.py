"""The whole flow on the dev cluster: a pod writes files through a RazorFS volume (a RazorVolume, or a
claim on the RazorFS StorageClass); they land in S3 with their content and metadata; deleting the pod
unstages (flushing); deleting the volume removes PV, PVC and, for reclaim policy Delete, the objects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]

T = TypeVar("T")
STEP_TIMEOUT_S = 90.0
NUMBERS = "".join(f"{i}\n" for i in range(1, 200_001)).encode()  # what `seq 1 200000` prints (~1.3 MB)
NUMBERS_50K = "".join(f"{i}\n" for i in range(1, 50_001)).encode()
# The pod's command: files of known content, a chmod, a subdirectory; exits 0 when all is written.
WRITER = (
    "set -e; printf 'hello razorfs' > /data/hello.txt; chmod 600 /data/hello.txt; "
    "mkdir -p /data/sub; seq 1 200000 > /data/sub/numbers.txt; ls -lR /data"
)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # not there yet in one of many ways; shown if we give up
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last error: {last!r})")


def writer_pod(namespace: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "writer", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "writer", "image": "busybox:1.36", "command": ["sh", "-c", WRITER],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def pod_phase(core: Any, namespace: str, name: str) -> str:
    return str(core.read_namespaced_pod(name, namespace).status.phase)


def gone(call: Callable[[], Any]) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def keys_under(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def mounts_in(kubelet_dir: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(kubelet_dir)]


def run_writer_and_delete_it(core: Any, applier: Applier, dev: dev_cluster.DevState, namespace: str, claim: str,
                             while_published: Callable[[], None] = lambda: None) -> None:
    applier.apply(writer_pod(namespace, claim))
    wait_for("writer pod finished", lambda: pod_phase(core, namespace, "writer") in ("Succeeded", "Failed"))
    assert pod_phase(core, namespace, "writer") == "Succeeded", f"writer pod failed; logs in {dev.root}/logs"
    assert mounts_in(dev.kubelet_dir), "the volume stays staged and published until the pod is deleted"
    while_published()
    core.delete_namespaced_pod("writer", namespace)
    # A finished pod is removed from the API at once; kubelet (the harness) then unpublishes and
    # unstages, and the plugin unmounts only after flushing every dirty file.
    wait_for("writer pod gone", lambda: gone(lambda: core.read_namespaced_pod("writer", namespace)))
    wait_for("volume unpublished and unstaged", lambda: mounts_in(dev.kubelet_dir) == [])


def assert_written_files_in_s3(s3: Any, bucket: str, prefix: str) -> None:
    # Checked right after the pod is gone, without waiting: unstaging flushes before it returns.
    keys = keys_under(s3, bucket, prefix)
    assert prefix + "hello.txt" in keys and prefix + "sub/numbers.txt" in keys, sorted(keys)
    assert s3.get_object(Bucket=bucket, Key=prefix + "hello.txt")["Body"].read() == b"hello razorfs"
    assert s3.get_object(Bucket=bucket, Key=prefix + "sub/numbers.txt")["Body"].read() == NUMBERS
    meta = s3.head_object(Bucket=bucket, Key=prefix + "hello.txt")["Metadata"]
    # s3fs's and rclone's header names: mode (decimal st_mode), uid, gid, mtime.
    assert int(meta["mode"]) & 0o777 == 0o600, meta
    assert int(meta["mode"]) & 0o170000 == 0o100000, meta
    assert "mtime" in meta and "uid" in meta and "gid" in meta, meta


def test_razorvolume_pod_files_reach_s3_and_delete_removes_pv_pvc_and_objects(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    applier.apply({
        "apiVersion": "razorfs.io/v1alpha1",
        "kind": "RazorVolume",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {
            "s3": {"endpoint": dev.s3_endpoint, "bucket": dev.bucket, "prefix": prefix, "region": dev.region,
                   "forcePathStyle": True, "secretRef": {"name": dev_cluster.SECRET_NAME}},
            "accessModes": ["ReadWriteMany"],
            "reclaimPolicy": "Delete",
            "cache": {"mode": "writeback", "size": "1Gi", "metadataTTL": "1s"},
        },
    })

    def rv() -> dict[str, Any]:
        got: dict[str, Any] = custom.get_namespaced_custom_object("razorfs.io", "v1alpha1", namespace,
                                                                  "razorvolumes", "data")
        return got

    status = wait_for("RazorVolume Ready", lambda: (rv().get("status") or {}).get("phase") == "Ready"
                      and rv()["status"])
    pv_name, claim = status["persistentVolumeName"], status["claimName"]
    assert claim == "data"

    def node_reports_mount() -> None:
        # While the pod holds the volume, the operator reports this node's mount over NodeAdmin.
        nodes = wait_for("status.nodes reports node local", lambda: [
            n for n in (rv().get("status") or {}).get("nodes") or [] if n["name"] == dev_cluster.NODE_NAME])
        assert nodes[0]["state"] == "Mounted", nodes

    run_writer_and_delete_it(core, applier, dev, namespace, claim, node_reports_mount)
    assert_written_files_in_s3(s3, dev.bucket, prefix + "/")

    custom.delete_namespaced_custom_object("razorfs.io", "v1alpha1", namespace, "razorvolumes", "data")
    wait_for("RazorVolume gone", lambda: gone(rv))
    assert gone(lambda: core.read_namespaced_persistent_volume_claim(claim, namespace))
    assert gone(lambda: core.read_persistent_volume(pv_name))
    assert keys_under(s3, dev.bucket, prefix + "/") == {}, "reclaimPolicy Delete removes the objects"


def test_storageclass_claim_pod_files_reach_s3_and_delete_removes_pv_and_objects(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    applier.apply({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "scratch", "namespace": namespace},
        "spec": {"storageClassName": dev_cluster.STORAGE_CLASS, "accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    })
    pvc = wait_for("claim bound", lambda: (c := core.read_namespaced_persistent_volume_claim("scratch", namespace))
                   .status.phase == "Bound" and c)
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.csi.driver == dev_cluster.DRIVER
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    attributes = pv.spec.csi.volume_attributes or {}
    assert attributes.get("bucket") == dev.bucket
    prefix = attributes["prefix"].rstrip("/") + "/"
    assert prefix.startswith("pvc/"), attributes

    run_writer_and_delete_it(core, applier, dev, namespace, "scratch")
    assert_written_files_in_s3(s3, dev.bucket, prefix)

    core.delete_namespaced_persistent_volume_claim("scratch", namespace)
    wait_for("provisioned PV deleted", lambda: gone(lambda: core.read_persistent_volume(pv.metadata.name)))
    assert gone(lambda: core.read_namespaced_persistent_volume_claim("scratch", namespace))
    assert keys_under(s3, dev.bucket, prefix) == {}, "DeleteVolume removes the volume's objects"


def test_pod_without_a_command_is_failed_with_a_reason_instead_of_running_something_else(
    dev: dev_cluster.DevState, api: Any, namespace: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "entrypoint-only"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    })
    status = wait_for("pod failed", lambda: (s := core.read_namespaced_pod("entrypoint-only", namespace).status)
                      and s.phase == "Failed" and s)
    assert status.reason == "Unsupported" and "command" in status.message
