"""The systems under test that present a directory: RazorFS, rclone mount, s3fs and a local
directory. Each `mounted()` starts from an empty cache directory, so the first access after it
is cold; every process and FUSE mount it starts is gone when the context exits, even on errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.realparts.fusemount import force_unmount
from tests.realparts.processes import ManagedProcess, RealPartMissing, wait_until
from tests.realparts.s3server import S3Server

from .control import control_request
from .fuse_connection import abort_connection, is_listed

MOUNT_READY_TIMEOUT_S = 60.0
# RazorFS flushes everything on shutdown; the workloads wait for durability before that, so this
# only bounds a misbehaving daemon.
SHUTDOWN_TIMEOUT_S = 300.0
RAZORFS_CACHE_SIZE = "20GiB"  # larger than any workload, so eviction never shapes a figure
# A session (mount, measure, unmount) that takes longer than this has a hung daemon: its FUSE
# connection is aborted so the processes stuck in it fail with ENOTCONN instead of hanging the suite.
SESSION_TIMEOUT_S = 900.0


class Mounter(ABC):
    name: str

    def __init__(self, workdir: Path, server: S3Server, bucket: str) -> None:
        self.workdir = workdir / self.name
        self.server = server
        self.bucket = bucket
        self.mountpoint = self.workdir / "mnt"
        self.process: ManagedProcess | None = None
        self._mounts = 0

    @property
    def pid(self) -> int | None:
        return self.process.proc.pid if self.process else None

    def _fresh_cache_dir(self) -> Path:
        self._mounts += 1
        cache = self.workdir / f"cache-{self._mounts}"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        return cache

    @property
    def real_mountpoint(self) -> str:
        # Built from the parent so that the mountpoint itself (possibly a hung mount) is never stat'ed.
        return os.path.join(os.path.realpath(self.mountpoint.parent), self.mountpoint.name)

    def kept_cache_dir(self) -> Path:
        """A fresh cache dir for `mounted(..., cache=)`: mounts given it leave it in place (a
        remount measures what a system keeps across mounts of the same node)."""
        return self._fresh_cache_dir()

    @contextmanager
    def mounted(self, endpoint_url: str, cache: Path | None = None) -> Iterator[Path]:
        """Mounted on a fresh cache dir (removed at the end), or on `cache`, which stays."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        force_unmount(self.mountpoint)
        kept = cache is not None
        cache = cache if cache is not None else self._fresh_cache_dir()
        watchdog = threading.Timer(SESSION_TIMEOUT_S, self._abort_hung, args=("session timeout",))
        watchdog.daemon = True
        watchdog.start()
        try:
            self._start(endpoint_url, cache)
            yield self.mountpoint
        finally:
            try:
                self._stop(cache)
            finally:
                watchdog.cancel()
                if self.process is not None:
                    if self.process.alive() and is_listed(self.real_mountpoint):
                        self._abort_hung("daemon did not exit after unmount")
                    self.process.stop()
                    self.process = None
                force_unmount(self.mountpoint)
                if not kept:
                    shutil.rmtree(cache, ignore_errors=True)

    def _abort_hung(self, why: str) -> None:
        if abort_connection(self.real_mountpoint):
            print(f"bench: aborted the FUSE connection of {self.name} ({why})", file=sys.stderr)

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        self.process = ManagedProcess(self.name, argv, self.workdir / "mount.log", env)
        process = self.process
        wait_until(
            lambda: process.check_alive() and is_listed(self.real_mountpoint),
            MOUNT_READY_TIMEOUT_S,
            f"{self.name} mount at {self.mountpoint}",
        )
        return process

    @abstractmethod
    def _start(self, endpoint_url: str, cache: Path) -> None: ...

    def _stop(self, cache: Path) -> None:
        if is_listed(self.real_mountpoint):
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(["fusermount3", "-u", self.real_mountpoint], capture_output=True, timeout=60)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # ManagedProcess.stop() escalates
                self.process.proc.wait(timeout=30)


