"""The filesystem under S3 faults (the fault proxy between the mount and SeaweedFS): with 10% of
requests failing (500, 503 SlowDown, resets, truncated bodies) a workload of 100 files loses and
corrupts nothing; during a partition, writes keep landing in the cache (close() returns) and are
uploaded once it ends; cold reads under the same faults return the right bytes. The bucket is
judged directly on the real server, never through the proxy. fsync() during an outage returns EIO
after the mount's --fsync-timeout, and the data it could not upload is uploaded once S3 is back."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.fusemount import is_mounted
from tests.reliability import soak
from tests.reliability.conftest import MountFactory
from tests.reliability.s3_contents import objects_under
from tests.reliability.workload import KiB, MiB, content_for, mixed_files, write_file

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def run_workload_under_faults(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str, file_count: int, seed: int
) -> None:
    prefix = f"faults-{seed}"
    mount = mount_factory(prefix=prefix, endpoint_url=fault_proxy.endpoint_url)
    root = mount.mountpoint
    fault_proxy.set_chaos(0.10, seed=seed)
    expected: dict[str, bytes] = {}
    specs = mixed_files(seed, file_count)
    for d in sorted({spec.path.split("/")[0] for spec in specs}):
        (root / d).mkdir()
    for index, spec in enumerate(specs):
        data = content_for(seed, spec.path, spec.size)
        write_file(root / spec.path, data, fsync=index % 7 == 0)
        expected[spec.path] = data
    for spec in specs[::5]:  # rename every fifth file (some uploaded already, some still dirty)
        new_path = spec.path.replace("file-", "renamed-")
        os.rename(root / spec.path, root / new_path)
        expected[new_path] = expected.pop(spec.path)
    for path, data in expected.items():
        assert (root / path).read_bytes() == data, f"{path} read back through the mount differs"
    mount.flush(timeout_s=600)
    in_s3 = objects_under(s3_client, bucket, f"{prefix}/")
    lost = sorted(set(expected) - set(in_s3))
    corrupt = sorted(p for p in expected if p in in_s3 and in_s3[p] != expected[p])
    extra = sorted(set(in_s3) - set(expected))
    assert (lost, corrupt, extra) == ([], [], []), f"lost {lost[:5]}, corrupt {corrupt[:5]}, unexpected {extra[:5]}"
    soak.report(operations=len(specs) + len(specs[::5]), bytes_in_s3=sum(len(d) for d in expected.values()))
    assert fault_proxy.faults_injected() >= 10, f"only {fault_proxy.faults_injected()} faults: the test proved little"
    assert mount.alive(), mount.log_tail()
    mount.cleanup()

    # Cold reads through a fresh cache, still under faults: truncated or reset responses must be
    # retried, never handed to a reader as file content.
    reader = mount_factory(prefix=prefix, endpoint_url=fault_proxy.endpoint_url)
    wrong = [p for p, data in expected.items() if (reader.mountpoint / p).read_bytes() != data]
    assert wrong == [], f"cold reads under faults returned wrong bytes for {wrong[:5]}"
    assert reader.alive(), reader.log_tail()
    fault_proxy.clear()
    reader.cleanup()


def run_writes_during_partition(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str, partition_s: float
) -> None:
    mount = mount_factory(endpoint_url=fault_proxy.endpoint_url)
    workdir = mount.mountpoint / "during"
    workdir.mkdir()
    write_file(workdir / "before.txt", b"written before the partition\n")
    mount.flush()
    os.listdir(workdir)
    expected = {"during/before.txt": b"written before the partition\n"}

    fault_proxy.partition(partition_s)
    started = time.monotonic()
    index = 0
    took: dict[str, float] = {}
    while time.monotonic() - started < partition_s * 0.5 or index < 5:
        path = f"during/p-{index:03d}.bin"
        data = content_for(1, path, (index % 8 + 1) * 128 * KiB)
        one_started = time.monotonic()
        write_file(mount.mountpoint / path, data)
        took[path] = time.monotonic() - one_started
        expected[path] = data
        index += 1
    writing_took = time.monotonic() - started
    assert writing_took < partition_s, (
        f"writes took {writing_took:.1f}s: they waited for S3 instead of the cache; "
        f"slowest open-write-close: {max(took.items(), key=lambda kv: kv[1])}"
    )
    keys_during = set(objects_under(s3_client, bucket, "vol/during/"))
    assert keys_during == {"before.txt"}, "the partition did not cut the mount off from S3"
    assert (mount.mountpoint / "during" / "p-000.bin").read_bytes() == expected["during/p-000.bin"]

    time.sleep(max(0.0, partition_s - (time.monotonic() - started)) + 0.5)
    mount.flush(timeout_s=300)
    in_s3 = {f"during/{k}": v for k, v in objects_under(s3_client, bucket, "vol/during/").items()}
    assert sorted(in_s3) == sorted(expected)
    assert all(in_s3[p] == expected[p] for p in expected), "an object uploaded after the partition is corrupt"
    assert fault_proxy.stats.faults["refuse"] > 0
    assert mount.alive(), mount.log_tail()


@pytest.mark.timeout(280)
def test_workload_under_ten_percent_faults_loses_and_corrupts_nothing(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    run_workload_under_faults(mount_factory, fault_proxy, s3_client, bucket, 100, soak.BASE_SEED)


@pytest.mark.timeout(120)
def test_writes_continue_into_the_cache_during_a_partition_and_upload_after_it(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    run_writes_during_partition(mount_factory, fault_proxy, s3_client, bucket, 8.0)


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_long_workloads_under_ten_percent_faults_lose_and_corrupt_nothing(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    budget = soak.Budget()
    rounds = 0
    while budget.keep_going(rounds, soak.pick(1, 5)):
        run_workload_under_faults(
            mount_factory, fault_proxy, s3_client, bucket, soak.pick(100, 400), soak.BASE_SEED + rounds
        )
        rounds += 1
    budget.report_time()


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_writes_continue_into_the_cache_during_a_thirty_second_partition(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    run_writes_during_partition(mount_factory, fault_proxy, s3_client, bucket, soak.pick_float(8.0, 30.0))


@pytest.mark.timeout(150)
def test_sigterm_while_s3_refuses_uploads_waits_and_uploads_before_exiting(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(endpoint_url=fault_proxy.endpoint_url)
    fault_proxy.add_rule(Fault.SLOWDOWN_503, times=None, method="PUT")  # every upload (and part) refused
    fault_proxy.add_rule(Fault.SLOWDOWN_503, times=None, method="POST")  # multipart create/complete too
    expected = {f"t-{i}.bin": content_for(2, f"t-{i}", (i + 1) * 200 * KiB) for i in range(5)}
    for name, data in expected.items():
        write_file(mount.mountpoint / name, data)
    pid = mount.pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # the node is draining: flush, retrying while S3 says no
    time.sleep(4.0)
    assert mount.alive(), f"the daemon exited with its data only on the node\n{mount.log_tail()}"
    assert objects_under(s3_client, bucket, "vol/") == {}
    fault_proxy.clear()
    deadline = time.monotonic() + 90
    while mount.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mount.alive(), f"the daemon did not exit once S3 took uploads again\n{mount.log_tail()}"
    assert not is_mounted(mount.mountpoint)
    assert objects_under(s3_client, bucket, "vol/") == expected


@pytest.mark.timeout(150)
def test_fsync_during_an_outage_fails_with_eio_after_the_fsync_timeout_and_the_data_is_uploaded_later(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    # A long metadata TTL: opening the file during the outage needs no revalidation from S3.
    bounded = ["--fsync-timeout", "2s"]
    mount = mount_factory(endpoint_url=fault_proxy.endpoint_url, metadata_ttl="1h", extra_args=bounded)
    path = mount.mountpoint / "synced.bin"
    write_file(path, b"uploaded before the outage\n")
    mount.flush()
    data = content_for(3, "synced.bin", 300 * KiB)
    fault_proxy.partition(3600)  # every request to S3 reset until healed
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
        with pytest.raises(OSError) as failed:
            os.fsync(fd)  # bounded: the uploads keep failing
        assert failed.value.errno == errno.EIO, failed.value
    finally:
        os.close(fd)  # close() still acknowledges the data: it is on the local disk and journaled
    assert path.read_bytes() == data
    assert objects_under(s3_client, bucket, "vol/") == {"synced.bin": b"uploaded before the outage\n"}
    assert fault_proxy.stats.faults["refuse"] > 0
    fault_proxy.heal()
    mount.flush(timeout_s=120)
    assert objects_under(s3_client, bucket, "vol/") == {"synced.bin": data}, "the dirty data was not uploaded later"
    assert mount.alive(), mount.log_tail()


def write_and_expect(root: Path, names_sizes: dict[str, int], seed: int) -> dict[str, bytes]:
    expected = {}
    for name, size in names_sizes.items():
        data = content_for(seed, name, size)
        write_file(root / name, data)
        expected[name] = data
    return expected


@pytest.mark.timeout(240)
def test_bodies_stalling_halfway_lose_and_corrupt_nothing(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(prefix="stall", endpoint_url=fault_proxy.endpoint_url)
    # Uploads (a single PUT and the parts of a multipart upload) pause halfway through their body.
    fault_proxy.add_rule(Fault.STALL, times=4, method="PUT", delay_s=2.0)
    expected = write_and_expect(mount.mountpoint, {"small.bin": 300 * KiB, "large.bin": 20 * MiB}, 11)
    mount.flush(timeout_s=180)
    assert fault_proxy.stats.faults["stall"] == 4
    assert objects_under(s3_client, bucket, "stall/") == expected
    mount.cleanup()
    # Downloads pause halfway through too; a fresh cache reads everything from S3.
    fault_proxy.add_rule(Fault.STALL, times=4, method="GET", path_contains="/stall/", delay_s=2.0)
    reader = mount_factory(prefix="stall", endpoint_url=fault_proxy.endpoint_url)
    wrong = [name for name, data in expected.items() if (reader.mountpoint / name).read_bytes() != data]
    assert wrong == [], f"stalled downloads returned wrong bytes for {wrong}"
    assert fault_proxy.stats.faults["stall"] == 8
    assert reader.alive(), reader.log_tail()


@pytest.mark.timeout(240)
def test_200_replies_carrying_an_error_are_retried_not_taken_for_success(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(prefix="e200", endpoint_url=fault_proxy.endpoint_url)
    # S3 may answer CompleteMultipartUpload and CopyObject (a rename) 200 OK with an error body.
    fault_proxy.add_rule(Fault.ERROR_200, times=2, method="POST", path_contains="uploadId=")
    expected = write_and_expect(mount.mountpoint, {"large.bin": 20 * MiB, "moved.bin": 100 * KiB}, 12)
    mount.flush(timeout_s=180)
    fault_proxy.add_rule(Fault.ERROR_200, times=2, method="PUT", header="x-amz-copy-source")
    os.rename(mount.mountpoint / "moved.bin", mount.mountpoint / "renamed.bin")
    expected["renamed.bin"] = expected.pop("moved.bin")
    mount.flush(timeout_s=180)
    assert fault_proxy.stats.faults["200-error"] == 4
    assert objects_under(s3_client, bucket, "e200/") == expected
    assert (mount.mountpoint / "renamed.bin").read_bytes() == expected["renamed.bin"]
    assert mount.alive(), mount.log_tail()


@pytest.mark.timeout(240)
def test_access_denied_in_the_middle_of_a_run_loses_nothing(
    mount_factory: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    mount = mount_factory(prefix="denied", endpoint_url=fault_proxy.endpoint_url)
    expected = write_and_expect(mount.mountpoint, {f"before-{i}.bin": (i + 1) * 50 * KiB for i in range(5)}, 13)
    mount.flush()
    # A bucket policy says no for a while (uploads refused), then the run goes on.
    fault_proxy.add_rule(Fault.DENIED_403, times=6, method="PUT")
    expected |= write_and_expect(mount.mountpoint, {f"during-{i}.bin": (i + 1) * 70 * KiB for i in range(5)}, 13)
    expected |= write_and_expect(mount.mountpoint, {"during-large.bin": 18 * MiB}, 13)
    mount.flush(timeout_s=180)
    assert fault_proxy.stats.faults["403"] == 6
    assert objects_under(s3_client, bucket, "denied/") == expected
    wrong = [name for name, data in expected.items() if (mount.mountpoint / name).read_bytes() != data]
    assert wrong == []
    assert mount.alive(), mount.log_tail()
