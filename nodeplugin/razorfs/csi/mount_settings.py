"""A staged volume's mount settings: parsed from the CSI volume context (PV volumeAttributes or
what CreateVolume returned) and turned into the `razorfs mount` argv of the daemon contract.

Credentials are kept apart (`Credentials`): they go into the daemon's environment only, never
into argv, logs or the state file's plain records. A volume authenticates with its Secret's keys
(the default: incomplete keys fail the stage, there is no fallback), only when its context says
`authentication: node` with the node's own credential chain, or with `authentication: pod` with
each workload pod's ServiceAccount token exchanged at STS (`roleArn`, `stsEndpoint`; the token
file is the pod's mount's, see service_account_mounts.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from razorfs.csi.errors import FailedPrecondition, InvalidArgument
from razorfs.mount.options import CREDENTIAL_SOURCE_FLAG, ROLE_ARN_FLAG, STS_ENDPOINT_FLAG
from razorfs.volume_spec import (
    AUTHENTICATION_MODES,
    AUTHENTICATION_NODE,
    AUTHENTICATION_POD,
    AUTHENTICATION_SECRET,
    CACHE_MODES,
    ContextKey,
    SecretKey,
    parse_duration,
    parse_mode,
    parse_size,
)

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0", "")
_SSE = ("", "AES256", "aws:kms")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    ca_bundle: str = field(default="", repr=False)

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str]) -> Credentials:
        return cls(
            access_key_id=secrets.get(SecretKey.ACCESS_KEY_ID, ""),
            secret_access_key=secrets.get(SecretKey.SECRET_ACCESS_KEY, ""),
            session_token=secrets.get(SecretKey.SESSION_TOKEN, ""),
            ca_bundle=secrets.get(SecretKey.CA_BUNDLE, ""),
        )

    def require_complete(self) -> None:
        """Both keys present, or FailedPrecondition naming the missing ones (never a value)."""
        keys = ((SecretKey.ACCESS_KEY_ID, self.access_key_id), (SecretKey.SECRET_ACCESS_KEY, self.secret_access_key))
        missing = [key for key, value in keys if not value.strip()]
        if missing:
            raise FailedPrecondition(
                f"the volume's stage secrets lack {' and '.join(missing)}: a volume with authentication "
                f"{AUTHENTICATION_SECRET!r} signs only with its Secret's keys and never falls back to "
                f"the node's credentials (set {ContextKey.AUTHENTICATION}: {AUTHENTICATION_NODE} to use them)"
            )

    def to_secrets(self) -> dict[str, str]:
        pairs = {
            SecretKey.ACCESS_KEY_ID: self.access_key_id,
            SecretKey.SECRET_ACCESS_KEY: self.secret_access_key,
            SecretKey.SESSION_TOKEN: self.session_token,
            SecretKey.CA_BUNDLE: self.ca_bundle,
        }
        return {key: value for key, value in pairs.items() if value}

    def environment(self) -> dict[str, str]:
        """The boto3 credential variables for the daemon's environment."""
        env: dict[str, str] = {}
        if self.access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.access_key_id
        if self.secret_access_key:
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


def _flag(context: Mapping[str, str], key: str) -> bool:
    value = context.get(key, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"volume context {key}={value!r}: expected true or false")


