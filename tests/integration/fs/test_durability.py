"""What close() acknowledged survives a kill -9 of the daemon; the cache keeps its byte limit
under a workload three times its size with writers waiting, never failing; a partial read of a
large object downloads about what was read."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MiB = 1024 * 1024


def _content(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (100 + i * 7)


def test_kill_9_after_close_of_200_files_then_remount_uploads_all_200(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, fault_proxy: Any
) -> None:
    from tests.realparts.faultproxy import Fault

    # The daemon talks to S3 through a proxy that fails every PUT, so nothing can be uploaded
    # before the kill: every one of the 200 files must come back from the journal.
    vol = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT")
    for i in range(200):
        with open(vol.mountpoint / f"f{i:03d}", "wb") as f:
            f.write(_content(i))
    assert vol.stats()["dirty_files"] == 200
    vol.kill9()
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="vol/")
    assert listed.get("KeyCount", 0) == 0, "nothing reached S3 before the kill"

    fault_proxy.clear()
    again = razorfs_mount(cache_dir=vol.cache_dir, mountpoint=vol.mountpoint, endpoint_url=fault_proxy.endpoint_url)
    again.flush()
    for i in range(200):
        got = s3_client.get_object(Bucket=bucket, Key=f"vol/f{i:03d}")["Body"].read()
        assert got == _content(i), i
    assert again.stats()["dirty_files"] == 0


def test_cache_limit_holds_under_3x_workload_and_writers_wait_instead_of_failing(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    limit = 64 * MiB
    vol = razorfs_mount(extra=("--cache-size", "64MiB"))
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, vol.stats()["cached_bytes"])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    chunk = os.urandom(MiB)
    try:
        for i in range(24):  # 24 files x 8 MiB = 192 MiB = 3x the limit
            with open(vol.mountpoint / f"big{i:02d}", "wb") as f:
                for j in range(8):
                    f.write(bytes([i, j]) + chunk[2:])
    finally:
        stop.set()
        sampler.join()
    stats = vol.stats()
    assert peak <= limit, f"cache grew to {peak} bytes over its {limit} limit"
    assert stats["cached_bytes"] <= limit
    vol.flush()
    for i in (0, 11, 23):
        body = s3_client.get_object(Bucket=bucket, Key=f"vol/big{i:02d}")["Body"].read()
        assert len(body) == 8 * MiB
        assert body[MiB * 5 : MiB * 5 + 2] == bytes([i, 5])
    # Evicted files read back correctly (fetched again from S3).
    assert (vol.mountpoint / "big00").read_bytes()[:2] == bytes([0, 0])


class _Generated:
    """A large deterministic stream for boto3's multipart upload without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.block = os.urandom(MiB)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        out = bytearray()
        while len(out) < n:
            offset = (self.pos + len(out)) % MiB
            out += self.block[offset : offset + n - len(out)]
        self.pos += n
        return bytes(out)

    def expected(self, start: int, length: int) -> bytes:
        out = bytearray()
        for chunks in _ranges(start, length):
            out += self.block[chunks[0] : chunks[1]]
        return bytes(out)


def _ranges(start: int, length: int) -> Iterator[tuple[int, int]]:
    pos = start
    end = start + length
    while pos < end:
        offset = pos % MiB
        take = min(MiB - offset, end - pos)
        yield offset, offset + take
        pos += take


def test_reading_1mib_of_a_512mib_object_downloads_only_a_few_mib(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    from boto3.s3.transfer import TransferConfig

    size = 512 * MiB
    source = _Generated(size)
    s3_client.upload_fileobj(
        source, bucket, "vol/huge.bin", Config=TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=4)
    )
    vol = razorfs_mount()
    before = vol.stats()["bytes_downloaded"]
    offset = 300 * MiB + 12345
    with open(vol.mountpoint / "huge.bin", "rb") as f:
        f.seek(offset)
        data = f.read(MiB)
    assert data == source.expected(offset, MiB)
    assert (vol.mountpoint / "huge.bin").stat().st_size == size
    downloaded = vol.stats()["bytes_downloaded"] - before
    assert downloaded <= 8 * MiB, f"a 1 MiB read downloaded {downloaded} bytes"


def test_overwriting_a_few_bytes_of_a_large_file_reuses_the_rest_server_side(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    size = 48 * MiB
    original = os.urandom(size)
    s3_client.put_object(Bucket=bucket, Key="vol/large", Body=original)
    vol = razorfs_mount()
    with open(vol.mountpoint / "large", "r+b") as f:
        f.seek(20 * MiB)
        f.write(b"patched")
        f.flush()  # out of Python's buffer, so fsync covers the write
        os.fsync(f.fileno())
    stats = vol.stats()
    expected = original[: 20 * MiB] + b"patched" + original[20 * MiB + 7 :]
    assert s3_client.get_object(Bucket=bucket, Key="vol/large")["Body"].read() == expected
    # Only the changed 8 MiB segment was fetched and uploaded; the rest was copied in S3.
    assert stats["bytes_downloaded"] <= 16 * MiB
    assert stats["bytes_uploaded"] <= 16 * MiB


def test_rename_of_a_dirty_file_keeps_its_data(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    vol = razorfs_mount()
    data = os.urandom(5 * MiB)
    (vol.mountpoint / "a").write_bytes(b"old")
    vol.flush()
    (vol.mountpoint / "a").write_bytes(data)  # dirty again
    os.rename(vol.mountpoint / "a", vol.mountpoint / "b")
    assert (vol.mountpoint / "b").read_bytes() == data
    vol.flush()
    assert s3_client.get_object(Bucket=bucket, Key="vol/b")["Body"].read() == data
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket, Prefix="vol/").get("Contents", [])]
    assert keys == ["vol/b"]


def test_writes_through_10_percent_injected_faults_all_arrive_intact(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, fault_proxy: Any
) -> None:
    vol = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    fault_proxy.set_chaos(0.10, seed=7)
    contents = {f"c{i:02d}": os.urandom(1000 + i * 50_000) for i in range(40)}
    for name, data in contents.items():
        (vol.mountpoint / name).write_bytes(data)
    vol.flush(timeout=300)
    for name, data in contents.items():
        assert (vol.mountpoint / name).read_bytes() == data, name
    fault_proxy.clear()
    assert fault_proxy.faults_injected() > 0
    for name, data in contents.items():
        assert s3_client.get_object(Bucket=bucket, Key=f"vol/{name}")["Body"].read() == data, name
