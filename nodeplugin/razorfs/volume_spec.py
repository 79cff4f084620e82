"""Shared vocabulary of the operator and the node plugin: RazorVolume spec and status models,
the CSI volume-context keys that carry a volume's settings to the node, the Secret's key names,
and size/duration parsing. Nothing else crosses between operator/ and nodeplugin/."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CSI_DRIVER_NAME = "razorfs.csi.io"


# Keys of the CSI volume context (PV volumeAttributes, StorageClass parameters).
class ContextKey:
    ENDPOINT = "endpoint"
    BUCKET = "bucket"
    PREFIX = "prefix"
    REGION = "region"
    FORCE_PATH_STYLE = "forcePathStyle"
    SSE = "sse"  # "", "AES256" or "aws:kms"
    SSE_KMS_KEY_ID = "sseKmsKeyId"
    CACHE_MODE = "cacheMode"
    CACHE_SIZE = "cacheSize"
    METADATA_TTL = "metadataTTL"
    UID = "uid"
    GID = "gid"
    FILE_MODE = "fileMode"
    DIR_MODE = "dirMode"
    READ_ONLY = "readOnly"
    # Whose identity signs the volume's S3 requests: AUTHENTICATION_SECRET (the default),
    # AUTHENTICATION_NODE (the node's own chain, only when asked for by name) or AUTHENTICATION_POD
    # (each workload pod's ServiceAccount token, exchanged at STS_ENDPOINT for ROLE_ARN's keys).
    AUTHENTICATION = "authentication"
    ROLE_ARN = "roleArn"
    STS_ENDPOINT = "stsEndpoint"
    # Which of the tokens kubelet hands over (CSIDriver tokenRequests) is the volume's; may be
    # left out when the driver asks for one audience only.
    AUDIENCE = "audience"
    # The RazorVolume a PV serves ("namespace", "name"): labels of its daemon's logs and metrics.
    RAZOR_VOLUME_NAMESPACE = "razorVolumeNamespace"
    # The RazorVolume's spec.mountPod as JSON ({"resources", "priorityClassName", "tolerations"}).
    MOUNT_POD = "mountPod"
    RAZOR_VOLUME_NAME = "razorVolumeName"


# Keys of the credentials Secret (and so of the CSI stage / provisioner secrets).
class SecretKey:
    ACCESS_KEY_ID = "accessKeyID"
    SECRET_ACCESS_KEY = "secretAccessKey"
    SESSION_TOKEN = "sessionToken"
    CA_BUNDLE = "caBundle"


CACHE_MODES = ("writeback", "writethrough", "readonly")

AUTHENTICATION_SECRET = "secret"  # the keys of the volume's Secret (stage secrets), nothing else
AUTHENTICATION_NODE = "node"  # the node plugin's own credential chain (instance role, IRSA of its SA)
# Each workload pod's own identity: the projected ServiceAccount token kubelet gives the node
# plugin at publish, exchanged at STS (AssumeRoleWithWebIdentity); one mount per ServiceAccount.
AUTHENTICATION_POD = "pod"
AUTHENTICATION_MODES = (AUTHENTICATION_SECRET, AUTHENTICATION_NODE, AUTHENTICATION_POD)

_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "p": 1000**5,  # the pattern admits P; without it parse_size("1P") raised KeyError
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_size(text: str) -> int:
    """Bytes from a size like `10GiB`, `10Gi`, `512M`, `4096`. Raises ValueError with a message
    fit for a user."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r}: expected a number with an optional unit like 10GiB, 512Mi or 4096")
    number, unit = match.groups()
    bytes_ = float(number) * _SIZE_UNITS[(unit or "").lower()]
    return int(bytes_)


