"""A `razorfs mount` daemon driven the way a user drives it (the CLI, as a subprocess), which tests
can also kill -9, restart on the same cache dir, flush and unmount. Teardown leaves no daemon and
no FUSE mount behind, whatever state the daemon is in (dead, hung, or mid-upload)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.realparts.fusemount import force_unmount, is_mounted

RAZORFS_BIN = str(Path(sys.executable).with_name("razorfs"))
CLI_TIMEOUT_S = 120.0


class MountFailed(AssertionError):
    """`razorfs mount` (or flush/umount) exited non-zero; the message carries its stderr and the
    tail of the daemon's log."""


@dataclass
class MountProcess:
    url: str  # s3://bucket/prefix
    mountpoint: Path
    cache_dir: Path
    endpoint_url: str
    env: dict[str, str] = field(repr=False)  # holds the S3 secret: never in failure output
    extra_args: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # every daemon this object started

    @property
    def log_path(self) -> Path:
        return self.cache_dir / "daemon.log"

    def command(self) -> list[str]:
        return [
            RAZORFS_BIN,
            "mount",
            self.url,
            str(self.mountpoint),
            "--endpoint-url",
            self.endpoint_url,
            "--cache-dir",
            str(self.cache_dir),
            "--force-path-style",
            "--region",
            "us-east-1",
            *self.extra_args,
        ]

    def start(self) -> MountProcess:
        if not self.pids:  # a restart finds the dead mount (ENOTCONN) there: the daemon handles it
            self.mountpoint.mkdir(parents=True, exist_ok=True)
        result = self._cli(self.command())
        if result.returncode != 0:
            raise MountFailed(
                f"razorfs mount exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}\n"
                f"{self.diagnostics()}"
            )
        pid = self.pid()
        if pid is not None:
            self.pids.append(pid)
        return self

    def pid(self) -> int | None:
        """The live daemon's pid, from the lock file the daemon writes into its cache dir."""
        try:
            text = (self.cache_dir / "lock").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() and _alive(int(text)) else None

    def alive(self) -> bool:
        return self.pid() is not None

    def kill9(self) -> None:
        """A crash: SIGKILL, no flush, the FUSE mount left dead (ENOTCONN) at the mountpoint."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 20)
        if _alive(pid):
            raise MountFailed(f"daemon {pid} still alive 20 s after SIGKILL: {blocked_threads(pid)}")

    def flush(self, timeout_s: float = 180.0) -> None:
        result = self._cli([RAZORFS_BIN, "flush", str(self.mountpoint), "--timeout", str(timeout_s)], timeout_s + 30)
        if result.returncode != 0:
            raise MountFailed(f"razorfs flush exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}")

    def umount(self, timeout_s: float = 180.0) -> None:
        result = self._cli([RAZORFS_BIN, "umount", str(self.mountpoint), "--timeout", str(timeout_s)], timeout_s + 30)
        if result.returncode != 0:
            raise MountFailed(f"razorfs umount exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}")

    def diagnostics(self) -> str:
        """What the kernel and /proc say about this mount's earlier daemons and its mountpoint."""
        target = os.path.realpath(self.mountpoint)
        with open("/proc/self/mountinfo") as mounts:
            layers = [line.strip() for line in mounts if line.split()[4] == target]
        states = []
        for pid in self.pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
            except OSError:
                state = "gone"
            states.append(f"{pid}:{state}" + (f" ({blocked_threads(pid)})" if state not in ("gone", "Z") else ""))
        return (
            f"mount layers at {target}: {layers or 'none'}; earlier daemons: {', '.join(states) or 'none'}; "
            f"processes holding /dev/fuse: {fuse_holders() or 'none'}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no daemon log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        """Unmount (lazily: the daemon may be dead or hung) first, which also releases a daemon
        blocked on its own mount, then kill whatever daemon this object started."""
        force_unmount(self.mountpoint)
        for pid in {*self.pids, *([p] if (p := self.pid()) else [])}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 20)
        if is_mounted(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, check=False)

    def _cli(self, argv: list[str], timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False)


def fuse_holders() -> list[str]:
    """Every process with /dev/fuse open (a FUSE connection lives until the last one closes it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) == "/dev/fuse" for fd in (proc / "fd").iterdir()):
                found.append(f"{proc.name} {(proc / 'cmdline').read_bytes().replace(bytes(1), b' ')[:120]!r}")
        except OSError:
            continue
    return found


def blocked_threads(pid: int) -> str:
    """Where a process's threads sleep in the kernel (state and wait channel): a process SIGKILL
    cannot end is stuck in an uninterruptible wait, e.g. on a request to its own FUSE mount."""
    found = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            state = (task / "stat").read_text().split(") ")[-1][:1]
            wchan = (task / "wchan").read_text().strip()
            syscall = (task / "syscall").read_text().split(" ")[0]
        except OSError:
            continue
        found.append(f"tid {task.name} state {state} wchan {wchan} syscall {syscall}")
    return "; ".join(found) or "(no threads readable)"


def _alive(pid: int) -> bool:
    """True while any thread of `pid` is not a zombie: a killed process whose leader is already a
    zombie still holds its files (the /dev/fuse descriptor among them) until its last thread ends."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    for task in tasks:
        try:
            if (task / "stat").read_text().split(") ")[-1][:1] != "Z":
                return True
        except OSError:
            continue
    return False


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
