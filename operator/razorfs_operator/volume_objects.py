"""The desired PersistentVolume and PersistentVolumeClaim of a RazorVolume, built by pure functions
from its identity and spec, and the judgement whether an observed pair is bound to each other.

Binding: the operator pre-binds both sides (PV spec.claimRef with the PVC's uid, PVC spec.volumeName)
so the PV controller can only ever pair them with each other; PV and PVC status stay the PV
controller's, except the bound claim's `status.capacity`, which the operator raises when
`spec.capacity` grows (what external-resizer does for a dynamically provisioned claim; a static,
pre-bound claim has no resizer). The pair counts as Bound when the references agree.

Capacity only ever grows (the CRD refuses a shrink): the PV and the claim's status follow a larger
`spec.capacity`, and a PV that something else made larger is left alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from razorfs.volume_spec import (
    CRD_GROUP,
    CRD_KIND,
    CRD_VERSION,
    CSI_DRIVER_NAME,
    ContextKey,
    RazorVolumeSpec,
    parse_size,
)

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VOLUME_NAME = "razorfs.io/volume-name"
LABEL_VOLUME_NAMESPACE = "razorfs.io/volume-namespace"
LABEL_VOLUME_UID = "razorfs.io/volume-uid"
MANAGER = "razorfs-operator"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class VolumeIdentity:
    namespace: str
    name: str
    uid: str

    @property
    def volume_handle(self) -> str:
        # The UID, not namespace/name: a RazorVolume deleted and re-created under the same name is a
        # new volume to the node plugins, and the handle is safe as a path component on the node.
        return f"razorfs-{self.uid}"

    @property
    def pv_name(self) -> str:
        return self.volume_handle

    @property
    def claim_name(self) -> str:
        return self.name

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED_BY: MANAGER,
            LABEL_VOLUME_NAMESPACE: self.namespace,
            LABEL_VOLUME_NAME: self.name,
            LABEL_VOLUME_UID: self.uid,
        }


def volume_attributes(spec: RazorVolumeSpec) -> dict[str, str]:
    """The CSI volume context the node plugin mounts with (all values are strings)."""
    s3, cache, mount = spec.s3, spec.cache, spec.mount_options
    attributes = {
        ContextKey.ENDPOINT: s3.endpoint,
        ContextKey.BUCKET: s3.bucket,
        ContextKey.PREFIX: s3.prefix,
        ContextKey.REGION: s3.region,
        ContextKey.FORCE_PATH_STYLE: _bool(s3.force_path_style),
        ContextKey.SSE: s3.sse.type if s3.sse else "",
        ContextKey.CACHE_MODE: cache.mode,
        ContextKey.CACHE_SIZE: cache.size,
        ContextKey.METADATA_TTL: cache.metadata_ttl,
        ContextKey.FILE_MODE: mount.file_mode,
        ContextKey.DIR_MODE: mount.dir_mode,
        ContextKey.READ_ONLY: _bool(mount.read_only),
    }
    if s3.sse and s3.sse.kms_key_id:
        attributes[ContextKey.SSE_KMS_KEY_ID] = s3.sse.kms_key_id
    if mount.uid is not None:
        attributes[ContextKey.UID] = str(mount.uid)
    if mount.gid is not None:
        attributes[ContextKey.GID] = str(mount.gid)
    if s3.uses_pod_identity and s3.web_identity is not None:
        # Only for such volumes: the attributes of existing PVs (which cannot change) stay as they are.
        attributes[ContextKey.AUTHENTICATION] = s3.authentication
        attributes[ContextKey.ROLE_ARN] = s3.web_identity.role_arn
        attributes[ContextKey.STS_ENDPOINT] = s3.web_identity.sts_endpoint
        if s3.web_identity.audience:
            attributes[ContextKey.AUDIENCE] = s3.web_identity.audience
    if spec.mount_pod is not None:
        pod = spec.mount_pod.model_dump(by_alias=True, exclude_none=True)
        if pod:
            attributes[ContextKey.MOUNT_POD] = json.dumps(pod, sort_keys=True, separators=(",", ":"))
    return attributes


def desired_claim(identity: VolumeIdentity, spec: RazorVolumeSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": identity.claim_name,
            "namespace": identity.namespace,
            "labels": identity.labels(),
            "ownerReferences": [
                {
                    "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
                    "kind": CRD_KIND,
                    "name": identity.name,
                    "uid": identity.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "accessModes": list(spec.access_modes),
            "resources": {"requests": {"storage": spec.capacity}},
            "storageClassName": spec.storage_class_name or "",
            "volumeMode": "Filesystem",
            "volumeName": identity.pv_name,
        },
    }


def desired_volume(identity: VolumeIdentity, spec: RazorVolumeSpec, claim_uid: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": identity.pv_name,
            "labels": identity.labels(),
        },
        "spec": {
            "capacity": {"storage": spec.capacity},
            "accessModes": list(spec.access_modes),
            # Always Retain: the operator, not the PV controller, decides what happens to the
            # objects (spec.reclaimPolicy), and a static PV has no provisioner to delete it anyway.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class_name or "",
            "volumeMode": "Filesystem",
            "claimRef": claim_reference(identity, claim_uid),
            "csi": {
                "driver": CSI_DRIVER_NAME,
                "volumeHandle": identity.volume_handle,
                "readOnly": spec.mount_options.read_only,
                # Which RazorVolume the PV serves: its daemon's logs and metrics carry the labels.
                "volumeAttributes": {
                    **volume_attributes(spec),
                    ContextKey.RAZOR_VOLUME_NAMESPACE: identity.namespace,
                    ContextKey.RAZOR_VOLUME_NAME: identity.name,
                },
                # None with authentication pod: the node stages without a Secret.
                **_stage_secret_ref(identity, spec),
            },
        },
    }


def _stage_secret_ref(identity: VolumeIdentity, spec: RazorVolumeSpec) -> Manifest:
    if spec.s3.secret_ref is None:
        return {}
    return {"nodeStageSecretRef": {"name": spec.s3.secret_ref.name, "namespace": identity.namespace}}


def claim_reference(identity: VolumeIdentity, claim_uid: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": identity.namespace,
        "name": identity.claim_name,
        "uid": claim_uid,
    }


def is_smaller(current: str | None, wanted: str) -> bool:
    """Whether the quantity `current` is less than `wanted`; a missing or unreadable one is."""
    if not current:
        return True
    try:
        return parse_size(current) < parse_size(wanted)
    except ValueError:
        return True


def volume_capacity_patch(volume: Manifest, spec: RazorVolumeSpec) -> Manifest:
    """The PV patch that grows its capacity to `spec.capacity` ({} when it is not smaller)."""
    current = ((volume.get("spec") or {}).get("capacity") or {}).get("storage")
    return {"spec": {"capacity": {"storage": spec.capacity}}} if is_smaller(current, spec.capacity) else {}


def claim_capacity_patch(claim: Manifest, spec: RazorVolumeSpec) -> Manifest:
    """The claim status patch that grows its reported capacity to `spec.capacity`. Only a claim the
    PV controller has given a capacity (on binding) is touched: before that, binding copies the
    PV's capacity, which is already grown."""
    current = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
    if current is None or not is_smaller(current, spec.capacity):
        return {}
    return {"status": {"capacity": {"storage": spec.capacity}}}


