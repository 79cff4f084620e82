"""The desired PV and PVC of a RazorVolume and the binding judgement (pure functions)."""

from __future__ import annotations

import copy
from typing import Any

from razorfs.volume_spec import CSI_DRIVER_NAME, ContextKey, RazorVolumeSpec
from razorfs_operator.volume_objects import (
    VolumeIdentity,
    desired_claim,
    desired_volume,
    is_ours,
    judge_binding,
    volume_attributes,
)

IDENTITY = VolumeIdentity(namespace="team", name="data", uid="0f1e2d3c-aaaa-bbbb-cccc-123456789abc")


def spec(**overrides: Any) -> RazorVolumeSpec:
    raw: dict[str, Any] = {
        "s3": {"endpoint": "http://s3:9000", "bucket": "b1", "prefix": "team/data", "secretRef": {"name": "creds"}},
        "capacity": "5Gi",
        "accessModes": ["ReadWriteOnce"],
    }
    raw.update(overrides)
    return RazorVolumeSpec.model_validate(raw)


def test_volume_handle_and_pv_name_derive_from_the_uid_and_claim_from_the_name() -> None:
    assert IDENTITY.volume_handle == IDENTITY.pv_name == "razorfs-0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    assert IDENTITY.claim_name == "data"
    other = VolumeIdentity(namespace="team", name="data", uid="another-uid")
    assert other.volume_handle != IDENTITY.volume_handle


def test_pv_uses_the_csi_driver_with_stage_secret_and_is_reserved_for_the_claim() -> None:
    pv = desired_volume(IDENTITY, spec(), claim_uid="claim-uid-1")
    csi = pv["spec"]["csi"]
    assert csi["driver"] == CSI_DRIVER_NAME
    assert csi["volumeHandle"] == IDENTITY.volume_handle
    assert csi["nodeStageSecretRef"] == {"name": "creds", "namespace": "team"}
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "team",
        "name": "data",
        "uid": "claim-uid-1",
    }
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["capacity"] == {"storage": "5Gi"}
    assert pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["storageClassName"] == ""


