"""`authentication: pod` on the node side, without processes: the volume context's web identity
keys, the stage's daemon arguments, each ServiceAccount mount's record, the token kubelet passes
at publish (picked by audience, never quoted in a message) and the token file's replacement."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from razorfs.csi.errors import InvalidArgument
from razorfs.csi.mount_pods import pod_argv
from razorfs.csi.mount_records import (
    TOKEN_FILE_NAME,
    MountDir,
    StageRequest,
    service_account_mount_id,
    service_account_record,
    service_account_staging_path,
    stage_record,
)
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.pod_identity import TOKENS_KEY, pod_identity
from razorfs.csi.service_account_mounts import write_token
from razorfs.mount.options import parse_mount_argv

ROLE = "arn:aws:iam::123456789012:role/team-a"
POD = {"authentication": "pod", "roleArn": ROLE, "stsEndpoint": "https://sts.example"}
BASE = {"endpoint": "https://s3.example", "bucket": "data", "prefix": "vol"}
TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"
STAGING = Path("/kubelet/plugins/kubernetes.io/csi/razorfs.csi.io/abc/globalmount")


def publish_context(tokens: dict[str, str], namespace: str = "team-a", account: str = "app") -> dict[str, str]:
    entries = {
        audience: {"token": token, "expirationTimestamp": "2031-01-01T00:00:00Z"} for audience, token in tokens.items()
    }
    return {
        "csi.storage.k8s.io/pod.namespace": namespace,
        "csi.storage.k8s.io/serviceAccount.name": account,
        TOKENS_KEY: json.dumps(entries),
    }


def test_pod_authentication_needs_a_role_and_an_sts_endpoint_and_they_belong_to_it_only() -> None:
    settings = MountSettings.from_context({**BASE, **POD, "audience": "sts.amazonaws.com"})
    assert settings.uses_pod_identity and (settings.role_arn, settings.audience) == (ROLE, "sts.amazonaws.com")
    with pytest.raises(InvalidArgument, match="roleArn must be an IAM role ARN"):
        MountSettings.from_context({**BASE, **POD, "roleArn": "team-a"})
    with pytest.raises(InvalidArgument, match="stsEndpoint must be an http"):
        MountSettings.from_context({**BASE, "authentication": "pod", "roleArn": ROLE})
    with pytest.raises(InvalidArgument, match="only apply with authentication: pod"):
        MountSettings.from_context({**BASE, "roleArn": ROLE})


def service_account_argv(tmp_path: Path) -> list[str]:
    settings = MountSettings.from_context({**BASE, **POD})
    request = StageRequest("vol-1", STAGING, settings, Credentials(), False, None, "cap", "team-a/vol")
    parent = stage_record(request, MountDir(tmp_path / "stage" / "cache", None), per_service_account=True)
    assert parent.per_service_account
    mount_id = service_account_mount_id("vol-1", "team-a/app", None)
    staging = service_account_staging_path(STAGING, mount_id)
    mount_dir = MountDir(tmp_path / "sa" / "cache", None)
    record = service_account_record(parent, mount_id, "team-a/app", None, staging, mount_dir)
    assert (record.volume_id, record.parent, record.staging_path) == ("vol-1#sa=team-a/app", "vol-1", str(staging))
    assert staging.parent == STAGING.parent and staging.name.startswith("razorfs-sa-")
    return record.argv


def test_a_service_account_mount_runs_a_web_identity_daemon_with_its_own_token_file_and_session(
    tmp_path: Path,
) -> None:
    options = parse_mount_argv(service_account_argv(tmp_path))
    assert options.credential_source == "web-identity" and options.web_identity is not None
    assert options.web_identity.token_file == tmp_path / "sa" / TOKEN_FILE_NAME
    assert (options.web_identity.role_arn, options.web_identity.sts_endpoint_url) == (ROLE, "https://sts.example")
    assert options.web_identity.session_name == "team-a.app"
    assert options.volume_name == "vol-1#sa=team-a/app"  # its own series in logs and metrics


def test_a_mount_pod_finds_the_token_in_its_own_directory(tmp_path: Path) -> None:
    argv = pod_argv(service_account_argv(tmp_path), tmp_path / "sa")
    assert argv[argv.index("--web-identity-token-file") + 1] == f"/razorfs/{TOKEN_FILE_NAME}"


def test_service_account_mounts_of_other_fs_groups_are_apart() -> None:
    assert service_account_mount_id("v", "ns/app", 2000) == "v#sa=ns/app#fsgroup=2000"
    assert service_account_mount_id("v", "ns/app", None) != service_account_mount_id("v", "ns/other", None)


def test_the_token_of_the_volumes_audience_is_taken_and_never_quoted() -> None:
    identity = pod_identity(publish_context({"sts.amazonaws.com": TOKEN, "vault": "other"}), "sts.amazonaws.com")
    assert identity is not None and identity.token == TOKEN and identity.name == "team-a/app"
    assert TOKEN not in repr(identity)
    only = pod_identity(publish_context({"minio": TOKEN}), "")
    assert only is not None and only.token == TOKEN
    assert pod_identity({}, "sts.amazonaws.com") is None
    with pytest.raises(
        InvalidArgument, match=re.escape("no token for the volume's audience 'sts.amazonaws.com'")
    ) as info:
        pod_identity(publish_context({"vault": TOKEN}), "sts.amazonaws.com")
    assert TOKEN not in str(info.value)
    with pytest.raises(InvalidArgument, match="must name its audience"):
        pod_identity(publish_context({"a": TOKEN, "b": TOKEN}), "")
    with pytest.raises(InvalidArgument, match="must be a JSON object") as info:
        pod_identity({TOKENS_KEY: TOKEN}, "")
    assert TOKEN not in str(info.value)
    with pytest.raises(InvalidArgument, match=re.escape("serviceAccount.name")):
        pod_identity(publish_context({"a": TOKEN}, account="App_1"), "")


def test_the_token_file_is_created_private_and_replaced_by_a_rename(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)  # the plugin's
    try:
        write_token(tmp_path, "first")
        path = tmp_path / TOKEN_FILE_NAME
        inode = path.stat().st_ino
        write_token(tmp_path, "second")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "second" and path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [TOKEN_FILE_NAME]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root, as the node plugin has")
def test_a_fresh_token_belongs_to_the_mount_pods_user_who_owns_the_directory(tmp_path: Path) -> None:
    os.chown(tmp_path, 65532, 65532)  # what MountPods does to a mount's directory
    write_token(tmp_path, "fresh")
    owner = (tmp_path / TOKEN_FILE_NAME).stat()
    assert (owner.st_uid, owner.st_gid) == (65532, 65532)