def parse_duration(text: str) -> float:
    """Seconds from a duration like `1s`, `500ms`, `2m`, `0`."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected a number with an optional unit ms, s, m or h")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit]


def parse_mode(text: str) -> int:
    """A permission mode from octal text like `0644` or `755`."""
    if not re.fullmatch(r"0?[0-7]{3,4}", text.strip()):
        raise ValueError(f"invalid mode {text!r}: expected octal like 0644")
    return int(text, 8) & 0o7777


# --- RazorVolume (razorfs.io/v1alpha1) spec and status -------------------------------------------
# These models mirror charts/razorfs/files/razorvolumes-crd.yaml field for field (names, types, enums,
# defaults); tests/unit/operator/test_crd_models.py fails when the two drift apart. The API server
# applies the CRD's defaults and CEL rules first, so the models' defaults only matter for objects
# built in code.

CRD_GROUP = "razorfs.io"
CRD_VERSION = "v1alpha1"
CRD_PLURAL = "razorvolumes"
CRD_KIND = "RazorVolume"

AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
ReclaimPolicy = Literal["Retain", "Delete"]
CacheMode = Literal["writeback", "writethrough", "readonly"]
SseType = Literal["AES256", "aws:kms"]
# spec.s3.authentication (`node` is a StorageClass / volume-context setting only).
Authentication = Literal["secret", "pod"]
Phase = Literal["Pending", "Ready", "Failed", "Terminating"]
ConditionStatus = Literal["True", "False", "Unknown"]
ConditionType = Literal["Ready", "S3Reachable", "Bound", "InUse"]
NodeVolumeStateName = Literal["Mounted", "Recovering", "Failed", "Unmounting", "Unreachable"]
WarmupStateName = Literal["Warming", "Warmed", "Failed"]


class _Model(BaseModel):
    # Unknown fields are ignored rather than rejected: the API server already prunes them, and an
    # operator must not crash on an object written by a newer CRD version.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SecretRef(_Model):
    name: str


class CaBundleSecretRef(_Model):
    name: str
    key: str = SecretKey.CA_BUNDLE


class ServerSideEncryption(_Model):
    type: SseType
    kms_key_id: str | None = Field(default=None, alias="kmsKeyID")


class WebIdentitySpec(_Model):
    """`spec.s3.webIdentity`: the role a pod's ServiceAccount token is exchanged for, and where."""

    role_arn: str
    sts_endpoint: str
    audience: str | None = None


class S3Location(_Model):
    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    force_path_style: bool = True
    authentication: Authentication = "secret"
    # Required with authentication "secret", absent with "pod" (the CRD's rules say so).
    secret_ref: SecretRef | None = None
    web_identity: WebIdentitySpec | None = None
    ca_bundle_secret_ref: CaBundleSecretRef | None = None
    sse: ServerSideEncryption | None = None

    @property
    def uses_pod_identity(self) -> bool:
        return self.authentication == AUTHENTICATION_POD

    @property
    def key_prefix(self) -> str:
        """The prefix every object key of the volume starts with ("" for the whole bucket)."""
        return f"{self.prefix}/" if self.prefix else ""


class Warmup(_Model):
    paths: list[str] = Field(default_factory=list)


class CacheSettings(_Model):
    mode: CacheMode = "writeback"
    size: str = "10Gi"
    metadata_ttl: str = Field(default="1s", alias="metadataTTL")
    warmup: Warmup | None = None


class MountOptionsSpec(_Model):
    """`spec.mountOptions` (the mount daemon's own option set is razorfs.mount.options.MountOptions)."""

    uid: int | None = None
    gid: int | None = None
    file_mode: str = "0644"
    dir_mode: str = "0755"
    read_only: bool = False


class Quantities(_Model):
    cpu: str | None = None
    memory: str | None = None


class MountPodResources(_Model):
    requests: Quantities | None = None
    limits: Quantities | None = None


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class MountPodSpec(_Model):
    """`spec.mountPod`: over the chart's mountPod values for this volume's mount pods."""

    resources: MountPodResources | None = None
    priority_class_name: str | None = None
    tolerations: list[Toleration] | None = None


def _default_access_modes() -> list[AccessMode]:
    return ["ReadWriteMany"]


class RazorVolumeSpec(_Model):
    s3: S3Location
    capacity: str = "1Ti"
    access_modes: list[AccessMode] = Field(default_factory=_default_access_modes)
    reclaim_policy: ReclaimPolicy = "Retain"
    cache: CacheSettings = Field(default_factory=CacheSettings)
    mount_options: MountOptionsSpec = Field(default_factory=MountOptionsSpec)
    mount_pod: MountPodSpec | None = None
    storage_class_name: str | None = None


class Condition(_Model):
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class VolumeUsage(_Model):
    objects: int
    bytes: int
    # True when the listing stopped at the operator's bound: the figures are lower bounds.
    truncated: bool = False
    scanned_at: datetime


class WarmupProgress(_Model):
    """The warm-up of spec.cache.warmup's paths on one node, or summed over the nodes."""

    state: WarmupStateName
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    # Of the bytes when the node knows them, else of the files; 100 once Warmed.
    percent: int = 0
    message: str = ""


class NodeVolumeState(_Model):
    name: str
    state: NodeVolumeStateName
    # As last reported: an Unreachable node keeps the figures it gave before.
    cached_bytes: int = 0
    dirty_bytes: int = 0
    last_error: str = ""
    warmed_paths: list[str] = Field(default_factory=list)
    warmup: WarmupProgress | None = None


class RazorVolumeStatus(_Model):
    phase: Phase | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    persistent_volume_name: str | None = None
    claim_name: str | None = None
    volume_handle: str | None = None
    usage: VolumeUsage | None = None
    nodes: list[NodeVolumeState] = Field(default_factory=list)
    # Summed over `nodes`, for `kubectl get rv -o wide`.
    mounted_nodes: int = 0
    cached_bytes: int = 0
    dirty_bytes: int = 0
    warmup: WarmupProgress | None = None
