"""Volume context -> `razorfs mount` argv; secrets stay out of argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from razorfs.csi.errors import FailedPrecondition, InvalidArgument
from razorfs.csi.mount_settings import Credentials, MountSettings

BASE = {"endpoint": "http://127.0.0.1:8333", "bucket": "data"}


def test_minimal_context_gives_foreground_mount_of_the_prefix() -> None:
    settings = MountSettings.from_context({**BASE, "prefix": "/vols/a/"})
    argv = settings.mount_argv(
        ["razorfs"], Path("/stage"), Path("/cache"), read_only=False, mount_group=None, ca_bundle=None
    )
    assert argv[:4] == ["razorfs", "mount", "s3://data/vols/a", "/stage"]
    assert "--foreground" in argv
    assert argv[argv.index("--endpoint-url") + 1] == "http://127.0.0.1:8333"
    assert argv[argv.index("--cache-dir") + 1] == "/cache"
    assert "--read-only" not in argv


def test_every_context_key_reaches_argv() -> None:
    context = {
        **BASE,
        "region": "eu-west-1",
        "forcePathStyle": "true",
        "cacheMode": "writethrough",
        "cacheSize": "2GiB",
        "metadataTTL": "5s",
        "uid": "1000",
        "gid": "2000",
        "fileMode": "0640",
        "dirMode": "0750",
        "readOnly": "true",
        "sse": "aws:kms",
        "sseKmsKeyId": "key-1",
    }
    argv = MountSettings.from_context(context).mount_argv(
        ["razorfs"], Path("/s"), Path("/c"), read_only=False, mount_group=None, ca_bundle=Path("/ca.pem")
    )
    joined = " ".join(argv)
    for expected in [
        "--region eu-west-1",
        "--force-path-style",
        "--cache-mode writethrough",
        "--cache-size 2GiB",
        "--metadata-ttl 5s",
        "--uid 1000",
        "--gid 2000",
        "--file-mode 0640",
        "--dir-mode 0750",
        "--read-only",
        "--sse aws:kms",
        "--sse-kms-key-id key-1",
        "--ca-bundle /ca.pem",
    ]:
        assert expected in joined


def test_mount_group_overrides_context_gid() -> None:
    argv = MountSettings.from_context({**BASE, "gid": "5"}).mount_argv(
        ["razorfs"], Path("/s"), Path("/c"), read_only=True, mount_group=3000, ca_bundle=None
    )
    assert argv[argv.index("--gid") + 1] == "3000"
    assert "--read-only" in argv


@pytest.mark.parametrize(
    "context",
    [
        {"bucket": "data"},
        {"endpoint": "ftp://x", "bucket": "data"},
        {"endpoint": "http://x"},
        {**BASE, "prefix": "a/../b"},
        {**BASE, "cacheMode": "bogus"},
        {**BASE, "cacheSize": "lots"},
        {**BASE, "metadataTTL": "forever"},
        {**BASE, "uid": "-1"},
        {**BASE, "fileMode": "rwx"},
        {**BASE, "readOnly": "maybe"},
        {**BASE, "sse": "rot13"},
        {**BASE, "mountPod": "{not json"},
        {**BASE, "mountPod": '{"image": "evil/image"}'},
        {**BASE, "mountPod": '{"resources": "lots"}'},
    ],
)
def test_bad_context_is_invalid_argument(context: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        MountSettings.from_context(context)


def test_credentials_go_to_environment_and_never_into_repr_or_argv() -> None:
    secrets = {"accessKeyID": "AKID", "secretAccessKey": "s3cr3t-value", "sessionToken": "tok-value"}
    credentials = Credentials.from_secrets(secrets)
    assert credentials.environment() == {
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "AWS_SESSION_TOKEN": "tok-value",
    }
    assert "s3cr3t-value" not in repr(credentials) and "tok-value" not in repr(credentials)
    assert Credentials.from_secrets(credentials.to_secrets()) == credentials
    argv = MountSettings.from_context(BASE).mount_argv(
        ["razorfs"], Path("/s"), Path("/c"), read_only=False, mount_group=None, ca_bundle=None
    )
    assert not any("s3cr3t" in arg for arg in argv)


def _argv(settings: MountSettings) -> list[str]:
    return settings.mount_argv(["razorfs"], Path("/s"), Path("/c"), read_only=False, mount_group=None, ca_bundle=None)


def test_a_volume_signs_with_its_secret_only_unless_it_asks_for_the_node_identity_by_name() -> None:
    default = MountSettings.from_context(BASE)
    assert not default.uses_node_identity
    assert _argv(default)[-2:] == ["--credential-source", "explicit"]
    node = MountSettings.from_context({**BASE, "authentication": "node"})
    assert node.uses_node_identity
    assert _argv(node)[-2:] == ["--credential-source", "default-chain"]
    with pytest.raises(InvalidArgument, match="authentication"):
        MountSettings.from_context({**BASE, "authentication": "ambient"})


@pytest.mark.parametrize(
    ("secrets", "missing"),
    [
        ({}, "accessKeyID and secretAccessKey"),
        ({"accessKeyID": "AKIDX"}, "secretAccessKey"),
        ({"accessKeyID": "AKIDX", "secretAccessKey": "  "}, "secretAccessKey"),
        ({"secretAccessKey": "s3cr3t-value", "sessionToken": "tok-value"}, "accessKeyID"),
    ],
)
def test_incomplete_stage_secrets_fail_naming_the_missing_key_never_a_value(
    secrets: dict[str, str], missing: str
) -> None:
    with pytest.raises(FailedPrecondition) as info:
        Credentials.from_secrets(secrets).require_complete()
    message = str(info.value)
    assert f"lack {missing}:" in message
    assert "s3cr3t-value" not in message and "tok-value" not in message and "AKIDX" not in message


def test_complete_stage_secrets_pass() -> None:
    Credentials.from_secrets({"accessKeyID": "a", "secretAccessKey": "b"}).require_complete()


def test_mount_pod_settings_are_kept_as_canonical_json() -> None:
    settings = MountSettings.from_context({**BASE, "mountPod": '{"priorityClassName": "p", "resources": {}}'})
    assert settings.mount_pod == '{"priorityClassName":"p","resources":{}}'
    assert MountSettings.from_context(BASE).mount_pod == ""
