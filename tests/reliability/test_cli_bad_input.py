"""Bad input to `razorfs mount` and `razorfs check`: each ends in one line on stderr that names the
problem, a non-zero exit, no traceback, and no daemon or mount left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.realparts.fusemount import is_mounted
from tests.realparts.processes import free_port
from tests.realparts.s3server import S3Server
from tests.reliability.cli_run import run_razorfs
from tests.reliability.conftest import MountFactory

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def no_credentials_env() -> dict[str, str]:
    """An environment in which boto3's chain finds nothing: no variables, no files, no IMDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def mount_args(url: str, mountpoint: Path, cache_dir: Path, endpoint: str) -> list[str]:
    return [
        "mount",
        url,
        str(mountpoint),
        "--endpoint-url",
        endpoint,
        "--cache-dir",
        str(cache_dir),
        "--force-path-style",
        "--region",
        "us-east-1",
    ]


@pytest.mark.parametrize(
    "url",
    ["not-a-url", "http://bucket/prefix", "s3://", "s3:///prefix", "s3://Bad_Bucket!/x", "s3://b/" + "p" * 5000],
)
def test_mount_with_a_bad_url_fails_with_one_line(url: str, s3_server: S3Server, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    result = run_razorfs(
        mount_args(url, tmp_path / "mnt", tmp_path / "cache", s3_server.endpoint_url), {**os.environ, **s3_server.env()}
    )
    result.assert_one_line_failure()
    assert not is_mounted(tmp_path / "mnt")


def test_mount_without_credentials_fails_with_one_line(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    result = run_razorfs(
        mount_args(f"s3://{bucket}/v", tmp_path / "mnt", tmp_path / "cache", s3_server.endpoint_url),
        no_credentials_env(),
    )
    line = result.assert_one_line_failure()
    assert "credential" in line.lower(), line
    assert not is_mounted(tmp_path / "mnt")


def test_check_without_credentials_fails_and_says_so(s3_server: S3Server, bucket: str) -> None:
    result = run_razorfs(
        ["check", f"s3://{bucket}/v", "--endpoint-url", s3_server.endpoint_url, "--force-path-style"],
        no_credentials_env(),
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "credential" in (result.stderr + result.stdout).lower()


def test_mount_against_an_unreachable_endpoint_fails_quickly_with_one_line(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_razorfs(
        mount_args(f"s3://{bucket}/v", tmp_path / "mnt", tmp_path / "cache", dead), {**os.environ, **s3_server.env()}
    )
    line = result.assert_one_line_failure()
    assert time.monotonic() - started < 75, "an unreachable endpoint must not hang the mount command"
    assert "127.0.0.1" in line or "reach" in line.lower() or "connect" in line.lower(), line
    assert not is_mounted(tmp_path / "mnt")


def test_mount_on_a_non_empty_directory_fails_and_leaves_its_files(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    (mountpoint / "precious.txt").write_text("keep me")
    result = run_razorfs(
        mount_args(f"s3://{bucket}/v", mountpoint, tmp_path / "cache", s3_server.endpoint_url),
        {**os.environ, **s3_server.env()},
    )
    line = result.assert_one_line_failure()
    assert "not empty" in line, line
    assert not is_mounted(mountpoint)
    assert (mountpoint / "precious.txt").read_text() == "keep me"


def test_mount_on_a_missing_bucket_fails_with_one_line(s3_server: S3Server, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    result = run_razorfs(
        mount_args("s3://no-such-bucket-razorfs/v", tmp_path / "mnt", tmp_path / "cache", s3_server.endpoint_url),
        {**os.environ, **s3_server.env()},
    )
    line = result.assert_one_line_failure()
    assert "no-such-bucket-razorfs" in line or "bucket" in line.lower(), line
    assert not is_mounted(tmp_path / "mnt")


@pytest.mark.parametrize(
    "flag,value", [("--cache-size", "lots"), ("--metadata-ttl", "-1s"), ("--file-mode", "999"), ("--uid", "x")]
)
def test_mount_with_a_bad_option_value_fails_with_one_line(
    flag: str, value: str, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    args = [*mount_args(f"s3://{bucket}/v", tmp_path / "mnt", tmp_path / "cache", s3_server.endpoint_url), flag, value]
    result = run_razorfs(args, {**os.environ, **s3_server.env()})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert not is_mounted(tmp_path / "mnt")


@pytest.mark.parametrize("command", ["flush", "umount", "stats"])
def test_commands_on_a_directory_that_is_no_mount_fail_with_one_line(command: str, tmp_path: Path) -> None:
    line = run_razorfs([command, str(tmp_path)], dict(os.environ)).assert_one_line_failure()
    assert "not a RazorFS mount" in line or str(tmp_path) in line, line


def test_a_second_mount_on_a_cache_dir_in_use_fails_and_the_first_keeps_working(
    mount_factory: MountFactory,
) -> None:
    first = mount_factory()
    second = mount_factory(cache_dir=first.cache_dir, start=False)
    second.mountpoint.mkdir(parents=True)
    result = run_razorfs(second.command()[1:], second.env)
    line = result.assert_one_line_failure()
    assert "in use" in line, line
    assert not is_mounted(second.mountpoint)
    (first.mountpoint / "still.txt").write_bytes(b"fine\n")
    assert (first.mountpoint / "still.txt").read_bytes() == b"fine\n"
    assert first.alive()


def test_mount_on_a_path_that_is_a_file_fails_with_one_line(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run_razorfs(
        mount_args(f"s3://{bucket}/v", tmp_path / "file", tmp_path / "cache", s3_server.endpoint_url),
        {**os.environ, **s3_server.env()},
    )
    result.assert_one_line_failure()
    assert (tmp_path / "file").read_text() == "not a directory"