def is_ours(identity: VolumeIdentity, observed: Manifest) -> bool:
    labels = (observed.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(LABEL_VOLUME_UID) == identity.uid)


@dataclass(frozen=True)
class Binding:
    bound: bool
    reason: str
    message: str


def judge_binding(identity: VolumeIdentity, claim: Manifest | None, volume: Manifest | None) -> Binding:
    """Whether the observed PVC and PV reference each other (see the module docstring)."""
    if claim is None:
        return Binding(False, "ClaimMissing", f"PersistentVolumeClaim {identity.claim_name} does not exist yet")
    if volume is None:
        return Binding(False, "VolumeMissing", f"PersistentVolume {identity.pv_name} does not exist yet")
    claim_uid = claim["metadata"].get("uid")
    ref = volume.get("spec", {}).get("claimRef") or {}
    points_at_claim = (
        ref.get("namespace") == identity.namespace
        and ref.get("name") == identity.claim_name
        and ref.get("uid") in (None, claim_uid)
    )
    if not points_at_claim:
        return Binding(
            False,
            "VolumeClaimedElsewhere",
            f"PersistentVolume {identity.pv_name} is not reserved for this claim",
        )
    if claim.get("spec", {}).get("volumeName") != identity.pv_name:
        return Binding(False, "ClaimBoundElsewhere", f"claim {identity.claim_name} names another volume")
    phase = (claim.get("status") or {}).get("phase") or "Pending"
    if phase == "Lost":
        return Binding(False, "ClaimLost", f"claim {identity.claim_name} lost its volume")
    return Binding(
        True,
        "Bound",
        f"PersistentVolumeClaim {identity.claim_name} and PersistentVolume {identity.pv_name} reference "
        f"each other (claim phase {phase})",
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"