def _int(context: Mapping[str, str], key: str) -> int | None:
    value = context.get(key, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidArgument(f"volume context {key}={value!r}: expected a non-negative integer")
    return int(value)


def _checked(context: Mapping[str, str], key: str, parse: object) -> str | None:
    """The raw value after checking it parses (the daemon parses it again from argv)."""
    value = context.get(key, "").strip()
    if not value:
        return None
    try:
        parse(value)  # type: ignore[operator]
    except ValueError as exc:
        raise InvalidArgument(f"volume context {key}: {exc}") from None
    return value


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def _razor_volume_name(context: Mapping[str, str]) -> str:
    """"NAMESPACE/NAME" when the context names its RazorVolume (both parts, DNS names), else ""."""
    namespace = context.get(ContextKey.RAZOR_VOLUME_NAMESPACE, "").strip()
    name = context.get(ContextKey.RAZOR_VOLUME_NAME, "").strip()
    if not namespace and not name:
        return ""
    for key, value in ((ContextKey.RAZOR_VOLUME_NAMESPACE, namespace), (ContextKey.RAZOR_VOLUME_NAME, name)):
        if not _DNS_NAME.fullmatch(value):
            raise InvalidArgument(f"volume context {key} must be a Kubernetes object name, got {value[:64]!r}")
    return f"{namespace}/{name}"


_WEB_IDENTITY_KEYS = (ContextKey.ROLE_ARN, ContextKey.STS_ENDPOINT, ContextKey.AUDIENCE)
_ROLE_ARN = re.compile(r"arn:[^:\s]+:iam::[^:\s]*:role/\S+")
_TOKEN_AUDIENCE = re.compile(r"\S{1,253}")


def _web_identity(context: Mapping[str, str], authentication: str) -> tuple[str, str, str]:
    """(role ARN, STS endpoint, audience) of an `authentication: pod` volume, checked; the keys are
    refused on any other volume, where they would silently mean nothing."""
    values = {key: context.get(key, "").strip() for key in _WEB_IDENTITY_KEYS}
    if authentication != AUTHENTICATION_POD:
        given = [key for key, value in values.items() if value]
        if given:
            raise InvalidArgument(
                f"volume context {', '.join(given)} only apply with {ContextKey.AUTHENTICATION}: {AUTHENTICATION_POD}"
            )
        return "", "", ""
    role_arn, sts_endpoint, audience = (values[key] for key in _WEB_IDENTITY_KEYS)
    if not _ROLE_ARN.fullmatch(role_arn):
        raise InvalidArgument(
            f"volume context {ContextKey.ROLE_ARN} must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) "
            f"with {ContextKey.AUTHENTICATION}: {AUTHENTICATION_POD}"
        )
    if not sts_endpoint.startswith(("http://", "https://")) or any(c.isspace() for c in sts_endpoint):
        raise InvalidArgument(
            f"volume context {ContextKey.STS_ENDPOINT} must be an http(s) URL with {ContextKey.AUTHENTICATION}: "
            f"{AUTHENTICATION_POD}"
        )
    if audience and not _TOKEN_AUDIENCE.fullmatch(audience):
        raise InvalidArgument(f"volume context {ContextKey.AUDIENCE} must be a token audience without spaces")
    return role_arn, sts_endpoint, audience


MOUNT_POD_FIELDS = ("priorityClassName", "resources", "tolerations")


def _mount_pod(context: Mapping[str, str]) -> str:
    """The context's mountPod settings as canonical JSON ("" without any)."""
    raw = context.get(ContextKey.MOUNT_POD, "").strip()
    if not raw:
        return ""
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"volume context {ContextKey.MOUNT_POD} must be a JSON object") from None
    if not isinstance(value, dict) or set(value) - set(MOUNT_POD_FIELDS):
        raise InvalidArgument(f"volume context {ContextKey.MOUNT_POD} may only set {', '.join(MOUNT_POD_FIELDS)}")
    checks = {"priorityClassName": str, "resources": dict, "tolerations": list}
    for key, kind in checks.items():
        if key in value and not isinstance(value[key], kind):
            raise InvalidArgument(f"volume context {ContextKey.MOUNT_POD}: {key} must be a {kind.__name__}")
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if value else ""