def test_pvc_names_the_pv_and_has_no_storage_class_unless_given() -> None:
    pvc = desired_claim(IDENTITY, spec())
    assert pvc["metadata"]["name"] == "data" and pvc["metadata"]["namespace"] == "team"
    assert pvc["spec"]["volumeName"] == IDENTITY.pv_name
    assert pvc["spec"]["storageClassName"] == ""
    assert pvc["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    owner = pvc["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("RazorVolume", "data", IDENTITY.uid)
    assert desired_claim(IDENTITY, spec(storageClassName="razorfs"))["spec"]["storageClassName"] == "razorfs"


def test_volume_attributes_carry_every_setting_as_strings() -> None:
    attributes = volume_attributes(
        spec(
            cache={"mode": "writethrough", "size": "2Gi", "metadataTTL": "5s"},
            mountOptions={"uid": 1000, "gid": 2000, "fileMode": "0600", "dirMode": "0700", "readOnly": False},
        )
    )
    assert attributes == {
        ContextKey.ENDPOINT: "http://s3:9000",
        ContextKey.BUCKET: "b1",
        ContextKey.PREFIX: "team/data",
        ContextKey.REGION: "us-east-1",
        ContextKey.FORCE_PATH_STYLE: "true",
        ContextKey.SSE: "",
        ContextKey.CACHE_MODE: "writethrough",
        ContextKey.CACHE_SIZE: "2Gi",
        ContextKey.METADATA_TTL: "5s",
        ContextKey.UID: "1000",
        ContextKey.GID: "2000",
        ContextKey.FILE_MODE: "0600",
        ContextKey.DIR_MODE: "0700",
        ContextKey.READ_ONLY: "false",
    }
    assert all(isinstance(value, str) for value in attributes.values())


def test_kms_encryption_passes_the_key_id() -> None:
    s3 = {
        "endpoint": "http://s3:9000",
        "bucket": "b1",
        "secretRef": {"name": "creds"},
        "sse": {"type": "aws:kms", "kmsKeyID": "arn:key"},
    }
    attributes = volume_attributes(spec(s3=s3))
    assert attributes[ContextKey.SSE] == "aws:kms" and attributes[ContextKey.SSE_KMS_KEY_ID] == "arn:key"


def _observed() -> tuple[dict[str, Any], dict[str, Any]]:
    claim = copy.deepcopy(desired_claim(IDENTITY, spec()))
    claim["metadata"]["uid"] = "claim-uid-1"
    claim["status"] = {"phase": "Pending"}
    volume = copy.deepcopy(desired_volume(IDENTITY, spec(), "claim-uid-1"))
    return claim, volume


def test_mutually_referencing_pair_counts_as_bound_before_the_pv_controller_acts() -> None:
    claim, volume = _observed()
    binding = judge_binding(IDENTITY, claim, volume)
    assert binding.bound and "claim phase Pending" in binding.message


def test_missing_or_misdirected_halves_are_not_bound() -> None:
    claim, volume = _observed()
    assert judge_binding(IDENTITY, None, volume).reason == "ClaimMissing"
    assert judge_binding(IDENTITY, claim, None).reason == "VolumeMissing"
    stale = copy.deepcopy(volume)
    stale["spec"]["claimRef"]["uid"] = "an-older-claim"
    assert judge_binding(IDENTITY, claim, stale).reason == "VolumeClaimedElsewhere"
    elsewhere = copy.deepcopy(claim)
    elsewhere["spec"]["volumeName"] = "someone-elses-pv"
    assert judge_binding(IDENTITY, elsewhere, volume).reason == "ClaimBoundElsewhere"
    lost = copy.deepcopy(claim)
    lost["status"]["phase"] = "Lost"
    assert judge_binding(IDENTITY, lost, volume).reason == "ClaimLost"


def test_objects_are_ours_only_with_our_uid_label() -> None:
    claim, _ = _observed()
    assert is_ours(IDENTITY, claim)
    assert not is_ours(VolumeIdentity("team", "data", "other-uid"), claim)
    assert not is_ours(IDENTITY, {"metadata": {"name": "data"}})


def test_pv_capacity_only_grows_to_the_spec() -> None:
    from razorfs_operator.volume_objects import volume_capacity_patch

    def pv(storage: str) -> dict[str, Any]:
        return {"spec": {"capacity": {"storage": storage}}}

    assert volume_capacity_patch(pv("1Gi"), spec(capacity="2Gi")) == {"spec": {"capacity": {"storage": "2Gi"}}}
    assert volume_capacity_patch(pv("2Gi"), spec(capacity="2048Mi")) == {}  # equal in other units
    assert volume_capacity_patch(pv("3Gi"), spec(capacity="2Gi")) == {}  # grown by a resizer: left alone
    assert volume_capacity_patch({"spec": {}}, spec(capacity="2Gi")) == {"spec": {"capacity": {"storage": "2Gi"}}}


def test_bound_claim_reports_the_grown_capacity_and_an_unbound_one_is_left_to_binding() -> None:
    from razorfs_operator.volume_objects import claim_capacity_patch

    bound = {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}
    assert claim_capacity_patch(bound, spec(capacity="2Gi")) == {"status": {"capacity": {"storage": "2Gi"}}}
    assert claim_capacity_patch(bound, spec(capacity="1Gi")) == {}
    assert claim_capacity_patch(bound, spec(capacity="1000Mi")) == {}
    assert claim_capacity_patch({"status": {"phase": "Pending"}}, spec(capacity="2Gi")) == {}


def test_pv_names_its_razorvolume_so_the_daemons_logs_and_metrics_carry_it() -> None:
    attributes = desired_volume(IDENTITY, spec(), claim_uid="claim-uid-1")["spec"]["csi"]["volumeAttributes"]
    assert attributes[ContextKey.RAZOR_VOLUME_NAMESPACE] == "team"
    assert attributes[ContextKey.RAZOR_VOLUME_NAME] == "data"
