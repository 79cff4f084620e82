"""kill -9 of the daemon while a program overwrites a file whose acknowledged version is journaled
but not uploaded yet (the fault proxy refuses its uploads): open with O_TRUNC, a few writes, and
the daemon dies before the close(). The restarted daemon (same cache dir: journal replay) must give
back exactly the acknowledged content, through the mount and then in S3; before the fix it
replayed the old row's size and ranges over the overwritten cache file (old size, new bytes,
zeros). Docs: docs/architecture.md, "Changes to an acknowledged file before its upload"."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory
from tests.realparts.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MiB = 1024 * 1024


@pytest.mark.timeout(240)
@pytest.mark.parametrize("size", [3 * MiB, 24 * MiB], ids=["single-put", "multipart"])
def test_kill_9_inside_an_overwrite_of_an_unuploaded_file_keeps_the_acknowledged_content(
    fault_proxy: FaultProxy, razorfs_mount: MountFactory, s3_client: Any, bucket: str, size: int
) -> None:
    acknowledged = random.Random(size).randbytes(size)
    vol = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    for method in ("PUT", "POST"):  # a single PUT, or a multipart upload's create and parts
        fault_proxy.add_rule(Fault.ERROR_500, times=None, method=method, path_contains="/vol/f.bin")
    (vol.mountpoint / "f.bin").write_bytes(acknowledged)  # close() returned: acknowledged
    assert vol.stats()["dirty_files"] == 1

    fd = os.open(vol.mountpoint / "f.bin", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b"the start of a newer version")
        os.pwrite(fd, b"more of it, further on", size // 2)
        vol.kill9()  # no writeback cache: the daemon had every write when it died
    finally:
        with contextlib.suppress(OSError):  # the daemon is gone
            os.close(fd)

    fault_proxy.clear()
    again = razorfs_mount(mountpoint=vol.mountpoint, cache_dir=vol.cache_dir, endpoint_url=fault_proxy.endpoint_url)
    assert (again.mountpoint / "f.bin").read_bytes() == acknowledged
    again.flush()
    assert s3_client.get_object(Bucket=bucket, Key="vol/f.bin")["Body"].read() == acknowledged
    assert not any(".acked-" in p.name for p in (again.cache_dir / "data").iterdir())
    again.umount()
