"""`spec.s3.authentication: pod` on the operator's side (pure functions): the PV names no stage
Secret and carries the web identity in its attributes, which the node plugin reads back; a
secret-authenticated volume's attributes stay as they were (a PV's cannot change); the volume
becomes Ready without an S3 check the operator has no identity for, and says so."""

from __future__ import annotations

from typing import Any

from razorfs.csi.mount_settings import MountSettings
from razorfs.volume_spec import ContextKey, RazorVolumeSpec
from razorfs_operator.status_draft import POD_IDENTITY_MESSAGE, POD_IDENTITY_REASON, StatusDraft
from razorfs_operator.volume_objects import VolumeIdentity, desired_volume, volume_attributes

IDENTITY = VolumeIdentity(namespace="team", name="data", uid="0f1e2d3c-aaaa-bbbb-cccc-123456789abc")
ROLE = "arn:aws:iam::123456789012:role/team-a"


def pod_spec(**web_identity: str) -> RazorVolumeSpec:
    s3: dict[str, Any] = {
        "endpoint": "http://s3:9000",
        "bucket": "b1",
        "prefix": "team/data",
        "authentication": "pod",
        "webIdentity": {"roleArn": ROLE, "stsEndpoint": "https://sts.example", **web_identity},
    }
    return RazorVolumeSpec.model_validate({"s3": s3})


def test_a_pod_volumes_pv_names_no_secret_and_carries_the_web_identity_the_node_reads_back() -> None:
    csi = desired_volume(IDENTITY, pod_spec(audience="minio-sts"), claim_uid="c")["spec"]["csi"]
    assert "nodeStageSecretRef" not in csi
    attributes = csi["volumeAttributes"]
    assert attributes[ContextKey.AUTHENTICATION] == "pod"
    settings = MountSettings.from_context(attributes)
    assert settings.uses_pod_identity
    assert (settings.role_arn, settings.sts_endpoint, settings.audience) == (ROLE, "https://sts.example", "minio-sts")


def test_a_secret_volumes_attributes_gain_no_authentication_keys() -> None:
    spec = RazorVolumeSpec.model_validate(
        {"s3": {"endpoint": "http://s3:9000", "bucket": "b1", "secretRef": {"name": "c"}}}
    )
    attributes = volume_attributes(spec)
    assert not {ContextKey.AUTHENTICATION, ContextKey.ROLE_ARN, ContextKey.STS_ENDPOINT} & set(attributes)


def test_a_pod_volume_is_ready_with_s3_unknown_and_the_reason_in_the_message() -> None:
    draft = StatusDraft.from_body({"metadata": {"namespace": "ns", "name": "vol", "uid": "u-1", "generation": 1}})
    draft.set_unknown("S3Reachable", POD_IDENTITY_REASON, POD_IDENTITY_MESSAGE)
    draft.set("Bound", True, "Bound", "pair")
    assert draft.conclude(has_claim=True, has_volume=True)
    s3 = next(c for c in draft.status.conditions if c.type == "S3Reachable")
    assert s3.status == "Unknown" and "authentication pod" in s3.message
