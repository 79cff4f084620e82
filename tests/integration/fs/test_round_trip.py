"""Bytes written through the mount are the S3 objects, byte for byte, and read back identical
after a remount with an empty cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

SIZES = {"empty": 0, "one": 1, "mib": 1024 * 1024, "big": 100 * 1024 * 1024}


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        for start in range(0, len(data), 1024 * 1024):
            f.write(data[start : start + 1024 * 1024])


def _object_bytes(s3_client: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_files_of_0_1_1mib_100mib_are_identical_objects_and_survive_remount_with_empty_cache(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    contents = {name: os.urandom(size) for name, size in SIZES.items()}
    vol = razorfs_mount()
    (vol.mountpoint / "sub").mkdir()
    for name, data in contents.items():
        _write(vol.mountpoint / "sub" / name, data)
    vol.flush()
    for name, data in contents.items():
        got = _object_bytes(s3_client, bucket, f"vol/sub/{name}")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), name
    vol.umount()

    again = razorfs_mount(cache_dir=tmp_path / "fresh-cache")
    assert sorted(os.listdir(again.mountpoint / "sub")) == sorted(contents)
    for name, data in contents.items():
        assert (again.mountpoint / "sub" / name).stat().st_size == len(data)
        assert (again.mountpoint / "sub" / name).read_bytes() == data, name
    assert again.stats()["bytes_downloaded"] >= sum(SIZES.values())


def test_fsync_returns_after_the_object_is_in_s3(razorfs_mount: MountFactory, s3_client: Any, bucket: str) -> None:
    vol = razorfs_mount()
    data = os.urandom(3 * 1024 * 1024 + 17)
    fd = os.open(vol.mountpoint / "synced", os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
        # No flush, no close: the object must already be there.
        assert _object_bytes(s3_client, bucket, "vol/synced") == data
        os.pwrite(fd, b"CHANGED", 100)
        os.fsync(fd)
        expected = data[:100] + b"CHANGED" + data[107:]
        assert _object_bytes(s3_client, bucket, "vol/synced") == expected
    finally:
        os.close(fd)
    head = s3_client.head_object(Bucket=bucket, Key="vol/synced")
    assert int(head["Metadata"]["mode"]) & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writethrough_close_returns_after_the_object_is_in_s3(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    vol = razorfs_mount(extra=("--cache-mode", "writethrough"))
    (vol.mountpoint / "wt").write_bytes(b"through")
    assert _object_bytes(s3_client, bucket, "vol/wt") == b"through"


def test_readonly_mount_refuses_writes_with_erofs(razorfs_mount: MountFactory, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="vol/existing", Body=b"data")
    vol = razorfs_mount(extra=("--cache-mode", "readonly"))
    assert (vol.mountpoint / "existing").read_bytes() == b"data"
    with pytest.raises(OSError) as err:
        (vol.mountpoint / "new").write_bytes(b"x")
    assert err.value.errno == 30  # EROFS