@dataclass(frozen=True)
class MountSettings:
    endpoint: str
    bucket: str
    prefix: str = ""
    region: str | None = None
    force_path_style: bool = False
    sse: str = ""
    sse_kms_key_id: str | None = None
    cache_mode: str | None = None
    cache_size: str | None = None
    metadata_ttl: str | None = None
    uid: int | None = None
    gid: int | None = None
    file_mode: str | None = None
    dir_mode: str | None = None
    read_only: bool = False
    authentication: str = AUTHENTICATION_SECRET
    # "NAMESPACE/NAME" of the RazorVolume, when the context names it (logs and metrics label).
    volume_name: str = ""
    # The volume's spec.mountPod (JSON, checked): over the chart's template for its mount pods.
    mount_pod: str = ""
    # With authentication pod: the role each pod's token is exchanged for, where, and which of
    # kubelet's tokens ("" : the only one) is the volume's.
    role_arn: str = ""
    sts_endpoint: str = ""
    audience: str = ""

    @property
    def uses_node_identity(self) -> bool:
        return self.authentication == AUTHENTICATION_NODE

    @property
    def uses_pod_identity(self) -> bool:
        return self.authentication == AUTHENTICATION_POD

    @classmethod
    def from_context(cls, context: Mapping[str, str]) -> MountSettings:
        endpoint = context.get(ContextKey.ENDPOINT, "").strip()
        bucket = context.get(ContextKey.BUCKET, "").strip()
        if not endpoint:
            raise InvalidArgument(f"volume context {ContextKey.ENDPOINT} is required")
        if not endpoint.startswith(("http://", "https://")):
            raise InvalidArgument(f"volume context {ContextKey.ENDPOINT} must be an http(s) URL")
        if not bucket or "/" in bucket:
            raise InvalidArgument(f"volume context {ContextKey.BUCKET} must be a bucket name")
        prefix = context.get(ContextKey.PREFIX, "").strip().strip("/")
        if any(part in (".", "..") for part in prefix.split("/")):
            raise InvalidArgument(f"volume context {ContextKey.PREFIX} contains a traversal segment")
        cache_mode = context.get(ContextKey.CACHE_MODE, "").strip() or None
        if cache_mode is not None and cache_mode not in CACHE_MODES:
            raise InvalidArgument(
                f"volume context {ContextKey.CACHE_MODE}={cache_mode!r}: expected one of {CACHE_MODES}"
            )
        sse = context.get(ContextKey.SSE, "").strip()
        if sse not in _SSE:
            raise InvalidArgument(f"volume context {ContextKey.SSE}={sse!r}: expected AES256 or aws:kms")
        authentication = context.get(ContextKey.AUTHENTICATION, "").strip() or AUTHENTICATION_SECRET
        if authentication not in AUTHENTICATION_MODES:
            raise InvalidArgument(
                f"volume context {ContextKey.AUTHENTICATION}={authentication!r}: expected one of {AUTHENTICATION_MODES}"
            )
        role_arn, sts_endpoint, audience = _web_identity(context, authentication)
        return cls(
            endpoint=endpoint,
            bucket=bucket,
            prefix=prefix,
            region=context.get(ContextKey.REGION, "").strip() or None,
            force_path_style=_flag(context, ContextKey.FORCE_PATH_STYLE),
            sse=sse,
            sse_kms_key_id=context.get(ContextKey.SSE_KMS_KEY_ID, "").strip() or None,
            cache_mode=cache_mode,
            cache_size=_checked(context, ContextKey.CACHE_SIZE, parse_size),
            metadata_ttl=_checked(context, ContextKey.METADATA_TTL, parse_duration),
            uid=_int(context, ContextKey.UID),
            gid=_int(context, ContextKey.GID),
            file_mode=_checked(context, ContextKey.FILE_MODE, parse_mode),
            dir_mode=_checked(context, ContextKey.DIR_MODE, parse_mode),
            read_only=_flag(context, ContextKey.READ_ONLY),
            authentication=authentication,
            volume_name=_razor_volume_name(context),
            mount_pod=_mount_pod(context),
            role_arn=role_arn,
            sts_endpoint=sts_endpoint,
            audience=audience,
        )

    @property
    def source_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def mount_argv(
        self,
        mount_command: list[str],
        mountpoint: Path,
        cache_dir: Path,
        *,
        read_only: bool,
        mount_group: int | None,
        ca_bundle: Path | None,
    ) -> list[str]:
        """`razorfs mount ... --foreground`: no secret ever appears here."""
        argv = [*mount_command, "mount", self.source_url, str(mountpoint)]
        argv += ["--endpoint-url", self.endpoint, "--cache-dir", str(cache_dir), "--foreground", "--allow-other"]
        if self.region:
            argv += ["--region", self.region]
        if self.force_path_style:
            argv.append("--force-path-style")
        if ca_bundle is not None:
            argv += ["--ca-bundle", str(ca_bundle)]
        if self.sse:
            argv += ["--sse", self.sse]
        if self.sse_kms_key_id:
            argv += ["--sse-kms-key-id", self.sse_kms_key_id]
        optional = {
            "--cache-mode": self.cache_mode,
            "--cache-size": self.cache_size,
            "--metadata-ttl": self.metadata_ttl,
            "--file-mode": self.file_mode,
            "--dir-mode": self.dir_mode,
        }
        for flag, value in optional.items():
            if value is not None:
                argv += [flag, value]
        if self.uid is not None:
            argv += ["--uid", str(self.uid)]
        # The pod's fsGroup (VOLUME_MOUNT_GROUP) wins over the context's gid: kubelet skips its
        # recursive chown for us, so files must already show that group.
        gid = mount_group if mount_group is not None else self.gid
        if gid is not None:
            argv += ["--gid", str(gid)]
        if read_only or self.read_only:
            argv.append("--read-only")
        if self.uses_pod_identity:
            # The token file and session name are each ServiceAccount mount's own (mount_records.py).
            argv += [CREDENTIAL_SOURCE_FLAG, "web-identity", ROLE_ARN_FLAG, self.role_arn]
            argv += [STS_ENDPOINT_FLAG, self.sts_endpoint]
        else:
            argv += [CREDENTIAL_SOURCE_FLAG, "default-chain" if self.uses_node_identity else "explicit"]
        if self.volume_name:
            argv += ["--volume-name", self.volume_name]
        return argv
