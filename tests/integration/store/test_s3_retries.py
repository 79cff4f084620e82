"""The S3 store rides out throttling, 5xx, resets and truncated bodies (through the fault proxy in
front of the real server) and gives up with a typed error once its retry budget is spent."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import StoreUnavailable, Throttled
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import MiB
from tests.integration.store.conftest import make_store
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def direct(s3_server: S3Server, bucket: str) -> S3Store:
    return make_store(s3_server, bucket)


@pytest.fixture
def proxied(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> S3Store:
    return make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, read_timeout_s=10)


def test_every_operation_succeeds_with_correct_bytes_under_30_percent_faults(
    proxied: S3Store, direct: S3Store, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.set_chaos(0.3, seed=1234)
    small = os.urandom(300_000)
    big = os.urandom(16 * MiB + 123)
    big_path = tmp_path / "big"
    big_path.write_bytes(big)
    patch_path = tmp_path / "patch"
    patch_path.write_bytes(b"P" * 4096)

    proxied.put_bytes("d/small", small, {"mode": "33188"})
    proxied.put_file("d/big", big_path, {"mode": "33188"})
    assert proxied.head("d/small").metadata == {"mode": "33188"}
    assert proxied.get_range("d/small", 1000, 5000) == small[1000:6000]
    assert proxied.get_range("d/big", 0, len(big)) == big
    proxied.copy("d/small", "d/copy")
    proxied.compose(
        "d/big",
        [CopyRange("d/big", 0, 6 * MiB), FileRange(patch_path, 0, 4096), CopyRange("d/big", 6 * MiB, 10 * MiB)],
        {"mode": "33261"},
    )
    for i in range(20):
        proxied.put_bytes(f"d/many/{i:02d}", b"x", {})
    listed = [o.key for page in proxied.list_pages("d/", delimiter="/") for o in page.objects]
    assert listed == ["d/big", "d/copy", "d/small"]
    proxied.delete_many([f"d/many/{i:02d}" for i in range(20)])
    proxied.delete("d/copy")

    fault_proxy.clear()
    assert direct.get_range("d/small", 0, len(small)) == small
    composed = big[: 6 * MiB] + b"P" * 4096 + big[6 * MiB : 16 * MiB]
    assert direct.get_range("d/big", 0, len(composed) + 10) == composed
    assert direct.head("d/big").metadata == {"mode": "33261"}
    # Flat listing: SeaweedFS keeps showing an emptied "directory" as a common prefix for a while.
    assert [o.key for p in direct.list_pages("d/", delimiter=None) for o in p.objects] == ["d/big", "d/small"]
    # The faults really happened and were retried, not avoided.
    assert fault_proxy.faults_injected() >= 10
    assert proxied.counters.snapshot().retries >= 10


def test_partition_longer_than_the_retry_budget_gives_store_unavailable(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy
) -> None:
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=0.2)
    store = make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, retry=policy)
    store.put_bytes("k", b"v", {})
    fault_proxy.partition(30)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        store.get_range("k", 0, 1)
    assert time.monotonic() - started < policy.worst_case_wait_s() + 5
    assert "s3://" in str(err.value) and "/k" in str(err.value)
    assert fault_proxy.faults_injected() == 4
    fault_proxy.heal()
    assert store.get_range("k", 0, 1) == b"v"


def test_partition_shorter_than_the_retry_budget_is_ridden_out(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy
) -> None:
    policy = RetryPolicy(max_attempts=12, base_delay_s=0.1, max_delay_s=1.0)
    store = make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, retry=policy)
    fault_proxy.partition(1.5)
    store.put_bytes("k", b"after the partition", {})
    assert store.get_range("k", 0, 100) == b"after the partition"


def test_endless_slowdown_ends_in_throttled_after_bounded_attempts(proxied: S3Store, fault_proxy: FaultProxy) -> None:
    fault_proxy.add_rule(Fault.SLOWDOWN_503, times=None, method="HEAD")
    with pytest.raises(Throttled):
        proxied.head("anything")
    assert fault_proxy.faults_injected() == proxied.settings.retry.max_attempts
    snapshot = proxied.counters.snapshot()
    assert snapshot.errors == snapshot.requests == proxied.settings.retry.max_attempts
    assert "Throttled" in snapshot.last_error


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.TRUNCATE, Fault.ERROR_500])
def test_lost_reply_to_complete_multipart_still_ends_with_the_whole_object(
    proxied: S3Store, direct: S3Store, fault_proxy: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    data = os.urandom(11 * MiB)
    path = tmp_path / "f"
    path.write_bytes(data)
    # CompleteMultipartUpload is the only POST whose target carries an uploadId.
    fault_proxy.add_rule(fault, method="POST", path_contains="uploadId=")
    info = proxied.put_file("obj", path, {"mode": "33188"})
    assert fault_proxy.faults_injected() == 1
    assert info.size == len(data)
    assert direct.get_range("obj", 0, len(data) + 1) == data
    assert direct.head("obj").metadata == {"mode": "33188"}


def test_logs_of_a_faulty_run_never_contain_the_secret(
    proxied: S3Store, fault_proxy: FaultProxy, s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    fault_proxy.set_chaos(0.5, seed=99)
    with caplog.at_level(logging.DEBUG):
        for i in range(10):
            proxied.put_bytes(f"k{i}", b"v", {})
            proxied.head(f"k{i}")
    assert "retrying in" in caplog.text  # the retries were logged...
    assert s3_server.secret_key not in caplog.text  # ...without the secret, even at DEBUG


def test_failed_multipart_upload_is_aborted_and_the_old_object_kept(
    proxied: S3Store, direct: S3Store, fault_proxy: FaultProxy, tmp_path: Path, s3_client: Any
) -> None:
    direct.put_bytes("obj", b"old content", {})
    path = tmp_path / "f"
    path.write_bytes(os.urandom(12 * MiB))
    fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT", path_contains="partNumber=")
    with pytest.raises(StoreUnavailable, match="upload-part"):
        proxied.put_file("obj", path, {})
    assert fault_proxy.stats.by_method["DELETE"] == 1  # the abort
    fault_proxy.clear()
    assert direct.get_range("obj", 0, 100) == b"old content"  # never a half-written object
    assert s3_client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads", []) == []


def test_a_reply_slower_than_the_read_timeout_is_retried(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy
) -> None:
    store = make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, read_timeout_s=0.5)
    store.put_bytes("k", b"value", {})
    fault_proxy.add_rule(Fault.LATENCY, method="GET", delay_s=2.0)
    assert store.get_range("k", 0, 5) == b"value"
    snapshot = store.counters.snapshot()
    assert snapshot.retries == 1
    assert "ReadTimeout" in snapshot.last_error
