"""End-to-end checksums on the real server, through the fault proxy: a single PUT carries a CRC32
the server keeps; a whole-object GET is checked against it, so bytes corrupted on the way are a
`ChecksumMismatch` (retried), never returned. Also the proxy's slow-loris upload and a 403 rule
switched on and off, as the store sees them."""

from __future__ import annotations

import os
import time

import pytest

from razorfs.store.errors import AccessDenied, ChecksumMismatch, ObjectNotFound, StoreUnavailable
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store, crc32_checksum
from tests.integration.store.conftest import make_store
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3

NO_RETRY = RetryPolicy(max_attempts=1)
KiB = 1024


@pytest.fixture
def proxied_once(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> S3Store:
    """A store through the proxy that does not retry, so each fault surfaces as a typed error."""
    return make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, retry=NO_RETRY)


@pytest.fixture
def proxied(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> S3Store:
    """A store through the proxy with the usual (fast) retries."""
    return make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url)


def test_a_single_put_stores_the_crc32_of_its_body(s3_store: S3Store, s3_client: object, bucket: str) -> None:
    data = os.urandom(300 * KiB)
    s3_store.put_bytes("k", data, {"mode": "33188"})
    head = s3_client.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")  # type: ignore[attr-defined]
    assert head.get("ChecksumCRC32") == crc32_checksum(data)
    assert s3_store.get_object("k") == data


def test_a_corrupted_whole_object_get_is_a_checksum_mismatch(proxied_once: S3Store, fault_proxy: FaultProxy) -> None:
    data = os.urandom(200 * KiB)
    proxied_once.put_bytes("k", data, {})
    fault_proxy.add_rule(Fault.CORRUPT, method="GET")
    with pytest.raises(ChecksumMismatch, match="get s3://"):
        proxied_once.get_object("k")
    assert fault_proxy.stats.faults["corrupt"] == 1
    assert proxied_once.get_object("k") == data


def test_a_corrupted_get_is_fetched_again_and_the_right_bytes_returned(
    proxied: S3Store, fault_proxy: FaultProxy
) -> None:
    data = os.urandom(200 * KiB)
    proxied.put_bytes("k", data, {})
    fault_proxy.add_rule(Fault.CORRUPT, times=3, method="GET")
    assert proxied.get_object("k") == data
    assert fault_proxy.stats.faults["corrupt"] == 3
    assert proxied.counters.snapshot().retries >= 3


def test_corruption_that_persists_ends_in_checksum_mismatch_not_bytes(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy
) -> None:
    store = make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, retry=RetryPolicy(3, 0.01, 0.05))
    store.put_bytes("k", b"x" * 5000, {})
    fault_proxy.add_rule(Fault.CORRUPT, times=None, method="GET")
    with pytest.raises(ChecksumMismatch):
        store.get_object("k")
    assert fault_proxy.stats.faults["corrupt"] == 3


def test_a_slow_loris_upload_ends_in_request_timeout_and_is_retried(
    proxied_once: S3Store, proxied: S3Store, s3_store: S3Store, fault_proxy: FaultProxy
) -> None:
    data = os.urandom(300 * KiB)
    fault_proxy.add_rule(Fault.SLOW_LORIS, method="PUT", delay_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        proxied_once.put_bytes("k", data, {})
    assert time.monotonic() - started < 5
    with pytest.raises(ObjectNotFound):  # nothing landed
        s3_store.head("k")
    fault_proxy.add_rule(Fault.SLOW_LORIS, times=2, method="PUT", delay_s=0.5)
    proxied.put_bytes("k", data, {})
    assert fault_proxy.stats.faults["slow-loris"] == 3
    assert s3_store.get_object("k") == data


def test_a_slow_loris_rule_lets_a_body_through_that_arrives_in_time(
    proxied_once: S3Store, s3_store: S3Store, fault_proxy: FaultProxy
) -> None:
    fault_proxy.add_rule(Fault.SLOW_LORIS, method="PUT", delay_s=5.0)
    started = time.monotonic()
    proxied_once.put_bytes("k", b"a trickle is enough for this", {})
    assert time.monotonic() - started < 4
    assert s3_store.get_object("k") == b"a trickle is enough for this"


def test_a_403_rule_switched_on_denies_until_switched_off(proxied_once: S3Store, fault_proxy: FaultProxy) -> None:
    proxied_once.put_bytes("k", b"v", {})
    rule = fault_proxy.add_rule(Fault.DENIED_403, times=None)
    for _ in range(3):
        with pytest.raises(AccessDenied):
            proxied_once.get_object("k")
    fault_proxy.remove_rule(rule)
    assert proxied_once.get_object("k") == b"v"
    assert fault_proxy.stats.faults["403"] == 3
