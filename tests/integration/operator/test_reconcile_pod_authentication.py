"""An `authentication: pod` RazorVolume with `razorfs-operator` running on the real kube-apiserver:
no Secret exists or is read, the volume becomes Ready with S3Reachable Unknown and a message saying
why the operator did not check the bucket, and its PV carries the web identity and no stage Secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import OperatorProcess, ProtectionStandIn, condition, delete_razorvolumes
from .test_reconcile import apply_rv, wait_phase

pytestmark = [pytest.mark.kube, pytest.mark.s3]

ROLE_ARN = "arn:aws:iam::123456789012:role/team-a"


@pytest.fixture(autouse=True)
def _running(
    operator_process: OperatorProcess,
    protection_controllers: ProtectionStandIn,
    custom_api: Any,
    core_api: Any,
    kube_namespace: str,
) -> Iterator[None]:
    yield
    delete_razorvolumes(custom_api, core_api, kube_namespace)


def test_a_pod_volume_is_ready_without_a_secret_and_says_s3_was_not_checked(
    custom_api: Any, core_api: Any, kube_namespace: str, s3_server: Any
) -> None:
    s3 = {
        "endpoint": s3_server.endpoint_url,
        "bucket": "no-such-bucket-for-the-operator",
        "prefix": "vol",
        "authentication": "pod",
        "webIdentity": {"roleArn": ROLE_ARN, "stsEndpoint": "https://sts.example.test", "audience": "minio-sts"},
    }
    apply_rv(custom_api, kube_namespace, "pod-auth", {"s3": s3})
    rv = wait_phase(custom_api, kube_namespace, "pod-auth", "Ready")
    reachable = condition(rv, "S3Reachable")
    assert reachable is not None and reachable["status"] == "Unknown", reachable
    assert reachable["reason"] == "NotCheckedPodIdentity"
    assert "authentication pod" in reachable["message"]
    assert "usage" not in rv["status"]

    pv = core_api.read_persistent_volume(rv["status"]["persistentVolumeName"])
    csi = pv.spec.csi
    assert csi.node_stage_secret_ref is None
    attributes = csi.volume_attributes
    assert (attributes["authentication"], attributes["roleArn"], attributes["audience"]) == (
        "pod",
        ROLE_ARN,
        "minio-sts",
    )
    assert attributes["stsEndpoint"] == "https://sts.example.test"
