"""The filesystem under the nastier S3 faults (the fault proxy between the mount and the real
server): download bodies with bytes flipped (the end-to-end checksum catches them: a program reads
the right bytes after a re-fetch, or EIO while the corruption persists, never wrong bytes), an
upload the server reads at a trickle and gives up on (slow loris), and 403 AccessDenied switched
on for a while in the middle of a run (fsync bounded by --fsync-timeout). The bucket is judged
directly on the real server, never through the proxy."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from typing import Any

import pytest

from tests.realparts.faultproxy import Fault, FaultProxy
from tests.reliability.conftest import MountFactory
from tests.reliability.mount_process import RAZORFS_BIN, MountProcess
from tests.reliability.s3_contents import objects_under
from tests.reliability.workload import KiB, content_for, write_file

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

# Each at most 1 MiB: read back with one whole-object GET, which the checksum covers.
SMALL_FILES = {"tiny.txt": 700, "small.bin": 200 * KiB, "medium.bin": 900 * KiB}


def dirty_files(mount: MountProcess) -> int:
    result = mount._cli([RAZORFS_BIN, "stats", str(mount.mountpoint), "--json"])
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["dirty_files"])


def write_flushed(mount_factory: MountFactory, fault_proxy: FaultProxy, prefix: str) -> dict[str, bytes]:
    writer = mount_factory(prefix=prefix, endpoint_url=fault_proxy.endpoint_url)
    expected = {name: content_for(21, name, size) for name, size in SMALL_FILES.items()}
    for name, data in expected.items():
        write_file(writer.mountpoint / name, data)
    writer.flush()
    writer.cleanup()
    return expected


@pytest.mark.timeout(120)
def test_corrupted_downloads_are_fetched_again_and_programs_read_the_right_bytes(
    mount_factory: MountFactory, fault_proxy: FaultProxy
) -> None:
    expected = write_flushed(mount_factory, fault_proxy, "corrupt")
    # The first GETs of the objects come back with bytes flipped (their lengths unchanged).
    fault_proxy.add_rule(Fault.CORRUPT, times=4, method="GET", path_contains="/corrupt/")
    reader = mount_factory(prefix="corrupt", endpoint_url=fault_proxy.endpoint_url)
    wrong = [name for name, data in expected.items() if (reader.mountpoint / name).read_bytes() != data]
    assert wrong == [], f"corrupted downloads reached a program for {wrong}"
    assert fault_proxy.stats.faults["corrupt"] == 4
    assert reader.alive(), reader.log_tail()


@pytest.mark.timeout(120)
def test_corruption_that_persists_is_eio_and_nothing_corrupt_stays_in_the_cache(
    mount_factory: MountFactory, fault_proxy: FaultProxy
) -> None:
    expected = write_flushed(mount_factory, fault_proxy, "rotten")
    rule = fault_proxy.add_rule(Fault.CORRUPT, times=None, method="GET", path_contains="/rotten/small.bin")
    reader = mount_factory(prefix="rotten", endpoint_url=fault_proxy.endpoint_url)
    with pytest.raises(OSError) as failed:
        (reader.mountpoint / "small.bin").read_bytes()
    assert failed.value.errno == errno.EIO, failed.value
    assert fault_proxy.stats.faults["corrupt"] >= 2, "the corrupted body was not fetched again"
    assert (reader.mountpoint / "tiny.txt").read_bytes() == expected["tiny.txt"]
    fault_proxy.remove_rule(rule)
    # Nothing of the corrupted bodies was kept: the next read fetches again and gets it right.
    assert (reader.mountpoint / "small.bin").read_bytes() == expected["small.bin"]
    assert reader.alive(), reader.log_tail()


@pytest.mark.timeout(120)
def test_slow_loris_uploads_are_retried_and_the_data_stays_dirty_until_it_is_in_s3(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(prefix="loris", endpoint_url=fault_proxy.endpoint_url)
    # Every upload is read at a trickle and answered 400 RequestTimeout after a second.
    rule = fault_proxy.add_rule(Fault.SLOW_LORIS, times=None, method="PUT", delay_s=1.0)
    data = content_for(22, "slow.bin", 300 * KiB)
    started = time.monotonic()
    write_file(mount.mountpoint / "slow.bin", data)
    assert time.monotonic() - started < 5.0, "close() waited for the stalled upload"
    time.sleep(2.5)
    assert fault_proxy.stats.faults["slow-loris"] >= 1
    assert objects_under(s3_client, bucket, "loris/") == {}
    assert dirty_files(mount) == 1, "the file stopped being dirty before it was in S3"
    assert (mount.mountpoint / "slow.bin").read_bytes() == data
    fault_proxy.remove_rule(rule)
    mount.flush(timeout_s=60)
    assert dirty_files(mount) == 0
    assert objects_under(s3_client, bucket, "loris/") == {"slow.bin": data}
    assert mount.alive(), mount.log_tail()


@pytest.mark.timeout(120)
def test_fsync_during_access_denied_fails_within_the_fsync_timeout_and_succeeds_once_it_ends(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    # A long metadata TTL: opening the file during the 403s needs no revalidation from S3.
    mount = mount_factory(
        prefix="denied", endpoint_url=fault_proxy.endpoint_url, metadata_ttl="1h", extra_args=["--fsync-timeout", "4s"]
    )
    path = mount.mountpoint / "f.bin"
    write_file(path, b"before the 403s\n")
    mount.flush()
    rule = fault_proxy.add_rule(Fault.DENIED_403, times=None, method="PUT")  # a bucket policy says no
    first = content_for(23, "f.bin", 300 * KiB)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, first)
        started = time.monotonic()
        with pytest.raises(OSError) as failed:
            os.fsync(fd)
        took = time.monotonic() - started
        assert failed.value.errno == errno.EIO, failed.value
        assert 4.0 <= took < 12.0, f"fsync returned after {took:.1f}s with --fsync-timeout 4s"
        assert objects_under(s3_client, bucket, "denied/") == {"f.bin": b"before the 403s\n"}
        assert dirty_files(mount) == 1

        # An fsync that starts during the 403s returns success once they stop (the flush makes
        # the uploader retry at once, not after its backoff, which may outlast the fsync timeout).
        second = content_for(24, "f.bin", 200 * KiB)
        os.pwrite(fd, second, 0)
        os.ftruncate(fd, len(second))
        outcome: list[BaseException | None] = []

        def fsync_in_background() -> None:
            try:
                os.fsync(fd)
                outcome.append(None)
            except OSError as err:
                outcome.append(err)

        syncing = threading.Thread(target=fsync_in_background)
        syncing.start()
        time.sleep(1.0)
        assert outcome == [], "fsync returned while every upload was denied"
        fault_proxy.remove_rule(rule)
        mount.flush(timeout_s=30)
        syncing.join(30)
        assert outcome == [None], f"fsync after the 403s ended: {outcome}"
        assert objects_under(s3_client, bucket, "denied/") == {"f.bin": second}
    finally:
        os.close(fd)
    assert fault_proxy.stats.faults["403"] >= 2
    assert mount.alive(), mount.log_tail()
