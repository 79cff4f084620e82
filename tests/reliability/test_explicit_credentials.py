"""The mount daemon with `--credential-source explicit` (how the CSI plugin starts it) signs with
the keys it was given or with nothing: credentials that boto3's default chain would find and that
work (a profile in HOME, an AWS config file) are never used. Checked at a proxy that records the
signing key of every request."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.csi.signing_proxy import SigningProxy
from tests.realparts.s3server import S3Server
from tests.reliability.cli_run import run_razorfs

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


@pytest.fixture
def ambient_home(tmp_path: Path, s3_server: S3Server) -> Iterator[Path]:
    """A HOME whose AWS profile and config hold the working test keys."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    profile = f"aws_access_key_id={s3_server.access_key}\naws_secret_access_key={s3_server.secret_key}\n"
    (home / ".aws" / "credentials").write_text("[default]\n" + profile)
    (home / ".aws" / "config").write_text("[default]\nregion=us-east-1\n" + profile)
    try:
        yield home
    finally:
        for name in ("credentials", "config"):
            (home / ".aws" / name).unlink()


def _mount_args(bucket: str, endpoint: str, tmp_path: Path) -> list[str]:
    (tmp_path / "mnt").mkdir(exist_ok=True)
    return [
        "mount",
        f"s3://{bucket}/v",
        str(tmp_path / "mnt"),
        "--endpoint-url",
        endpoint,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--force-path-style",
        "--region",
        "us-east-1",
        "--credential-source",
        "explicit",
    ]


def _env_without_aws(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(home), **extra}


def test_explicit_daemon_without_keys_fails_and_sends_nothing_despite_a_working_profile(
    s3_server: S3Server, bucket: str, signing_proxy: SigningProxy, ambient_home: Path, tmp_path: Path
) -> None:
    result = run_razorfs(_mount_args(bucket, signing_proxy.endpoint_url, tmp_path), _env_without_aws(ambient_home))
    line = result.assert_one_line_failure()
    assert "AWS_ACCESS_KEY_ID" in line and "AWS_SECRET_ACCESS_KEY" in line
    assert signing_proxy.signers == []


def test_explicit_daemon_signs_only_with_its_keys_even_when_they_are_wrong(
    s3_server: S3Server, bucket: str, signing_proxy: SigningProxy, ambient_home: Path, tmp_path: Path
) -> None:
    env = _env_without_aws(
        ambient_home,
        AWS_ACCESS_KEY_ID="AKIDEXPLICITWRONG01",
        AWS_SECRET_ACCESS_KEY="explicit-wrong-secret-1",
        AWS_PROFILE="default",
        AWS_CONFIG_FILE=str(ambient_home / ".aws" / "config"),
    )
    result = run_razorfs(_mount_args(bucket, signing_proxy.endpoint_url, tmp_path), env)
    result.assert_one_line_failure()
    assert signing_proxy.signers and set(signing_proxy.signers) == {"AKIDEXPLICITWRONG01"}
