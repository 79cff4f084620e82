"""Credentials never reach logs, stderr or exception text. Errors are provoked with a secret in
play (wrong secrets, a bucket policy saying no); the session-wide scan (secret_scan.py) is itself
tested by running a pytest session that prints the secret and must fail."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.s3server import TEST_SECRET_KEY, S3Server
from tests.reliability.cli_run import run_razorfs
from tests.reliability.secret_scan import TEST_SESSION_TOKEN, find_leaks, loose_modes

pytestmark = [pytest.mark.s3, pytest.mark.fuse]
REPO = Path(__file__).resolve().parents[2]


def wrong_secret() -> str:
    return f"wrong-secret-{uuid.uuid4().hex}"


def env_with_secret(s3_server: S3Server, secret: str) -> dict[str, str]:
    return {**os.environ, **s3_server.env(), "AWS_SECRET_ACCESS_KEY": secret}


def daemon_logs(cache_dir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in cache_dir.glob("*.log")) if cache_dir.exists() else ""


def test_check_with_a_wrong_secret_fails_without_printing_it(s3_server: S3Server, bucket: str) -> None:
    secret = wrong_secret()
    result = run_razorfs(
        ["check", f"s3://{bucket}/v", "--endpoint-url", s3_server.endpoint_url, "--force-path-style"],
        env_with_secret(s3_server, secret),
    )
    assert result.returncode != 0
    assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_mount_with_a_wrong_secret_fails_without_printing_or_logging_it(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    secret = wrong_secret()
    (tmp_path / "mnt").mkdir()
    args = [
        "mount",
        f"s3://{bucket}/v",
        str(tmp_path / "mnt"),
        "--endpoint-url",
        s3_server.endpoint_url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--force-path-style",
        "--region",
        "us-east-1",
    ]
    result = run_razorfs(args, env_with_secret(s3_server, secret))
    result.assert_one_line_failure()
    assert secret not in result.stdout + result.stderr
    assert secret not in daemon_logs(tmp_path / "cache")


def test_access_denied_with_the_real_secret_keeps_it_out_of_stderr_and_logs(
    s3_server: S3Server, bucket: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    fault_proxy.add_rule(Fault.DENIED_403, times=None)  # every request: a bucket policy saying no
    (tmp_path / "mnt").mkdir()
    env = {**os.environ, **s3_server.env(), "RAZORFS_LOG_LEVEL": "DEBUG"}
    args = [
        "mount",
        f"s3://{bucket}/v",
        str(tmp_path / "mnt"),
        "--endpoint-url",
        fault_proxy.endpoint_url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--force-path-style",
        "--region",
        "us-east-1",
    ]
    mounted = run_razorfs(args, env)
    checked = run_razorfs(
        ["check", f"s3://{bucket}/v", "--endpoint-url", fault_proxy.endpoint_url, "--force-path-style"], env
    )
    assert mounted.returncode != 0 and checked.returncode != 0
    for text in (mounted.stdout, mounted.stderr, checked.stdout, checked.stderr, daemon_logs(tmp_path / "cache")):
        assert TEST_SECRET_KEY not in text
    assert fault_proxy.faults_injected() > 0


def test_leak_scan_finds_a_canary_in_a_log_but_not_in_the_exempt_credential_stores(tmp_path: Path) -> None:
    canary = f"canary-{uuid.uuid4().hex}".encode()
    (tmp_path / "daemon").mkdir()
    (tmp_path / "daemon" / "daemon.log").write_bytes(b"x" * (5 * 1024 * 1024 - 10) + canary + b"\n")
    (tmp_path / "s3.json").write_bytes(canary)
    (tmp_path / "etcd" / "member").mkdir(parents=True)
    (tmp_path / "etcd" / "member" / "db").write_bytes(canary)
    (tmp_path / "clean.log").write_text("nothing here")
    assert find_leaks(tmp_path, canary) == [tmp_path / "daemon" / "daemon.log"]


def test_leak_scan_finds_base64_forms_and_the_session_token_at_any_alignment(tmp_path: Path) -> None:
    canary = f"canary-{uuid.uuid4().hex}".encode()
    for prefix in (b"", b"a", b"ab"):
        name = f"secret-data-{len(prefix)}.yaml"
        (tmp_path / name).write_bytes(b"data:\n  key: " + base64.b64encode(prefix + canary + b"\n") + b"\n")
    (tmp_path / "urlsafe.log").write_bytes(base64.urlsafe_b64encode(b"xy" + canary))
    (tmp_path / "clean.log").write_bytes(base64.b64encode(b"nothing secret"))
    assert sorted(p.name for p in find_leaks(tmp_path, canary)) == [
        "secret-data-0.yaml",
        "secret-data-1.yaml",
        "secret-data-2.yaml",
        "urlsafe.log",
    ]
    token_log = tmp_path / "token.log"
    token_log.write_text(f"x-amz-security-token: {TEST_SESSION_TOKEN}")
    try:
        assert [p.name for p in find_leaks(tmp_path, TEST_SESSION_TOKEN.encode())] == ["token.log"]
    finally:
        token_log.unlink()  # the session's own scan looks for the registered token too


def test_loose_modes_finds_group_and_other_bits(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    (root / "private").write_text("x")
    os.chmod(root / "private", 0o600)
    (root / "readable").write_text("x")
    os.chmod(root / "readable", 0o644)
    assert loose_modes(root) == [(root / "readable", "0o644")]


def test_a_session_whose_test_prints_the_secret_fails(tmp_path: Path) -> None:
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(
        "from tests.realparts.s3server import TEST_SECRET_KEY\n\n"
        "def test_prints_it():\n    print('creds:', TEST_SECRET_KEY)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.reliability.secret_scan",
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,
            "--rootdir",
            str(tmp_path),
            "--basetemp",
            str(tmp_path / "bt"),
            str(leaky),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output.replace(TEST_SECRET_KEY, "<secret>")
    assert "SECRET LEAK" in output and "test_prints_it" in output
