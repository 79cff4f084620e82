"""A bucket is shared with other S3 tools: objects put by boto3 (with and without s3fs's headers)
show the right modes through RazorFS, and files written by RazorFS show the right modes, owners
and contents through s3fs."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory, mounted_s3fs
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.fuse, pytest.mark.s3]


def test_objects_put_by_boto3_read_with_their_s3fs_modes_or_the_mount_defaults(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="vol/plain.txt", Body=b"no headers")
    s3_client.put_object(
        Bucket=bucket,
        Key="vol/s3fs.txt",
        Body=b"with headers",
        Metadata={"mode": str(stat.S_IFREG | 0o600), "uid": "1001", "gid": "1002", "mtime": "1600000000"},
    )
    s3_client.put_object(Bucket=bucket, Key="vol/rclone.txt", Body=b"r", Metadata={"mtime": "1600000000.5"})
    s3_client.put_object(Bucket=bucket, Key="vol/link", Body=b"s3fs.txt", Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    s3_client.put_object(Bucket=bucket, Key="vol/implicit/dir/deep.txt", Body=b"deep")
    vol = razorfs_mount(extra=("--uid", "42", "--gid", "43", "--file-mode", "0640", "--dir-mode", "0750"))
    root = vol.mountpoint

    plain = os.lstat(root / "plain.txt")
    assert (stat.S_IMODE(plain.st_mode), plain.st_uid, plain.st_gid) == (0o640, 42, 43)
    assert stat.S_ISREG(plain.st_mode)
    headed = os.lstat(root / "s3fs.txt")
    assert (stat.S_IMODE(headed.st_mode), headed.st_uid, headed.st_gid) == (0o600, 1001, 1002)
    assert headed.st_mtime == 1600000000
    assert os.lstat(root / "rclone.txt").st_mtime == 1600000000.5
    assert os.readlink(root / "link") == "s3fs.txt"
    assert (root / "link").read_bytes() == b"with headers"
    implicit = os.lstat(root / "implicit")
    assert stat.S_ISDIR(implicit.st_mode) and stat.S_IMODE(implicit.st_mode) == 0o750
    assert (root / "implicit" / "dir" / "deep.txt").read_bytes() == b"deep"
    assert sorted(os.listdir(root)) == ["implicit", "link", "plain.txt", "rclone.txt", "s3fs.txt"]


@pytest.fixture
def s3fs_mount(s3_server: S3Server, bucket: str, tmp_path: Path) -> Iterator[Path]:
    with mounted_s3fs(s3_server, bucket, "vol", tmp_path / "s3fs") as mountpoint:
        yield mountpoint


def test_files_written_by_razorfs_show_their_modes_owners_and_content_in_s3fs(
    razorfs_mount: MountFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    vol = razorfs_mount()
    root = vol.mountpoint
    (root / "docs").mkdir()
    (root / "docs" / "secret.txt").write_bytes(b"top secret")
    os.chmod(root / "docs" / "secret.txt", 0o600)
    os.chown(root / "docs" / "secret.txt", 1234, 4321)
    (root / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o755)
    os.symlink("script.sh", root / "run")
    os.utime(root / "script.sh", (1_600_000_000, 1_600_000_000))
    vol.flush()

    other = request.getfixturevalue("s3fs_mount")
    secret = os.lstat(other / "docs" / "secret.txt")
    assert stat.S_ISREG(secret.st_mode)
    assert (stat.S_IMODE(secret.st_mode), secret.st_uid, secret.st_gid) == (0o600, 1234, 4321)
    assert (other / "docs" / "secret.txt").read_bytes() == b"top secret"
    script = os.lstat(other / "script.sh")
    assert stat.S_IMODE(script.st_mode) == 0o755
    assert script.st_mtime == 1_600_000_000
    assert os.readlink(other / "run") == "script.sh"
    assert stat.S_ISDIR(os.lstat(other / "docs").st_mode)


def test_changes_by_another_client_show_after_the_metadata_ttl(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    vol = razorfs_mount(extra=("--metadata-ttl", "500ms"))
    (vol.mountpoint / "replaced").write_bytes(b"ours")
    (vol.mountpoint / "deleted").write_bytes(b"ours too")
    vol.flush()
    assert (vol.mountpoint / "replaced").read_bytes() == b"ours"  # cached now
    s3_client.put_object(Bucket=bucket, Key="vol/replaced", Body=b"theirs, longer")
    s3_client.delete_object(Bucket=bucket, Key="vol/deleted")
    time.sleep(1.2)
    assert sorted(os.listdir(vol.mountpoint)) == ["replaced"]
    assert (vol.mountpoint / "replaced").read_bytes() == b"theirs, longer"  # close-to-open
    assert not (vol.mountpoint / "deleted").exists()
