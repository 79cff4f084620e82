"""The mount daemon's contract (docs/mount-daemon-contract.md): `razorfs mount` returns once the
mount is ready, `umount` and SIGTERM flush before unmounting, one daemon per cache dir, a
non-empty mountpoint is refused in one line, a dead mount left behind is cleared on restart."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory
from tests.realparts.faultproxy import Fault
from tests.realparts.fusemount import force_unmount, is_mounted
from tests.realparts.processes import free_port
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.fuse, pytest.mark.s3]


def _razorfs(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "razorfs.cli", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_mount_daemonizes_when_ready_and_umount_flushes_before_unmounting(
    s3_server: S3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    env = {**os.environ, **s3_server.env(), "RAZORFS_RUN_DIR": str(tmp_path / "run")}
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    metrics_port = free_port()
    mounted = _razorfs(
        env, "mount", f"s3://{bucket}/v", str(mnt), "--endpoint-url", s3_server.endpoint_url,
        "--force-path-style", "--region", s3_server.region, "--cache-dir", str(cache),
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    try:
        assert mounted.returncode == 0, mounted.stderr
        assert is_mounted(mnt)  # ready when the command returns
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            assert re.search(r"razorfs_cache_limit_bytes\{[^}]*\} 1\.073741824e\+10", resp.read().decode())
        (mnt / "file").write_bytes(b"payload")
        stats = _razorfs(env, "stats", str(mnt), "--json")
        assert stats.returncode == 0, stats.stderr
        parsed = json.loads(stats.stdout)
        assert parsed["mountpoint"] == str(mnt) and parsed["cache_limit_bytes"] == 10 * 1024**3
        umount = _razorfs(env, "umount", str(mnt))
        assert umount.returncode == 0, umount.stderr
        assert not is_mounted(mnt)
        assert s3_client.get_object(Bucket=bucket, Key="v/file")["Body"].read() == b"payload"
        gone = _razorfs(env, "stats", str(mnt))
        assert gone.returncode != 0 and "not a RazorFS mount" in gone.stderr
    finally:
        force_unmount(mnt)
        record_pid = _daemon_pid(cache)
        if record_pid:
            _kill_quietly(record_pid)


def _daemon_pid(cache: Path) -> int | None:
    try:
        return int((cache / "lock").read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_mount_refuses_a_non_empty_mountpoint_with_one_line(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    env = {**os.environ, **s3_server.env(), "RAZORFS_RUN_DIR": str(tmp_path / "run")}
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "something").write_text("here")
    result = _razorfs(
        env, "mount", f"s3://{bucket}", str(mnt), "--endpoint-url", s3_server.endpoint_url,
        "--force-path-style", "--cache-dir", str(tmp_path / "cache"), "--foreground",
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "not empty" in result.stderr


def test_second_daemon_on_the_same_cache_dir_is_refused(razorfs_mount: MountFactory, tmp_path: Path) -> None:
    vol = razorfs_mount()
    other = tmp_path / "other-mnt"
    other.mkdir()
    result = vol.cli(*[a if a != str(vol.mountpoint) else str(other) for a in vol.args], timeout=60)
    assert result.returncode != 0
    assert "in use by another razorfs mount" in result.stderr
    assert not is_mounted(other)


def test_sigterm_flushes_while_s3_fails_then_unmounts(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, fault_proxy: Any
) -> None:
    vol = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT")
    data = os.urandom(300_000)
    (vol.mountpoint / "pending").write_bytes(data)
    assert vol.proc is not None
    vol.proc.send_signal(signal.SIGTERM)
    time.sleep(2)
    assert vol.proc.poll() is None, "must not exit while the data is only on the node"
    assert is_mounted(vol.mountpoint)
    fault_proxy.clear()
    assert vol.proc.wait(timeout=60) == 0
    assert not is_mounted(vol.mountpoint)
    assert s3_client.get_object(Bucket=bucket, Key="vol/pending")["Body"].read() == data


def test_restart_after_kill_9_clears_the_dead_mount_and_serves_the_same_mountpoint(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    vol = razorfs_mount()
    (vol.mountpoint / "kept").write_bytes(b"acknowledged")
    assert vol.proc is not None
    os.killpg(vol.proc.pid, signal.SIGKILL)
    vol.proc.wait(timeout=30)
    with pytest.raises(OSError):
        os.stat(vol.mountpoint / "kept")  # ENOTCONN: the mount is dead but still there
    again = razorfs_mount(cache_dir=vol.cache_dir, mountpoint=vol.mountpoint)
    assert (again.mountpoint / "kept").read_bytes() == b"acknowledged"
    again.flush()
    assert s3_client.get_object(Bucket=bucket, Key="vol/kept")["Body"].read() == b"acknowledged"


def test_warm_reports_progress_and_later_reads_download_nothing(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    from razorfs.mount.control import request

    for name in ("dir/a", "dir/sub/b", "c"):
        s3_client.put_object(Bucket=bucket, Key=f"vol/{name}", Body=name.encode() * 100_000)
    vol = razorfs_mount()
    replies = list(request(vol.cache_dir / "control.sock", {"op": "warm", "paths": ["dir/", "c"]}, timeout_s=60))
    assert replies[-1] == {"ok": True}
    progress = [r["progress"] for r in replies[:-1]]
    assert progress[-1]["files_done"] == progress[-1]["files_total"] == 3
    total = sum(len(n) * 100_000 for n in ("dir/a", "dir/sub/b", "c"))
    assert progress[-1]["bytes_done"] == progress[-1]["bytes_total"] == total
    before = vol.stats()["bytes_downloaded"]
    assert (vol.mountpoint / "dir" / "sub" / "b").read_bytes() == b"dir/sub/b" * 100_000
    assert vol.stats()["bytes_downloaded"] == before


def test_the_daemon_never_touches_its_own_mount(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    """Every system call of the daemon naming its mountpoint, traced from its start until it has
    served for 3 s: none may come after the mount. A request from the daemon to its own mount (a
    stat of the mountpoint) waits for the daemon's own answer; if the daemon is killed after it
    read the request, that wait cannot be interrupted, the waiting thread keeps /dev/fuse open so
    the connection is never aborted, and the process never ends (the crash runs' kill -9 met it)."""
    if shutil.which("strace") is None:
        pytest.fail("strace not installed: run `make setup` (apt-installs strace)", pytrace=False)
    env = {**os.environ, **s3_server.env(), "RAZORFS_RUN_DIR": str(tmp_path / "run")}
    mnt, cache, trace = tmp_path / "mnt", tmp_path / "cache", tmp_path / "strace.txt"
    mnt.mkdir()
    argv = [sys.executable, "-m", "razorfs.mount", "mount", f"s3://{bucket}/v", str(mnt), "--foreground",
            "--endpoint-url", s3_server.endpoint_url, "--force-path-style", "--region", s3_server.region,
            "--cache-dir", str(cache)]  # fmt: skip
    traced = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=%file,%stat,%statfs,mount", "-o", str(trace)]
    proc = subprocess.Popen([*traced, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(mnt) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_mounted(mnt), f"the daemon did not mount: {trace.read_text()[-2000:]}"
        os.statvfs(mnt)  # served: INIT answered
        time.sleep(3)
    finally:
        pid = _daemon_pid(cache)
        if pid:
            _kill_quietly(pid)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        force_unmount(mnt)
    quoted = f'"{os.path.realpath(mnt)}'
    lines = trace.read_text().splitlines()
    mounted_at = next(i for i, line in enumerate(lines) if " mount(" in line and quoted + '"' in line)
    assert [line for line in lines[mounted_at + 1 :] if quoted in line] == []
