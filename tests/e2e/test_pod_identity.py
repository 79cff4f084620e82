"""`authentication: pod` on the real node: kubelet asks the API server for a token of the workload
pod's ServiceAccount (the CSIDriver's tokenRequests) and hands it to the node plugin at publish; the
mount daemon exchanges it at moto's STS (AssumeRoleWithWebIdentity) and signs with the keys STS
issued. No Secret exists for the volume, and the node has no keys of its own, so a file written in
the pod reaching moto's S3 shows the token's path end to end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier
from tests.realparts.s3server import S3Server, start_moto

from .workloads import finished, gone, pod, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]
ROLE_ARN = "arn:aws:iam::123456789012:role/razorfs-e2e"


@pytest.fixture
def moto_on_bridge(dev: dev_cluster.DevState, tmp_path: Path) -> Iterator[S3Server]:
    """moto (S3 and STS) on the address pods reach the host at."""
    host = urlsplit(dev.s3_endpoint).hostname
    assert host is not None
    server = start_moto(tmp_path, bind_ip=host)
    try:
        yield server
    finally:
        server.stop()


def test_a_pod_authenticated_volume_signs_with_sts_keys_for_the_pods_service_account(
    dev: dev_cluster.DevState, api: Any, namespace: str, moto_on_bridge: S3Server
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    bucket = f"pods-{uuid.uuid4().hex[:8]}"
    moto_on_bridge.client().create_bucket(Bucket=bucket)
    applier.apply({
        "apiVersion": "razorfs.io/v1alpha1",
        "kind": "RazorVolume",
        "metadata": {"name": "by-pod", "namespace": namespace},
        "spec": {
            "s3": {"endpoint": moto_on_bridge.endpoint_url, "bucket": bucket, "prefix": "team",
                   "region": moto_on_bridge.region, "forcePathStyle": True, "authentication": "pod",
                   "webIdentity": {"roleArn": ROLE_ARN, "stsEndpoint": moto_on_bridge.endpoint_url}},
            "accessModes": ["ReadWriteMany"],
            "reclaimPolicy": "Retain",
            "cache": {"mode": "writeback", "size": "1Gi", "metadataTTL": "1s"},
        },
    })
    wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("by-pod", namespace)
             .status.phase == "Bound")
    script = "echo written-as-the-pod > /data/hello.txt && sync /data/hello.txt && cat /data/hello.txt"
    applier.apply(pod("signer", namespace, dev.image, script, "by-pod"))
    outcome = finished(core, namespace, "signer")
    log = dev.node.kubectl("logs", "-n", namespace, "signer", check=False)
    assert outcome == "Succeeded", log
    assert log.strip() == "written-as-the-pod"
    core.delete_namespaced_pod("signer", namespace)
    wait_for("signer gone", lambda: gone(lambda: core.read_namespaced_pod("signer", namespace)))
    # Unpublish and unstage uploaded everything, signed with the keys STS gave for the token.
    body = moto_on_bridge.client().get_object(Bucket=bucket, Key="team/hello.txt")["Body"].read()
    assert body == b"written-as-the-pod\n"
    custom.delete_namespaced_custom_object("razorfs.io", "v1alpha1", namespace, "razorvolumes", "by-pod")
    wait_for("RazorVolume gone", lambda: gone(lambda: custom.get_namespaced_custom_object(
        "razorfs.io", "v1alpha1", namespace, "razorvolumes", "by-pod")))
