"""Real RazorFS mounts for the filesystem tests: the daemon runs as its own process (its own
process group) against the session's SeaweedFS; teardown shuts it down, kills the group if it
must, and force-unmounts whatever is left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.fusemount import force_unmount, is_mounted
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.fuse, pytest.mark.s3]


@dataclass
class MountedVolume:
    mountpoint: Path
    cache_dir: Path
    run_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        try:
            return (self.cache_dir / "daemon.test.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cli(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "razorfs.mount", *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stats(self) -> dict[str, Any]:
        result = self.cli("stats", str(self.mountpoint), "--json", timeout=30)
        assert result.returncode == 0, result.stderr
        stats: dict[str, Any] = json.loads(result.stdout)
        return stats

    def flush(self, timeout: float = 120) -> None:
        result = self.cli("flush", str(self.mountpoint), "--timeout", str(timeout), timeout=timeout + 30)
        assert result.returncode == 0, result.stderr + self.log[-2000:]

    def umount(self, timeout: float = 120) -> None:
        result = self.cli("umount", str(self.mountpoint), timeout=timeout)
        assert result.returncode == 0, result.stderr + self.log[-2000:]
        if self.proc is not None:
            self.proc.wait(timeout=30)
        assert not is_mounted(self.mountpoint)

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        force_unmount(self.mountpoint)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.cli("umount", str(self.mountpoint), "--timeout", "20", timeout=30)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        force_unmount(self.mountpoint)


MountFactory = Callable[..., MountedVolume]


@pytest.fixture
def razorfs_mount(s3_server: S3Server, bucket: str, tmp_path: Path) -> Iterator[MountFactory]:
    """`razorfs_mount(prefix="vol", cache_dir=None, extra=[...])` mounts `s3://<bucket>/<prefix>`
    at a fresh mountpoint (or the same one again) and waits until it is ready."""
    mounted: list[MountedVolume] = []
    run_dir = tmp_path / "run"
    env = {**os.environ, **s3_server.env(), "RAZORFS_RUN_DIR": str(run_dir), "RAZORFS_LOG_LEVEL": "INFO"}

    def mount(
        prefix: str = "vol",
        cache_dir: Path | None = None,
        mountpoint: Path | None = None,
        extra: tuple[str, ...] = (),
        endpoint_url: str | None = None,
    ) -> MountedVolume:
        index = len(mounted)
        if mountpoint is None:  # a given mountpoint may be a dead mount the daemon must clear
            mountpoint = tmp_path / f"mnt{index}"
            mountpoint.mkdir()
        cache_dir = cache_dir or tmp_path / f"cache{index}"
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        args = [
            "mount", url, str(mountpoint),
            "--endpoint-url", endpoint_url or s3_server.endpoint_url,
            "--region", s3_server.region,
            "--force-path-style",
            "--cache-dir", str(cache_dir),
            "--foreground",
            *extra,
        ]  # fmt: skip
        cache_dir.mkdir(parents=True, exist_ok=True)
        vol = MountedVolume(mountpoint, cache_dir, run_dir, env, args=args)
        log_file = open(cache_dir / "daemon.test.log", "ab")  # noqa: SIM115 (the child keeps it)
        vol.proc = subprocess.Popen(
            [sys.executable, "-m", "razorfs.mount", *args],
            env=env,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
        log_file.close()
        mounted.append(vol)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if vol.proc.poll() is not None:
                raise AssertionError(f"daemon exited {vol.proc.returncode}: {vol.log[-3000:]}")
            if is_mounted(mountpoint) and vol.cli("stats", str(mountpoint), "--json", timeout=10).returncode == 0:
                return vol
            time.sleep(0.1)
        raise AssertionError(f"mount not ready after 30s: {vol.log[-3000:]}")

    try:
        yield mount
    finally:
        for vol in reversed(mounted):
            vol.stop()


@contextlib.contextmanager
def mounted_s3fs(server: S3Server, bucket: str, prefix: str, mountpoint: Path, *options: str) -> Iterator[Path]:
    """s3fs (Debian's package) on `s3://bucket/prefix` of `server`, in the foreground as a child
    of the test; unmounted and stopped on exit."""
    if shutil.which("s3fs") is None:
        pytest.fail("s3fs not installed: run `make setup` (apt-installs s3fs)", pytrace=False)
    mountpoint.mkdir(exist_ok=True)
    passwd = mountpoint.parent / f"passwd-s3fs-{mountpoint.name}"
    passwd.write_text(f"{server.access_key}:{server.secret_key}\n")
    passwd.chmod(0o600)
    opts = ",".join((f"url={server.endpoint_url}", "use_path_request_style", f"passwd_file={passwd}",
                     "stat_cache_expire=1", *options))  # fmt: skip
    proc = subprocess.Popen(
        ["s3fs", f"{bucket}:/{prefix}", str(mountpoint), "-f", "-o", opts],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"s3fs did not mount: {proc.stderr.read() if proc.stderr else ''!r}")
            time.sleep(0.1)
        passwd.unlink()  # s3fs read it at start; secrets do not stay on disk
        yield mountpoint
    finally:
        passwd.unlink(missing_ok=True)
        force_unmount(mountpoint)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
