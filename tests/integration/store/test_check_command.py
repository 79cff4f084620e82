"""`razorfs check` run as a user runs it: a subprocess with credentials in the environment, exit
codes and one diagnosis per failure, never a traceback or the secret."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from razorfs.store.s3 import S3Store
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.processes import free_port
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3

RAZORFS = str(Path(sys.executable).with_name("razorfs"))


def run_check(server: S3Server, *argv: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env.pop("AWS_ENDPOINT_URL", None)  # the command must use --endpoint-url, not the env
    if secret is not None:
        env["AWS_SECRET_ACCESS_KEY"] = secret
    return subprocess.run([RAZORFS, "check", *argv], env=env, capture_output=True, text=True, timeout=60, check=False)


def assert_clean_output(proc: subprocess.CompletedProcess[str], server: S3Server) -> None:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text
    assert server.secret_key not in text
    assert "wrong-secret-value" not in text


def test_check_passes_every_step_and_leaves_nothing_behind(s3_server: S3Server, bucket: str, s3_store: S3Store) -> None:
    proc = run_check(s3_server, f"s3://{bucket}/vol1", "--endpoint-url", s3_server.endpoint_url, "--force-path-style")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_clean_output(proc, s3_server)
    for step in ("list bucket", "put object", "head with metadata", "ranged get", "server-side copy", "delete"):
        assert f"✓ {step}" in proc.stdout
    assert "✗" not in proc.stdout
    assert [o.key for page in s3_store.list_pages("", delimiter=None) for o in page.objects] == []


def test_check_diagnoses_a_wrong_secret_without_printing_it(s3_server: S3Server, bucket: str) -> None:
    if s3_server.kind == "moto":
        pytest.skip("moto's standalone server accepts any credentials unless IAM auth is set up")
    proc = run_check(s3_server, f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, secret="wrong-secret-value")
    assert proc.returncode == 1
    assert "✗ list bucket" in proc.stdout
    assert "credentials were rejected" in proc.stdout
    assert_clean_output(proc, s3_server)


def test_check_diagnoses_a_missing_bucket(s3_server: S3Server) -> None:
    proc = run_check(s3_server, "s3://no-such-bucket-razorfs/x", "--endpoint-url", s3_server.endpoint_url)
    assert proc.returncode == 1
    assert "bucket 'no-such-bucket-razorfs' does not exist" in proc.stdout
    assert_clean_output(proc, s3_server)


def test_check_diagnoses_an_unreachable_endpoint_within_seconds(s3_server: S3Server, bucket: str) -> None:
    started = time.monotonic()
    proc = run_check(s3_server, f"s3://{bucket}", "--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    assert "is unreachable" in proc.stdout
    assert time.monotonic() - started < 20
    assert_clean_output(proc, s3_server)


def test_check_diagnoses_access_denied_on_write(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy, s3_store: S3Store
) -> None:
    fault_proxy.add_rule(Fault.DENIED_403, times=None, method="PUT")
    proc = run_check(s3_server, f"s3://{bucket}/ro", "--endpoint-url", fault_proxy.endpoint_url)
    assert proc.returncode == 1
    assert "✓ list bucket" in proc.stdout
    assert "✗ put object" in proc.stdout
    assert "not allowed" in proc.stdout
    assert_clean_output(proc, s3_server)


@pytest.mark.parametrize("url", ["my-bucket/vol", "http://bucket/x", "s3://", "s3://b/a/../c"])
def test_check_rejects_a_bad_url_in_one_line(s3_server: S3Server, url: str) -> None:
    proc = run_check(s3_server, url, "--endpoint-url", s3_server.endpoint_url)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("razorfs check: ")
