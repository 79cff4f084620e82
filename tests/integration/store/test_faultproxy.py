"""The fault proxy forwards S3 traffic exactly (SigV4 verifies through it) and injects each fault
kind as the client sees it from a real misbehaving server."""

from __future__ import annotations

import os
import time

import pytest

from razorfs.store.errors import StoreUnavailable, Throttled
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from tests.integration.store.conftest import make_store
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3

NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture
def direct_store(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> S3Store:
    """The same bucket reached without the proxy, to check what really landed."""
    return make_store(s3_server, bucket)


@pytest.fixture
def proxied_once(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> S3Store:
    """A store through the proxy that does not retry, so each fault surfaces as a typed error."""
    return make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url, retry=NO_RETRY)


def test_signed_requests_pass_through_the_proxy_byte_exact(
    proxied_once: S3Store, direct_store: S3Store, fault_proxy: FaultProxy
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    proxied_once.put_bytes("dir/obj", data, {"mode": "33188"})
    assert direct_store.get_range("dir/obj", 0, len(data)) == data
    assert proxied_once.get_range("dir/obj", 0, len(data)) == data
    assert proxied_once.head("dir/obj").metadata == {"mode": "33188"}
    listed = [o.key for page in proxied_once.list_pages("dir/") for o in page.objects]
    assert listed == ["dir/obj"]
    assert fault_proxy.stats.requests == 4
    assert fault_proxy.stats.by_method == {"PUT": 1, "GET": 2, "HEAD": 1}  # put, get, list; head
    assert fault_proxy.faults_injected() == 0


def test_injected_503_is_seen_as_throttling_and_500_as_unavailable(
    proxied_once: S3Store, fault_proxy: FaultProxy
) -> None:
    proxied_once.put_bytes("k", b"v", {})
    fault_proxy.add_rule(Fault.SLOWDOWN_503, method="GET")
    with pytest.raises(Throttled, match="SlowDown"):
        proxied_once.get_range("k", 0, 1)
    fault_proxy.add_rule(Fault.ERROR_500, method="PUT")
    with pytest.raises(StoreUnavailable, match="InternalError"):
        proxied_once.put_bytes("k2", b"v", {})
    assert proxied_once.get_range("k", 0, 1) == b"v"  # rules were used up


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.TRUNCATE])
def test_body_cut_short_is_a_store_unavailable_error(
    proxied_once: S3Store, fault_proxy: FaultProxy, fault: Fault
) -> None:
    proxied_once.put_bytes("k", os.urandom(100_000), {})
    fault_proxy.add_rule(fault, method="GET", path_contains="/k")
    with pytest.raises(StoreUnavailable):
        proxied_once.get_range("k", 0, 100_000)


def test_latency_delays_the_response(proxied_once: S3Store, fault_proxy: FaultProxy) -> None:
    proxied_once.put_bytes("k", b"v", {})
    fault_proxy.add_rule(Fault.LATENCY, method="HEAD", delay_s=0.5)
    started = time.monotonic()
    proxied_once.head("k")
    assert time.monotonic() - started >= 0.5


def test_partition_resets_everything_until_it_ends(proxied_once: S3Store, fault_proxy: FaultProxy) -> None:
    proxied_once.put_bytes("k", b"v", {})
    fault_proxy.partition(1.0)
    with pytest.raises(StoreUnavailable):
        proxied_once.head("k")
    time.sleep(1.1)
    assert proxied_once.head("k").size == 1


def test_chaos_mode_is_repeatable_with_a_seed(s3_server: S3Server) -> None:
    decisions = []
    for _ in range(2):
        proxy = FaultProxy(s3_server.endpoint_url)
        proxy.set_chaos(0.5, seed=42)
        decisions.append([proxy._choose_fault("GET", "/b/k") for _ in range(50)])
    kinds = [[r.fault if r else None for r in run] for run in decisions]
    assert kinds[0] == kinds[1]
    assert 10 < sum(k is not None for k in kinds[0]) < 40
