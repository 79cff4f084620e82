"""The whole flow on a real node with the chart installed by helm: pods in containers write and read
through RazorFS volumes (a RazorVolume, or a claim provisioned by the real csi-provisioner); files
land in S3 with their content and metadata; deleting a pod unstages (flushing) before the volume is
released; deleting the volume removes PV, PVC and, for reclaim policy Delete, the objects."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier

from .workloads import (
    exec_in,
    finished,
    gone,
    keys_under,
    pod,
    razorvolume,
    running,
    wait_for,
    wait_unstaged,
)

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]

NUMBERS = "".join(f"{i}\n" for i in range(1, 200_001)).encode()  # what `seq 1 200000` prints (~1.3 MB)
WRITER = (
    "set -e; printf 'hello razorfs' > /data/hello.txt; chmod 600 /data/hello.txt; "
    "mkdir -p /data/sub; seq 1 200000 > /data/sub/numbers.txt; ls -lR /data"
)


def write_then_delete_pod(core: Any, applier: Applier, dev: dev_cluster.DevState, namespace: str, claim: str) -> None:
    applier.apply(pod("writer", namespace, dev.image, WRITER, claim))
    result = finished(core, namespace, "writer")
    assert result == "Succeeded", dev.node.kubectl("logs", "-n", namespace, "writer", check=False)
    # The kubelet tears down a finished pod's volumes: unpublish, then unstage, and the plugin
    # unmounts only after flushing every dirty file.
    wait_unstaged(dev)
    core.delete_namespaced_pod("writer", namespace)
    wait_for("writer pod gone", lambda: gone(lambda: core.read_namespaced_pod("writer", namespace)))


def assert_written_files_in_s3(s3: Any, bucket: str, prefix: str) -> None:
    # Checked right after the mounts are gone, without waiting: unstaging flushes before it returns.
    keys = keys_under(s3, bucket, prefix)
    assert prefix + "hello.txt" in keys and prefix + "sub/numbers.txt" in keys, sorted(keys)
    assert s3.get_object(Bucket=bucket, Key=prefix + "hello.txt")["Body"].read() == b"hello razorfs"
    assert s3.get_object(Bucket=bucket, Key=prefix + "sub/numbers.txt")["Body"].read() == NUMBERS
    meta = s3.head_object(Bucket=bucket, Key=prefix + "hello.txt")["Metadata"]
    # s3fs's and rclone's header names: mode (decimal st_mode), uid, gid, mtime.
    assert int(meta["mode"]) & 0o777 == 0o600, meta
    assert int(meta["mode"]) & 0o170000 == 0o100000, meta
    assert "mtime" in meta and "uid" in meta and "gid" in meta, meta


def test_chart_pods_are_ready_with_their_sidecars(dev: dev_cluster.DevState, api: Any) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE).items
    by_component = {p.metadata.labels.get("app.kubernetes.io/component"): p for p in pods}
    assert {"operator", "node", "controller"} <= set(by_component), [p.metadata.name for p in pods]
    for component in ("operator", "node", "controller"):
        ready = [c for c in by_component[component].status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", (component, by_component[component].status.conditions)
    node_containers = {c.name: c for c in by_component["node"].status.container_statuses}
    assert {"node", "node-driver-registrar", "liveness-probe"} <= set(node_containers)
    assert all(c.ready and c.state.running for c in node_containers.values()), node_containers
    controller_containers = {c.name for c in by_component["controller"].status.container_statuses}
    assert "csi-provisioner" in controller_containers
    # node-driver-registrar registered the driver with the kubelet: the CSINode lists it.
    storage: Any = client.StorageV1Api(api)
    drivers = wait_for("CSINode lists razorfs", lambda: [
        d.name for d in storage.read_csi_node(dev_cluster.NODE_NAME).spec.drivers or []
        if d.name == dev_cluster.DRIVER])
    assert drivers == [dev_cluster.DRIVER]


def test_razorvolume_pod_files_reach_s3_and_delete_removes_pv_pvc_and_objects(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    applier.apply(razorvolume("data", namespace, dev, prefix))

    def rv() -> dict[str, Any]:
        got: dict[str, Any] = custom.get_namespaced_custom_object("razorfs.io", "v1alpha1", namespace,
                                                                  "razorvolumes", "data")
        return got

    status = wait_for("RazorVolume Ready", lambda: (rv().get("status") or {}).get("phase") == "Ready"
                      and rv()["status"])
    pv_name, claim = status["persistentVolumeName"], status["claimName"]
    assert claim == "data"

    applier.apply(pod("holder", namespace, dev.image, "touch /data/held && exec sleep 600", claim))
    running(core, namespace, "holder")
    # While the pod holds the volume, the operator reports this node's mount over NodeAdmin.
    nodes = wait_for("status.nodes reports the node", lambda: [
        n for n in (rv().get("status") or {}).get("nodes") or []
        if n["name"] == dev_cluster.NODE_NAME and n["state"] == "Mounted"])
    assert nodes[0]["state"] == "Mounted", nodes
    core.delete_namespaced_pod("holder", namespace)
    wait_for("holder pod gone", lambda: gone(lambda: core.read_namespaced_pod("holder", namespace)))

    write_then_delete_pod(core, applier, dev, namespace, claim)
    assert_written_files_in_s3(s3, dev.bucket, prefix + "/")

    custom.delete_namespaced_custom_object("razorfs.io", "v1alpha1", namespace, "razorvolumes", "data")
    wait_for("RazorVolume gone", lambda: gone(rv))
    wait_for("PVC gone", lambda: gone(lambda: core.read_namespaced_persistent_volume_claim(claim, namespace)))
    wait_for("PV gone", lambda: gone(lambda: core.read_persistent_volume(pv_name)))
    assert keys_under(s3, dev.bucket, prefix + "/") == {}, "reclaimPolicy Delete removes the objects"


def test_storageclass_claim_is_provisioned_by_csi_provisioner_and_deleted_with_its_objects(
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
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == dev_cluster.DRIVER
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    attributes = pv.spec.csi.volume_attributes or {}
    assert attributes.get("bucket") == dev.bucket
    prefix = attributes["prefix"].rstrip("/") + "/"
    assert prefix.startswith("pvc/"), attributes

    write_then_delete_pod(core, applier, dev, namespace, "scratch")
    assert_written_files_in_s3(s3, dev.bucket, prefix)

    core.delete_namespaced_persistent_volume_claim("scratch", namespace)
    wait_for("provisioned PV deleted", lambda: gone(lambda: core.read_persistent_volume(pv.metadata.name)))
    assert keys_under(s3, dev.bucket, prefix) == {}, "DeleteVolume removes the volume's objects"


def test_two_pods_share_one_rwx_claim_and_a_read_only_pod_cannot_write(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"rwx-{uuid.uuid4().hex[:8]}"
    applier.apply(razorvolume("shared", namespace, dev, prefix))
    wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("shared", namespace)
             .status.phase == "Bound")
    applier.apply(pod("one", namespace, dev.image, "exec sleep 600", "shared"))
    applier.apply(pod("two", namespace, dev.image, "exec sleep 600", "shared"))
    applier.apply(pod("reader", namespace, dev.image, "exec sleep 600", "shared", read_only=True))
    for name in ("one", "two", "reader"):
        running(core, namespace, name)

    exec_in(dev, namespace, "one", "echo from-one > /data/one.txt")
    exec_in(dev, namespace, "two", "echo from-two > /data/two.txt")
    # One mount serves both pods on this node: each sees the other's file at once.
    assert exec_in(dev, namespace, "two", "cat /data/one.txt") == "from-one\n"
    assert exec_in(dev, namespace, "one", "cat /data/two.txt") == "from-two\n"
    assert exec_in(dev, namespace, "reader", "cat /data/one.txt") == "from-one\n"
    refused = exec_in(dev, namespace, "reader", "touch /data/reader.txt 2>&1; echo rc=$?", check=False)
    assert "Read-only file system" in refused and "rc=1" in refused, refused

    for name in ("one", "two", "reader"):
        core.delete_namespaced_pod(name, namespace)
    wait_unstaged(dev)
    keys = keys_under(s3, dev.bucket, prefix + "/")
    assert set(keys) == {f"{prefix}/one.txt", f"{prefix}/two.txt"}, keys
