"""HTTPS endpoints with a private CA: trusted through `ca_bundle` / `--ca-bundle`, and a clear,
unretried TLS failure without it. The fault proxy serves HTTPS with a fresh self-signed cert."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from razorfs.store.errors import StoreUnavailable
from tests.integration.store.conftest import make_store
from tests.realparts.faultproxy import FaultProxy, self_signed_tls
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def tls_proxy(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    context, cert = self_signed_tls(tmp_path)
    proxy = FaultProxy(s3_server.endpoint_url, tls=context).start()
    try:
        yield proxy, cert
    finally:
        proxy.stop()


def test_https_endpoint_works_with_its_ca_bundle(
    s3_server: S3Server, bucket: str, tls_proxy: tuple[FaultProxy, Path]
) -> None:
    proxy, cert = tls_proxy
    assert proxy.endpoint_url.startswith("https://")
    store = make_store(s3_server, bucket, endpoint_url=proxy.endpoint_url, ca_bundle=cert)
    data = os.urandom(70_000)
    store.put_bytes("over-tls", data, {"mode": "33188"})
    assert store.get_range("over-tls", 0, len(data)) == data
    assert make_store(s3_server, bucket).head("over-tls").metadata == {"mode": "33188"}


def test_untrusted_certificate_fails_at_once_as_tls_failure(
    s3_server: S3Server, bucket: str, tls_proxy: tuple[FaultProxy, Path]
) -> None:
    proxy, _ = tls_proxy
    store = make_store(s3_server, bucket, endpoint_url=proxy.endpoint_url)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="TLS"):
        store.head("anything")
    assert time.monotonic() - started < 5  # not retried: a bad certificate does not heal
    assert store.counters.snapshot().retries == 0


def test_check_command_trusts_ca_bundle_and_diagnoses_without_it(
    s3_server: S3Server, bucket: str, tls_proxy: tuple[FaultProxy, Path]
) -> None:
    proxy, cert = tls_proxy
    env = {**os.environ, **s3_server.env()}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("AWS_CA_BUNDLE", None)
    razorfs = str(Path(sys.executable).with_name("razorfs"))
    argv = [razorfs, "check", f"s3://{bucket}/tls", "--endpoint-url", proxy.endpoint_url]
    ok = subprocess.run([*argv, "--ca-bundle", str(cert)], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "--ca-bundle FILE" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr
