"""`razorfs mount --credential-source web-identity`: the role and token file are required, the
web identity flags are refused with any other source, and the daemon's store then signs with STS's
keys only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from razorfs.errors import UsageError
from razorfs.mount.daemon import build_store
from razorfs.mount.options import parse_mount_argv

ROLE = "arn:aws:iam::123456789012:role/app"
WEB_IDENTITY = ["--credential-source", "web-identity", "--role-arn", ROLE, "--web-identity-token-file", "/t"]
BASE = ["mount", "s3://bucket/prefix", "/mnt/x", "--cache-dir", "/tmp/c", "--endpoint-url", "http://127.0.0.1:1"]


def test_web_identity_flags_make_the_options_web_identity() -> None:
    options = parse_mount_argv(
        [
            *BASE,
            "--credential-source",
            "web-identity",
            "--role-arn",
            ROLE,
            "--web-identity-token-file",
            "/run/token",
            "--sts-endpoint",
            "http://127.0.0.1:2",
            "--role-session-name",
            "team-a.app",
            "--region",
            "eu-west-1",
        ]
    )
    assert options.credential_source == "web-identity"
    identity = options.web_identity
    assert identity is not None
    assert (identity.role_arn, identity.token_file, identity.sts_endpoint_url) == (
        ROLE,
        Path("/run/token"),
        "http://127.0.0.1:2",
    )
    assert (identity.session_name, identity.region) == ("team-a.app", "eu-west-1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--credential-source", "web-identity", "--role-arn", ROLE], "needs --web-identity-token-file"),
        (["--credential-source", "web-identity", "--web-identity-token-file", "/t"], "needs --role-arn"),
        (["--credential-source", "explicit", "--role-arn", ROLE], "--role-arn need --credential-source web-identity"),
        (["--role-arn", ROLE, "--web-identity-token-file", "/t"], "need --credential-source web-identity"),
        (
            ["--credential-source", "web-identity", "--role-arn", "not-an-arn", "--web-identity-token-file", "/t"],
            "not an IAM role ARN",
        ),
        (
            [*WEB_IDENTITY, "--sts-endpoint", "sts.example.com"],
            "must be an http(s) URL",
        ),
    ],
)
def test_incomplete_or_misplaced_web_identity_flags_are_usage_errors(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_mount_argv([*BASE, *extra])


def test_a_missing_token_file_fails_the_store_with_a_message_naming_the_file_only(tmp_path: Path) -> None:
    token = tmp_path / "token"
    options = parse_mount_argv(
        [*BASE, "--credential-source", "web-identity", "--role-arn", ROLE, "--web-identity-token-file", str(token)]
    )
    with pytest.raises(UsageError, match=re.escape(f"web identity token file {token}")):
        build_store(options)