class RazorFSMounter(Mounter):
    name = "razorfs"

    def _start(self, endpoint_url: str, cache: Path) -> None:
        # The daemon's own entry point (what `razorfs mount` starts detached); in the foreground its
        # pid is the FUSE process whose memory and stacks we measure.
        argv = [
            sys.executable, "-m", "razorfs.mount", "mount", f"s3://{self.bucket}", str(self.mountpoint),
            "--endpoint-url", endpoint_url, "--region", self.server.region, "--force-path-style",
            "--cache-dir", str(cache), "--cache-size", RAZORFS_CACHE_SIZE, "--foreground",
        ]  # fmt: skip
        env = {k: v for k, v in self.server.env().items() if k != "AWS_ENDPOINT_URL"}
        process = self._spawn(argv, env)
        sock = cache / "control.sock"
        wait_until(
            lambda: process.check_alive() and bool(control_request(sock, {"op": "stats"}, 5)),
            MOUNT_READY_TIMEOUT_S,
            "RazorFS control socket",
        )

    def control_socket(self) -> Path:
        return self.workdir / f"cache-{self._mounts}" / "control.sock"

    def _stop(self, cache: Path) -> None:
        process = self.process
        if process is None or not process.alive():
            return
        # `shutdown` flushes then unmounts; it is the daemon's own clean exit path.
        try:
            control_request(cache / "control.sock", {"op": "shutdown"}, SHUTDOWN_TIMEOUT_S)
            process.proc.wait(timeout=60)
        except Exception as exc:
            print(f"bench: RazorFS shutdown failed ({exc}); stopping it with signals", file=sys.stderr)


class RcloneMounter(Mounter):
    name = "rclone"

    def _start(self, endpoint_url: str, cache: Path) -> None:
        rclone = shutil.which("rclone")
        if rclone is None:
            raise RealPartMissing("rclone not found: run `make setup` (apt-installs rclone)")
        config = self.workdir / "rclone.conf"
        config.touch()
        env = {
            "RCLONE_CONFIG": str(config),
            "RCLONE_CONFIG_BENCHS3_TYPE": "s3",
            "RCLONE_CONFIG_BENCHS3_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCHS3_ENDPOINT": endpoint_url,
            "RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID": self.server.access_key,
            "RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY": self.server.secret_key,
            "RCLONE_CONFIG_BENCHS3_REGION": self.server.region,
            "RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE": "true",
        }
        # This machine sets AWS_CA_BUNDLE for its own HTTPS proxy; rclone's S3 client refuses to
        # start with a CA bundle on a plain-HTTP transport. `env -u` execs, so the pid stays rclone's.
        argv = [
            "env", "-u", "AWS_CA_BUNDLE", rclone, "mount", f"benchs3:{self.bucket}", str(self.mountpoint),
            "--vfs-cache-mode", "full", "--cache-dir", str(cache), "--log-level", "NOTICE",
        ]  # fmt: skip
        self._spawn(argv, env)


class S3fsMounter(Mounter):
    name = "s3fs"

    def _start(self, endpoint_url: str, cache: Path) -> None:
        s3fs = shutil.which("s3fs")
        if s3fs is None:
            raise RealPartMissing("s3fs not found: run `make setup` (apt-installs s3fs)")
        passwd = self.workdir / "passwd"
        passwd.write_text(f"{self.server.access_key}:{self.server.secret_key}\n")
        passwd.chmod(0o600)
        options = ",".join(
            [
                f"url={endpoint_url}",
                "use_path_request_style",
                f"passwd_file={passwd}",
                f"use_cache={cache}",
                f"endpoint={self.server.region}",
            ]
        )
        self._spawn([s3fs, self.bucket, str(self.mountpoint), "-f", "-o", options])


class LocalDirMounter(Mounter):
    """The disk limit: the same workloads on a plain directory of this machine's disk."""

    name = "local"

    def __init__(self, workdir: Path, server: S3Server, bucket: str) -> None:
        super().__init__(workdir, server, bucket)
        self.mountpoint = self.workdir / "root"

    @contextmanager
    def mounted(self, endpoint_url: str, cache: Path | None = None) -> Iterator[Path]:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        yield self.mountpoint

    def _start(self, endpoint_url: str, cache: Path) -> None:
        raise AssertionError("a local directory is never started")


MOUNTERS: dict[str, type[Mounter]] = {m.name: m for m in (RazorFSMounter, RcloneMounter, S3fsMounter, LocalDirMounter)}
